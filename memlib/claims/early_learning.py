"""Claim 4 references (Liu et al. 2020; Frankle et al. 2020) and verdicts computed from the measured run.

Three verdicts: :func:`check_early_learning` (cross-entropy first predicts the true class of many mislabeled
examples, then memorizes their wrong labels, and test accuracy peaks early then falls), :func:`check_elr`
(early-learning regularization reduces that memorization), and :func:`check_early_phase` (Frankle et al.'s
early-phase quantities change fast, then settle).  :func:`check` (what the book's summary shows) combines the
first two.
"""
from __future__ import annotations

import pandas as pd

from . import NOT_REPRODUCED, PARTLY, REPRODUCED, Verdict, status_from

CITATION = ("Liu, Niles-Weed, Razavian, Fernandez-Granda (2020), Early-Learning Regularization Prevents "
            "Memorization of Noisy Labels; Frankle, Schwab, Morcos (2020), The Early Phase of Neural Network "
            "Training")
REFERENCE = {
    "setting": "ResNet-34 on CIFAR-10 with 40% symmetric label noise (Liu et al., Figure 1); ResNet-20 on "
               "CIFAR-10 (Frankle et al., Figure 2)",
    "early_learning": "with cross-entropy, the fraction of mislabeled examples predicted as their true class "
                      "first rises, then falls while the fraction predicted as the wrong label rises to ~100%; "
                      "test accuracy peaks early, then drops",
    "elr": "with ELR the wrong labels are not memorized and the true-class fraction stays high",
    "elr_beta": 0.7, "elr_lambda": 3.0,  # CIFAR-10 (paper and authors' config)
    "elr_test_acc_cifar10_40pct": 0.8915,  # Liu et al. Table 1 (ELR, 40% symmetric noise)
    "early_phase": "gradient magnitudes, distance from init, sign changes and the success of rewinding change "
                   "quickly over the first few hundred to few thousand iterations, then settle",
}

# Thresholds of the criteria (fractions of examples / accuracy points).
PEAK_TRUE = 0.40        # early learning: at least this many mislabeled predicted as true class at the peak
MEMORIZED = 0.50        # memorization: at least this many mislabeled predicted as their wrong label at the end
TEST_DROP = 0.02        # test accuracy falls at least 2 points after its peak
ELR_LESS = 0.5          # ELR's memorized fraction at most half of cross-entropy's
ELR_TRUE_GAIN = 0.10    # ELR keeps 10+ points more mislabeled examples on their true class
ELR_TEST_GAIN = 0.01    # ELR's final test accuracy 1+ point higher


def mean_history(history: pd.DataFrame, loss: str) -> pd.DataFrame:
    """Seed-averaged per-epoch history of one loss (``ce`` / ``elr``), evaluated epochs only."""
    h = history[history["loss"] == loss].dropna(subset=["test_acc"])
    cols = [c for c in h.columns if c not in ("seed", "loss")]
    return h[cols].groupby("epoch").mean(numeric_only=True).reset_index()


def curve_stats(history: pd.DataFrame, loss: str) -> dict:
    """Peaks and end values of one loss's curves (seed-averaged)."""
    h = mean_history(history, loss)
    t = h[h.epoch >= 1]
    i_true = t.train_noisy_true.idxmax()
    i_test = t.test_acc.idxmax()
    mem = t.loc[t.train_noisy_acc >= MEMORIZED, "epoch"]
    cross = t.loc[t.train_noisy_acc > t.train_noisy_true, "epoch"]
    last = h.iloc[-1]
    return {
        "epochs": int(h.epoch.max()),
        "peak_true": float(t.loc[i_true, "train_noisy_true"]), "peak_true_epoch": int(t.loc[i_true, "epoch"]),
        "memorized_at_peak_true": float(t.loc[i_true, "train_noisy_acc"]),
        "final_true": float(last.train_noisy_true), "final_memorized": float(last.train_noisy_acc),
        "memorized_half_epoch": int(mem.iloc[0]) if len(mem) else None,
        "crossover_epoch": int(cross.iloc[0]) if len(cross) else None,
        "peak_test": float(t.loc[i_test, "test_acc"]), "peak_test_epoch": int(t.loc[i_test, "epoch"]),
        "final_test": float(last.test_acc), "test_drop": float(t.loc[i_test, "test_acc"] - last.test_acc),
        "final_clean": float(last.train_clean_acc),
    }


def check_early_learning(result, cfg=None) -> Verdict:
    s = curve_stats(result.tables["history"], "ce")
    crit = [
        (f"early learning: the fraction of mislabeled examples predicted as their true class peaks at "
         f">= {PEAK_TRUE:.0%} while few (< 20%) are memorized",
         s["peak_true"] >= PEAK_TRUE and s["memorized_at_peak_true"] < 0.2,
         f"peak {s['peak_true']:.1%} at epoch {s['peak_true_epoch']}, memorized then {s['memorized_at_peak_true']:.1%}"),
        (f"then memorization: at the end >= {MEMORIZED:.0%} of mislabeled examples are predicted as their wrong "
         f"label, more than as their true class",
         s["final_memorized"] >= MEMORIZED and s["final_memorized"] > s["final_true"],
         f"end: {s['final_memorized']:.1%} memorized, {s['final_true']:.1%} true class; "
         f"memorized overtakes true class at epoch {s['crossover_epoch']}"),
        (f"test accuracy peaks early and then falls by >= {TEST_DROP * 100:.0f} points",
         s["peak_test_epoch"] < s["epochs"] and s["test_drop"] >= TEST_DROP,
         f"peak {s['peak_test']:.1%} at epoch {s['peak_test_epoch']} of {s['epochs']}, end {s['final_test']:.1%} "
         f"(drop {s['test_drop'] * 100:.1f} points)"),
    ]
    status = status_from(crit, essential=2)
    summary = (f"With cross-entropy, {s['peak_true']:.0%} of the mislabeled training examples were predicted as "
               f"their true class at epoch {s['peak_true_epoch']}; by epoch {s['epochs']} "
               f"{s['final_memorized']:.0%} were predicted as their wrong label and {s['final_true']:.0%} as the "
               f"true one. Test accuracy peaked at {s['peak_test']:.1%} (epoch {s['peak_test_epoch']}) and ended "
               f"at {s['final_test']:.1%}.")
    return Verdict("Early learning, then memorization", status, summary, s, REFERENCE, crit)


def check_elr(result, cfg=None) -> Verdict:
    h = result.tables["history"]
    ce, elr = curve_stats(h, "ce"), curve_stats(h, "elr")
    crit = [
        (f"ELR memorizes less: its final memorized fraction is at most {ELR_LESS:.0%} of cross-entropy's",
         elr["final_memorized"] <= ELR_LESS * ce["final_memorized"],
         f"ELR {elr['final_memorized']:.1%} vs CE {ce['final_memorized']:.1%}"),
        (f"ELR keeps >= {ELR_TRUE_GAIN * 100:.0f} points more mislabeled examples on their true class at the end",
         elr["final_true"] - ce["final_true"] >= ELR_TRUE_GAIN,
         f"ELR {elr['final_true']:.1%} vs CE {ce['final_true']:.1%}"),
        (f"ELR's final test accuracy is >= {ELR_TEST_GAIN * 100:.0f} point higher",
         elr["final_test"] - ce["final_test"] >= ELR_TEST_GAIN,
         f"ELR {elr['final_test']:.1%} vs CE {ce['final_test']:.1%}"),
        ("ELR's test accuracy falls less after its peak",
         elr["test_drop"] < ce["test_drop"],
         f"drop ELR {elr['test_drop'] * 100:.1f} vs CE {ce['test_drop'] * 100:.1f} points"),
    ]
    status = status_from(crit, essential=1)
    summary = (f"At the end of training, ELR had memorized {elr['final_memorized']:.0%} of the mislabeled examples "
               f"against {ce['final_memorized']:.0%} for cross-entropy, predicted {elr['final_true']:.0%} (vs "
               f"{ce['final_true']:.0%}) as their true class, and reached {elr['final_test']:.1%} test accuracy "
               f"(vs {ce['final_test']:.1%}).")
    measured = {**{f"ce_{k}": v for k, v in ce.items()}, **{f"elr_{k}": v for k, v in elr.items()}}
    return Verdict("Early-learning regularization reduces memorization", status, summary, measured, REFERENCE, crit)


def phase_stats(early_phase: pd.DataFrame, rewind: pd.DataFrame | None = None) -> dict:
    """Summary numbers of the per-iteration early-phase table (seed-averaged) and the rewinding table."""
    e = early_phase.groupby("step").mean(numeric_only=True).reset_index()
    last = int(e.step.max())
    d_end, s_end = float(e.dist_init.iloc[-1]), float(e.sign_changed.iloc[-1])
    half_d = e.loc[e.dist_init >= 0.5 * d_end, "step"]
    half_s = e.loc[e.sign_changed >= 0.5 * s_end, "step"]
    g = e[e.step >= 1]
    n = max(1, len(g) // 10)
    out = {"probe_steps": last, "final_dist": d_end, "final_rel_dist": float(e.rel_dist_init.iloc[-1]),
           "final_sign_changed": s_end,
           "half_dist_step": int(half_d.iloc[0]) if len(half_d) else None,
           "half_sign_step": int(half_s.iloc[0]) if len(half_s) else None,
           "grad_first": float(g.grad_norm.iloc[:n].mean()) if len(g) else float("nan"),
           "grad_last": float(g.grad_norm.iloc[-n:].mean()) if len(g) else float("nan")}
    if rewind is not None and len(rewind):
        r = rewind.groupby("k").mean(numeric_only=True).reset_index()
        best = r.loc[r.test_acc.idxmax()]
        out.update({"rewind_k0_test": float(r.test_acc.iloc[0]) if int(r.k.iloc[0]) == 0 else float("nan"),
                    "rewind_best_k": int(best.k), "rewind_best_test": float(best.test_acc),
                    "rewind_sparsity": float(r.sparsity.iloc[0])})
    return out


def check_early_phase(result, cfg=None) -> Verdict:
    ep = result.tables.get("early_phase")
    if ep is None or len(ep) < 3:
        return Verdict("The early phase of training", NOT_REPRODUCED, "No early-phase probes were recorded "
                       "(probe_steps = 0).", {}, REFERENCE, [])
    s = phase_stats(ep, result.tables.get("rewind"))
    last = s["probe_steps"]
    crit = [
        ("distance from initialization is front-loaded: half of the distance reached at the end of the probed "
         "window is reached within its first quarter",
         s["half_dist_step"] is not None and s["half_dist_step"] <= last / 4,
         f"half reached at iteration {s['half_dist_step']} of {last}"),
        ("sign changes are front-loaded: half of the signs that flip within the window flip in its first quarter",
         s["half_sign_step"] is not None and s["half_sign_step"] <= last / 4,
         f"half reached at iteration {s['half_sign_step']} of {last} ({s['final_sign_changed']:.1%} flipped)"),
        ("gradient norms are largest at the start (first tenth of the window > last tenth)",
         s["grad_first"] > s["grad_last"], f"{s['grad_first']:.3g} vs {s['grad_last']:.3g}"),
    ]
    if "rewind_best_k" in s:
        r = result.tables["rewind"].groupby("k").test_acc.mean()
        crit.append(("rewinding to an early iteration k > 0 beats rewinding to initialization (k = 0)",
                     bool(len(r) > 1 and r.iloc[1:].max() > r.iloc[0]),
                     ", ".join(f"k={int(k)}: {v:.1%}" for k, v in r.items())))
    status = status_from(crit, essential=1)
    summary = (f"Over the first {last} iterations the weights moved {s['final_rel_dist']:.0%} of their initial norm "
               f"away from initialization (half of that by iteration {s['half_dist_step']}) and "
               f"{s['final_sign_changed']:.1%} of them changed sign (half of those by iteration "
               f"{s['half_sign_step']}).")
    return Verdict("The early phase of training", status, summary, s, REFERENCE, crit)


def check(result, cfg=None) -> Verdict:
    """The chapter's overall verdict over its three parts: early learning then memorization, ELR reducing it, and
    the early phase (Frankle et al.).  Reproduced only if all three are; not reproduced only if none is."""
    parts = [check_early_learning(result, cfg), check_elr(result, cfg), check_early_phase(result, cfg)]
    statuses = [v.status for v in parts]
    if all(s == REPRODUCED for s in statuses):
        status = REPRODUCED
    elif all(s == NOT_REPRODUCED for s in statuses):
        status = NOT_REPRODUCED
    else:
        status = PARTLY
    a, b, c = parts
    measured = {k: v for part in parts for k, v in part.measured.items()}
    return Verdict("Early learning, then memorization; ELR; the early phase", status,
                   f"Early learning then memorization: {a.status}. ELR reduces memorization: {b.status}. "
                   f"Early phase front-loaded: {c.status}. {a.summary} {b.summary} {c.summary}", measured, REFERENCE,
                   [crit for part in parts for crit in part.criteria])


def schedule_text(cfg, steps_per_epoch: int) -> str:
    """One sentence on the learning-rate schedule over the probed early phase (for the chapter's text)."""
    warmup_steps = int(cfg.warmup_frac * cfg.epochs * steps_per_epoch)
    if warmup_steps:
        return (f"The learning rate rises linearly over the first {warmup_steps:,} iterations (warm-up) and then "
                "decays (cosine); while it is still rising the weights cannot be expected to settle.")
    return ("There is no warm-up at this profile (as in the papers): the learning rate starts at its peak and decays "
            "along a cosine, so the early phase is not shaped by a rising learning rate.")
