"""Claim 4 references (Liu et al. 2020; Frankle et al. 2020) and verdicts computed from the measured run.

Three verdicts, each decided on intervals over seeds (:mod:`memlib.claims`): :func:`check_early_learning`
(cross-entropy on noisy labels first predicts the true class of many mislabeled examples, then memorizes their
wrong labels, and test accuracy peaks early then falls), :func:`check_elr` (early-learning regularization reduces
that memorization; paired by seed) and :func:`check_early_phase` (Frankle et al.'s early phase, on clean labels:
the weights move farther per iteration (per unit learning rate) at the start of the window than at its end,
gradients are largest at the start, and rewinding to the pre-registered iteration k beats rewinding to 0 by a
margin).  :func:`check` (the chapter's verdict) combines all criteria with one rule: the essential criteria are
those of the first two verdicts (the talk's claim); the early phase's are supporting evidence.

Preconditions (:func:`memlib.claims.precondition`; unless they hold, that verdict is *not testable at this scale*):
early learning needs a network that fits its clean training examples (``FITS``); ELR's reduction needs
cross-entropy to memorize (``MEMORIZED``); the early phase needs the network to learn on clean labels (``FITS``).
In the chapter's verdict only the first gates the whole: cross-entropy memorizing is the first verdict's own
deciding quantity there, and an early phase that is not testable leaves its criteria undecided.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..catalog import dataset_title, model_title
from ..experiments.early_learning import CE, CLEAN, ELR
from ..measure import Interval, Measured, show, t_interval
from . import NOT_TESTABLE, UNDECIDED, Scale, Verdict, combine, criterion, precondition

CITATION = ("Liu, Niles-Weed, Razavian, Fernandez-Granda (2020), Early-Learning Regularization Prevents "
            "Memorization of Noisy Labels; Frankle, Schwab, Morcos (2020), The Early Phase of Neural Network "
            "Training")
REFERENCE = {
    "setting": "ResNet-34 on CIFAR-10 with 40% symmetric label noise in ELR's code (new label drawn from all 10 "
               "classes, so about 36% wrong; Liu et al., Figure 1); ResNet-20 on CIFAR-10 with clean labels "
               "(Frankle et al., Figure 2)",
    "early_learning": "with cross-entropy, the fraction of mislabeled examples predicted as their true class "
                      "first rises, then falls while the fraction predicted as the wrong label rises to ~100%; "
                      "test accuracy peaks early, then drops",
    "elr": "with ELR the wrong labels are not memorized and the true-class fraction stays high",
    "elr_beta": 0.7, "elr_lambda": 3.0,  # CIFAR-10 (paper and authors' config)
    "elr_test_acc_cifar10_40pct": 0.8915,  # ELR README / Liu et al. Table 1: ELR, "40%" symmetric noise
    "ce_test_acc_cifar10_40pct": 0.819,  # Liu et al.'s cross-entropy baseline at "40%": ≈, unverified (not found in
    # the sources we could read; the book marks it so)
    "early_phase": "gradient magnitudes, distance from init, sign changes and the success of rewinding change "
                   "quickly over the first few hundred to few thousand iterations (of 62,560), then settle; "
                   "rewinding to iterations ~500-2,000 (0.8%-3.2% of training) gives sparse networks that "
                   "reach full accuracy where rewinding to 0 does not",
}

# Thresholds of the criteria (fractions of examples / accuracy points / fractions of the probed window).
PEAK_TRUE = 0.40        # early learning: at least this many mislabeled predicted as true class at the peak
MEMORIZED_AT_PEAK = 0.20  # ... while fewer than this many are memorized
MEMORIZED = 0.50        # memorization: at least this many mislabeled predicted as their wrong label at the end
TEST_DROP = 0.02        # test accuracy falls at least 2 points after its peak
ELR_LESS = 0.5          # ELR's memorized fraction at most half of cross-entropy's
ELR_TRUE_GAIN = 0.10    # ELR keeps 10+ points more mislabeled examples on their true class
ELR_TEST_GAIN = 0.01    # ELR's final test accuracy 1+ point higher
STEP_RATIO = 1.2        # distance moved per iteration per unit learning rate, first tenth of the window / last tenth
GRAD_RATIO = 1.2        # mean gradient norm over the first tenth of the window / over the last tenth (by a margin:
#                         a steady process gives about 1 and must fail, not sit at the threshold)
REWIND_MARGIN = 0.005   # rewinding to the pre-registered k beats k = 0 by more than 0.5 points
FITS = 0.9              # preconditions: the network fits its clean training examples


# ------------------------------------------------------------------------------------------- per-seed stats

def test_drop(acc) -> float:
    """Test accuracy at its peak minus at the end, the peak chosen on one half of the evaluations and read on the
    other: the peak evaluation is the best of the even-numbered ones (1st, 3rd, ...), its accuracy is read at the
    next evaluation (the previous one when it is the last).  The maximum of the same noisy evaluations it is
    compared with would favour a peak: with a flat curve it exceeds the last one by about two standard deviations
    of the evaluation noise (``tests/test_early_learning.py::test_null_test_drop_of_a_flat_curve_is_zero``)."""
    acc = np.asarray(acc, dtype=float)
    if len(acc) < 2:
        return 0.0
    i = 2 * int(np.argmax(acc[0::2]))
    j = i + 1 if i + 1 < len(acc) else i - 1
    return float(acc[j] - acc[-1])


def curve_stats(h: pd.DataFrame) -> dict:
    """Peaks and end values of one seed's and one arm's per-epoch history (evaluated epochs only)."""
    t = h.dropna(subset=["test_acc"])
    t = t[t.epoch >= 1].reset_index(drop=True)
    i_true, i_test = t.train_noisy_true.idxmax(), t.test_acc.idxmax()
    mem = t.loc[t.train_noisy_acc >= MEMORIZED, "epoch"]
    last = t.iloc[-1]
    return {"epochs": int(t.epoch.max()), "peak_true": float(t.train_noisy_true[i_true]),
            "peak_true_epoch": int(t.epoch[i_true]), "memorized_at_peak_true": float(t.train_noisy_acc[i_true]),
            "final_true": float(last.train_noisy_true), "final_memorized": float(last.train_noisy_acc),
            "memorized_half_epoch": int(mem.iloc[0]) if len(mem) else None,
            "peak_test": float(t.test_acc[i_test]), "peak_test_epoch": int(t.epoch[i_test]),
            "final_test": float(last.test_acc), "test_drop": test_drop(t.test_acc),
            "final_clean": float(last.train_clean_acc)}


def per_seed(history: pd.DataFrame, arm: str) -> pd.DataFrame:
    """One row of :func:`curve_stats` per seed for ``arm``."""
    h = history[history["arm"] == arm]
    return pd.DataFrame({s: curve_stats(g) for s, g in h.groupby("seed")}).T


def _first(series: pd.Series, steps: pd.Series, level: float):
    hit = steps[series >= level]
    return int(hit.iloc[0]) if len(hit) else None


def phase_stats(e: pd.DataFrame, ramp: int = 0) -> dict:
    """Early-phase numbers of one seed's and arm's per-iteration table: when half of the window's final distance
    from init and of its sign flips were reached, for the training and for the random-walk null (shown, not
    decided on: a random walk reaches half its distance at a quarter of the window by construction); the distance
    moved per iteration per unit learning rate (``step_norm / lr``) and the gradient norm, each averaged over the
    first tenth of the window and over the last tenth.

    The first tenth starts after ``ramp`` iterations: SGD's momentum buffer starts empty and fills over about
    1/(1 − momentum) iterations, so the first steps of *any* training are short; skipping them keeps the ramp from
    passing for a late phase (it biases the ratio towards "no early phase")."""
    e = e.sort_values("step")
    last = int(e.step.max())
    out = {"window": last, "final_rel_dist": float(e.rel_dist_init.iloc[-1]),
           "final_sign_changed": float(e.sign_changed.iloc[-1])}
    for col, name in (("dist_init", "dist"), ("sign_changed", "sign")):
        out[f"half_{name}_step"] = _first(e[col], e.step, 0.5 * e[col].iloc[-1])
        null = f"null_{col}"
        out[f"null_half_{name}_step"] = (_first(e[null], e.step, 0.5 * e[null].iloc[-1]) if null in e else None)
    g = e[e.step >= 1]
    n = max(1, len(g) // 10)
    speed = g.step_norm / g.lr if "lr" in g and g.lr.notna().all() else g.step_norm
    out["step_first"] = float(speed[g.step > ramp].iloc[:n].mean())
    out["step_last"] = float(speed.iloc[-n:].mean())
    out["grad_first"] = float(g.grad_norm.iloc[:n].mean())
    out["grad_last"] = float(g.grad_norm.iloc[-n:].mean())
    return out


def phase_per_seed(early_phase: pd.DataFrame, arm: str, ramp: int = 0) -> pd.DataFrame:
    e = early_phase[early_phase["arm"] == arm]
    return pd.DataFrame({s: phase_stats(g, ramp) for s, g in e.groupby("seed")}).T


def momentum_ramp(cfg) -> int:
    """Iterations SGD's momentum buffer takes to fill (1/(1 − momentum), rounded); 0 without a configuration."""
    return 0 if cfg is None or not cfg.momentum else int(round(1 / (1 - cfg.momentum)))


def _lead(ps: pd.DataFrame, name: str) -> list[float]:
    """Per seed: (null's half step - training's half step) / window; > 0 = the training is more front-loaded."""
    return [(float(n) - float(h)) / float(w) for n, h, w in
            zip(ps[f"null_half_{name}_step"], ps[f"half_{name}_step"], ps.window) if n is not None and h is not None]


def rewind_gain(rewind: pd.DataFrame, k: int) -> Interval:
    """t-interval over seeds of test accuracy after rewinding to ``k`` minus after rewinding to 0."""
    p = rewind.pivot_table(index="seed", columns="k", values="test_acc")
    if k not in p or 0 not in p:
        return t_interval([], unit="points")
    return t_interval(p[k] - p[0], unit="points")


# ------------------------------------------------------------------------------------------- preconditions

def fits_clean(result):
    """Early learning's precondition: cross-entropy fits the clean training examples by the end."""
    s = per_seed(result.tables["history"], CE)
    return precondition(
        f"cross-entropy fits the clean training examples by the end (above {FITS:.0%})",
        t_interval(s.final_clean.astype(float), unit="percent"), FITS, "above",
        why="a network trained too briefly or too small to fit even its correctly labelled examples is still in "
            "early learning when training stops; whether it goes on to memorize the wrong labels is the claim, and "
            "fitting the clean examples does not imply it")


def ce_memorizes(result):
    """ELR's precondition: cross-entropy memorizes the mislabeled examples."""
    ce = per_seed(result.tables["history"], CE)
    return precondition(
        f"cross-entropy memorizes: more than {MEMORIZED:.0%} of the mislabeled examples predicted as their wrong "
        "label at the end", t_interval(ce.final_memorized.astype(float), "percent"), MEMORIZED, "above",
        why="ELR's claim is a reduction of cross-entropy's memorization; when cross-entropy memorizes little, the "
            "ratio compares two small numbers. It is a property of the baseline arm, not of ELR")


def clean_learns(result):
    """The early phase's precondition: the network trained on clean labels fits them."""
    h = result.tables["history"]
    last = h[h["arm"] == CLEAN].dropna(subset=["train_clean_acc"]).sort_values("epoch").groupby("seed").last()
    return precondition(
        f"the network learns on clean labels: final training accuracy above {FITS:.0%}",
        t_interval(last.train_clean_acc.astype(float), "percent"), FITS, "above",
        why="the early phase is the start of a training that succeeds; a network that does not fit its clean labels "
            "has no settled phase to compare with. Its final accuracy says nothing about how front-loaded the first "
            "iterations were")


def preconditions(result, cfg=None) -> list:
    """All three verdicts' preconditions (for calibration: every one must hold at the chosen scale)."""
    return [fits_clean(result), ce_memorizes(result), clean_learns(result)]


# ------------------------------------------------------------------------------------------------ verdicts

def _scale(cfg, result, note: str = "", **kw) -> Scale | None:
    if cfg is None:
        return None
    return Scale.from_config(cfg, n_train=int(result.scalars.get("n_train", cfg.n_train)),
                             seeds=len(result.scalars.get("seeds", [])) or cfg.seeds, note=note, **kw)


def noise_text(cfg) -> str:
    """The noise model in words, beside ELR's (whose nominal rate includes labels redrawn as the true class)."""
    if cfg is None:
        return ""
    r = cfg.noise_rate
    return (f"{r:.0%} of the training labels are flipped, always to a wrong class (ELR's code draws the new label "
            f"from all 10 classes, so its nominal \"{r / 0.9:.0%}\" is this {r:.0%} wrong)")


def noise_note(cfg) -> str:
    """The noise model in a few words, for the scale line."""
    return "" if cfg is None else f"labels always flipped to a wrong class (ELR's \"{cfg.noise_rate / 0.9:.0%}\")"


def check_early_learning(result, cfg=None) -> Verdict:
    s = per_seed(result.tables["history"], CE)
    iv = {k: t_interval(s[k].astype(float), unit="percent") for k in
          ("peak_true", "memorized_at_peak_true", "final_memorized", "final_true", "peak_test", "final_test")}
    iv["test_drop"] = t_interval(s.test_drop.astype(float), unit="points")
    iv["final_clean"] = t_interval(s.final_clean.astype(float), unit="percent")
    crit = [
        fits_clean(result),
        criterion(f"early learning: at its peak, the fraction of mislabeled examples predicted as their true class "
                  f"exceeds {PEAK_TRUE:.0%}", iv["peak_true"], PEAK_TRUE, essential=True),
        criterion(f"... while fewer than {MEMORIZED_AT_PEAK:.0%} are memorized (predicted as their wrong label)",
                  iv["memorized_at_peak_true"], MEMORIZED_AT_PEAK, "below", essential=True),
        criterion(f"then memorization: at the end more than {MEMORIZED:.0%} of mislabeled examples are predicted "
                  "as their wrong label", iv["final_memorized"], MEMORIZED, essential=True),
        criterion(f"test accuracy peaks and then falls by more than {TEST_DROP * 100:.0f} points (peak minus end, "
                  "per seed; the peak chosen on alternate evaluations and read on the ones between, so that "
                  "evaluation noise does not make a peak)", iv["test_drop"], TEST_DROP),
    ]
    m = {k: v for k, v in iv.items()}
    m["peak_true_epoch"] = int(round(s.peak_true_epoch.astype(float).median()))
    m["peak_test_epoch"] = int(round(s.peak_test_epoch.astype(float).median()))
    m["epochs"] = int(s.epochs.max())
    status = combine(crit, "paper")
    summary = (f"With cross-entropy on noisy labels, the fraction of mislabeled training examples predicted as their "
               f"true class peaked at {Measured(iv['peak_true'].estimate, 'percent')} (median epoch "
               f"{m['peak_true_epoch']}); by epoch {m['epochs']} {Measured(iv['final_memorized'].estimate, 'percent')}"
               f" were predicted as their wrong label. Test accuracy peaked at "
               f"{Measured(iv['peak_test'].estimate, 'percent')} (median epoch {m['peak_test_epoch']}) and ended at "
               f"{Measured(iv['final_test'].estimate, 'percent')} (mean over seeds).")
    return Verdict("Early learning, then memorization", status, summary, m, REFERENCE, crit,
                   _scale(cfg, result, noise_note(cfg)))


def check_elr(result, cfg=None) -> Verdict:
    h = result.tables["history"]
    ce, elr = per_seed(h, CE), per_seed(h, ELR)
    f = lambda d, k: d[k].astype(float)  # noqa: E731
    ratio = t_interval(f(elr, "final_memorized") / f(ce, "final_memorized").clip(lower=1e-9), unit="ratio")
    true_gain = t_interval(f(elr, "final_true") - f(ce, "final_true"), unit="points")
    test_gain = t_interval(f(elr, "final_test") - f(ce, "final_test"), unit="points")
    drop_less = t_interval(f(ce, "test_drop") - f(elr, "test_drop"), unit="points")
    crit = [
        ce_memorizes(result),
        criterion(f"ELR memorizes less: its final memorized fraction is less than {ELR_LESS:.0%} of "
                  "cross-entropy's (ratio per seed)", ratio, ELR_LESS, "below", essential=True),
        criterion(f"ELR keeps more than {ELR_TRUE_GAIN * 100:.0f} points more mislabeled examples on their true "
                  "class at the end", true_gain, ELR_TRUE_GAIN),
        criterion(f"ELR's final test accuracy is more than {ELR_TEST_GAIN * 100:.0f} point higher", test_gain,
                  ELR_TEST_GAIN),
        criterion("ELR's test accuracy falls less after its peak (cross-entropy's fall minus ELR's)", drop_less, 0.0),
    ]
    m = {"memorized_ratio": ratio, "true_gain": true_gain, "test_gain": test_gain, "drop_less": drop_less}
    for arm, d in ((CE, ce), (ELR, elr)):
        for k in ("final_memorized", "final_true", "final_clean", "peak_test", "final_test"):
            m[f"{arm}_{k}"] = Measured(float(f(d, k).mean()), "percent")
        m[f"{arm}_test_drop"] = Measured(float(f(d, "test_drop").mean()), "points")
        half = [x for x in d.memorized_half_epoch if x is not None]
        m[f"{arm}_memorized_half_epoch"] = (Measured(float(np.median(half)), "epoch") if len(half) == len(d)
                                            else "never" if not half else f"{len(half)} of {len(d)} seeds")
    status = combine(crit, "paper")
    summary = (f"At the end of training, ELR had memorized {m['elr_final_memorized']} of the mislabeled examples "
               f"against {m['ce_final_memorized']} for cross-entropy, predicted {m['elr_final_true']} (vs "
               f"{m['ce_final_true']}) as their true class, and reached {m['elr_final_test']} test accuracy (vs "
               f"{m['ce_final_test']}); means over seeds.")
    return Verdict("Early-learning regularization reduces memorization", status, summary, m, REFERENCE, crit,
                   _scale(cfg, result, noise_note(cfg)))


def check_early_phase(result, cfg=None) -> Verdict:
    ep = result.tables.get("early_phase")
    rw = result.tables.get("rewind")
    ramp = momentum_ramp(cfg)
    ps = phase_per_seed(ep, CLEAN, ramp)
    dist_lead = t_interval(_lead(ps, "dist"), unit="points")  # differences of fractions of the window (shown)
    sign_lead = t_interval(_lead(ps, "sign"), unit="points")
    steps = t_interval(ps.step_first.astype(float) / ps.step_last.astype(float), unit="ratio")
    grad = t_interval(ps.grad_first.astype(float) / ps.grad_last.astype(float), unit="ratio")
    window = int(ps.window.max())
    crit = [
        clean_learns(result),
        criterion(f"the weights move fastest at the start: distance moved per iteration per unit learning rate "
                  f"(|w_t − w_t−1| / lr_t), mean over the first tenth of the window over the last tenth, above "
                  f"{STEP_RATIO} (a training with steady step sizes gives about 1)", steps, STEP_RATIO,
                  essential=True, note=f"window of {window:,} iterations"
                  + (f", its first tenth after the {ramp} iterations the momentum buffer takes to fill" if ramp
                     else "")),
        criterion("gradient norms are largest at the start (mean over the first tenth of the window over the "
                  "last tenth)", grad, GRAD_RATIO),
    ]
    m = {"step_ratio": steps, "dist_lead": dist_lead, "sign_lead": sign_lead, "grad_ratio": grad, "window": window}
    k = int(cfg.rewind_k) if cfg is not None else int(rw.k[rw.k > 0].min())
    gain = rewind_gain(rw, k)
    crit.append(criterion(f"rewinding to the pre-registered iteration k = {k} beats rewinding to k = 0 by more than "
                          f"{REWIND_MARGIN * 100:.1f} points (test accuracy of the pruned, retrained network)",
                          gain, REWIND_MARGIN, opposite=0.0))
    r = rw.groupby("k").agg(test_acc=("test_acc", "mean"), k_frac=("k_frac", "first"))
    m.update({"rewind_k": k, "rewind_gain": gain, "rewind_sparsity": Measured(float(rw.sparsity.mean()), "percent"),
              "rewind_k_frac": Measured(float(r.k_frac.get(k, float("nan"))), "percent"),
              "rewind_k0_test": Measured(float(r.test_acc.get(0, float("nan"))), "percent"),
              "rewind_k_test": Measured(float(r.test_acc.get(k, float("nan"))), "percent")})
    for arm, name in ((CLEAN, "clean"), (CE, "noisy")):
        if arm in set(ep["arm"]):
            p = phase_per_seed(ep, arm)
            m[f"{name}_half_dist_step"] = Measured(float(p.half_dist_step.astype(float).mean()), "iteration")
            m[f"{name}_null_half_dist_step"] = Measured(float(p.null_half_dist_step.astype(float).mean()), "iteration")
            m[f"{name}_half_sign_step"] = Measured(float(p.half_sign_step.astype(float).mean()), "iteration")
            m[f"{name}_final_rel_dist"] = Measured(float(p.final_rel_dist.astype(float).mean()), "percent")
            m[f"{name}_final_sign_changed"] = Measured(float(p.final_sign_changed.astype(float).mean()), "percent")
    status = combine(crit, "paper")
    summary = (f"On clean labels, over the first {window:,} iterations the weights moved "
               f"{m['clean_final_rel_dist']} of their initial norm away from initialization (half of that by "
               f"iteration {m['clean_half_dist_step']}; a random walk with the same step lengths by "
               f"{m['clean_null_half_dist_step']}) and {m['clean_final_sign_changed']} of them changed sign. "
               f"Rewinding the {m['rewind_sparsity']}-pruned network to k = {k} ({m['rewind_k_frac']} of training) "
               f"gave {m['rewind_k_test']} test accuracy against {m['rewind_k0_test']} for k = 0.")
    return Verdict("The early phase of training (clean labels)", status, summary, m, REFERENCE, crit,
                   _scale(cfg, result, "clean labels for the early phase", noise_rate=0.0))


def check(result, cfg=None) -> Verdict:
    """The chapter's verdict: every criterion of the three parts combined by the one rule; the essential ones are
    those of early learning then memorization and of ELR (the talk's claim), the early phase supports it."""
    parts = [check_early_learning(result, cfg), check_elr(result, cfg), check_early_phase(result, cfg)]
    a, b, c = parts
    # ELR's precondition (cross-entropy memorizes) is the first verdict's own criterion here: it does not gate.
    crit = list(a.criteria) + [x for x in b.criteria if not x.precondition]
    # The early phase supports the claim: when it is not testable its criteria are undecided, not deciding.
    untestable = c.status == NOT_TESTABLE
    crit += [dataclasses.replace(x, essential=False, precondition=False,
                                 outcome=UNDECIDED if untestable and not x.precondition else x.outcome,
                                 text=("early phase precondition: " if x.precondition else "") + x.text)
             for x in c.criteria]
    measured = {f"{p}_{k}": v for p, part in zip(("el", "elr", "ep"), parts) for k, v in part.measured.items()}
    summary = (f"Early learning then memorization: {a.status}. ELR reduces memorization: {b.status}. "
               f"The early phase (clean labels): {c.status}. {a.summary} {b.summary}")
    return Verdict("Early learning, then memorization; ELR; the early phase", combine(crit, "paper"), summary,
                   measured, REFERENCE, crit, _scale(cfg, result, noise_note(cfg)))


def schedule_text(cfg, steps_per_epoch: int) -> str:
    """One sentence on the learning-rate schedule over the probed early phase (for the chapter's text)."""
    warmup_steps = int(cfg.warmup_frac * cfg.epochs * steps_per_epoch)
    if warmup_steps:
        return (f"The learning rate rises linearly over the first {warmup_steps:,} iterations (warm-up) and then "
                "decays (cosine); while it is still rising the weights cannot be expected to settle.")
    return ("There is no warm-up at this profile (as in the papers): the learning rate starts at its peak and decays "
            "along a cosine, so the early phase is not shaped by a rising learning rate.")


def deciding(v: Verdict) -> list[tuple[str, str, str]]:
    """The rows of the chapter's verdict box (``v`` from :func:`check`): the numbers that decide each part."""
    m = v.measured
    return [("mislabeled predicted as their true class, at its peak (cross-entropy)", "rises first",
             show(m["el_peak_true"])),
            ("mislabeled predicted as their wrong label, at the end (cross-entropy)", "→ ~100%",
             show(m["el_final_memorized"])),
            ("ELR's memorized fraction ÷ cross-entropy's", "much lower", show(m["elr_memorized_ratio"])),
            ("clean labels: distance moved per iteration per unit learning rate, first tenth of the window ÷ "
             "last tenth", "early phase fast, then settles", show(m["ep_step_ratio"])),
            (f"rewinding to k = {m['ep_rewind_k']} minus k = 0 (test accuracy)", "k ≈ 500–2,000 works, 0 does not (≈, unverified)",
             show(m["ep_rewind_gain"]))]


def caveats(cfg, result) -> str:
    """The chapter's caveats, written from the run's configuration (so a smoke build says smoke)."""
    spe = int(result.scalars["steps_per_epoch"])
    total = spe * cfg.epochs
    model = f"{model_title(cfg.model)} (width {cfg.width})"
    data = dataset_title(cfg.dataset)
    out = [f"This run is at the `{cfg.profile}` profile: {model} on {int(result.scalars['n_train']):,} {data} "
           f"images, {cfg.epochs} epochs of {spe} iterations ({total:,} in all), {len(result.scalars['seeds'])} "
           "seeds. The papers train ResNet-34 (Liu et al.) and ResNet-20 (Frankle et al.) on CIFAR-10: compare the "
           "shapes of the curves, not epochs or absolute accuracies.",
           f"Label noise: {noise_text(cfg)}. The reference row is therefore ELR's \"40% symmetric\" on CIFAR-10 "
           f"({REFERENCE['elr_test_acc_cifar10_40pct']:.2%} test accuracy with ELR, in the authors' README; about "
           f"{REFERENCE['ce_test_acc_cifar10_40pct']:.1%} with cross-entropy, a number we could not verify in the "
           "paper: ≈, unverified).",
           f"One optimizer setting for all arms (SGD lr {cfg.lr}, plain momentum {cfg.momentum}, weight decay "
           f"{cfg.weight_decay}, one cosine decay{', no warm-up' if not cfg.warmup_frac else ''}"
           f"{', no augmentation' if not cfg.augment else ''}); ELR's shipped config uses cosine annealing with "
           "warm restarts, and Frankle et al. use lr 0.1 divided by 10 at epochs 80 and 120.",
           f"The early phase is probed over the first {cfg.probe_steps:,} iterations "
           f"({cfg.probe_steps / max(1, total):.0%} of training; Frankle et al. look at the first 4,000 of 62,560, "
           "6%): at this scale a few iterations would show nothing. The criterion compares the distance the weights "
           "move per iteration, divided by the learning rate (so the schedule cannot make it), early against "
           "late: a training with steady steps gives about 1. The first steps are skipped while SGD's momentum "
           "buffer fills. A random walk with the clean run's step lengths is shown beside it, not decided on: it "
           "reaches half its distance at a quarter of the window by construction, and a trajectory with correlated "
           "steps later, so a real early phase could fail a comparison with it.",
           f"Rewinding prunes {cfg.rewind_sparsity:.0%} of the weights once (global magnitude) after the clean run "
           "and retrains the ticket from each k to the end, its learning rate and batch order continuing from k as "
           "in open_lth; the papers prune iteratively (20% a round). The verdict compares only "
           f"the pre-registered k = {cfg.rewind_k} with k = 0; the other k of the grid are shown, not tested.",
           f"Test accuracy is evaluated every {cfg.eval_every} epochs. The maximum of noisy evaluations favours a "
           "peak (with a flat curve it exceeds the last evaluation by about two standard deviations of the noise), "
           "so the drop criterion chooses the peak on alternate evaluations and reads its accuracy on the "
           "evaluation after it; the peak shown beside it is the plain maximum."]
    return "\n".join(f"- {x}" for x in out)
