#!/usr/bin/env python
"""The verdicts' error rates, by simulation through each claim's own ``check`` with the staged seeds of its plan.

    .venv/bin/python tools/error_rates.py [--reps 2000] [--claims 01,05] [--seed 0]

For each of the five claims, hand-made results (tables shaped like the experiment's, as the claims' tests build them)
are drawn seed by seed and decided by the claim's ``check`` exactly as :func:`memlib.staged.decide` does: the first look
at the quick profile's seed count (``memlib.experiments.resolve(claim, "quick").seeds``); while
:func:`memlib.staged.undecided` names an essential criterion (every step of a hypothesis) or a precondition, the plan's
``stage`` of seeds is added (the earlier seeds' values unchanged: every value is drawn per seed), up to the plan's
``looks``; each look's criteria are settled for the plan's looks (:func:`memlib.claims.settle` and
:func:`~memlib.claims.combine` with ``looks``: the side against the claim on the 1 − 5%/(m·looks) interval, the side
for it on 1 − 5%/looks), and the verdict is the one at the stopping look.

Two least favourable configurations per claim:

* **against** (a false verdict *against* the claim: not reproduced / not supported / contradicted): every deciding
  quantity of the plan (essential criteria, matched nulls, maxima read on a plateau, supporting criteria) exactly at
  its threshold, every precondition clearly holding; for claim 5's *contradicted*, a second configuration with every
  step at its no-effect value (ratios 1, gaps 0), where only *contradicted* is false;
* **for** (a false verdict *for* it: reproduced / partly reproduced / supported): exactly one essential criterion (one
  step of the hypothesis) at its threshold and every other deciding quantity clearly on the claimed side, each
  essential criterion in turn (the worst is reported).

A verdict *for* the claim is false in every configuration (a deciding quantity sits at its threshold), so
``max_false_for`` is the largest rate of *for* verdicts over all configurations; ``max_false_against`` the largest rate
of *against* verdicts over the against configurations (for claim 5's no-effect configuration: *contradicted*).

Per-seed noise: each deciding quantity is drawn per seed as its mean plus a normal deviation with the spread recorded
by the newest calibration record (``calibration/*.json``, key ``seed_sd``) where it has one, else the spread the
claim's existing tests use (``DEFAULT_SD`` below; the table says which).  The fakes are built so that the claim's
``check`` reads exactly the drawn value per seed (up to a grid far finer than the spread).

The output: one table per claim (rates per configuration, with their counts, the mean seed count and the share of
runs stopped at the first look), then exactly one JSON line ``{"reps": N, "max_false_against": x, "max_false_for":
y}``.  ``tests/test_error_rates.py`` runs the same simulations (it imports this file).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import memlib.measure as _measure  # noqa: E402
from memlib.claims import (CONTRADICTED, NOT_REPRODUCED, NOT_SUPPORTED, NOT_TESTABLE, PARTLY, REPRODUCED,  # noqa: E402
                           SUPPORTED, combine, get_claim, settle)
from memlib.result import Result  # noqa: E402

FOR_CLAIM = (REPRODUCED, PARTLY, SUPPORTED)
AGAINST = (NOT_REPRODUCED, NOT_SUPPORTED, CONTRADICTED)
TARGET = 0.035  # the largest rate a test accepts at 2,000 repetitions (a true 5% fails it)
CLAIMS = ("gradient_similarity", "dropout_comparison", "outlier_percentiles", "early_learning", "lth_vs_dropout")


def cache_t_quantiles() -> None:
    """Memoize :func:`memlib.measure._t_quantile` (a pure function of the level and the degrees of freedom; scipy's
    ``t.ppf`` is a large share of a ``check``).  The values are the same; only the time changes."""
    if not hasattr(_measure._t_quantile, "cache_info"):
        _measure._t_quantile = functools.lru_cache(maxsize=None)(_measure._t_quantile)


# ================================================================================================ the staged procedure

@dataclass(frozen=True)
class Stages:
    initial: int  # the quick profile's seed count
    stage: int
    looks: int

    @property
    def most(self) -> int:
        return self.initial + (self.looks - 1) * self.stage


def stages(name: str) -> Stages:
    from memlib.experiments import resolve
    from memlib.plans import plan_of

    rule = plan_of(name).seeds
    return Stages(int(resolve(name, "quick").seeds), rule.stage, rule.looks)


def settled(v, looks: int):
    """``v`` with its criteria settled for the plan's ``looks`` and its status recombined, as check makes them when
    its configuration runs in stages (``looks_of(cfg)``; settling is monotone, so settling again at more looks is
    settling once at them)."""
    v.looks = looks
    v.criteria = settle(v.criteria, v.kind, looks)
    v.status = combine(v.criteria, v.kind, looks)
    return v


def staged_verdict(sim: "Sim", draws: dict, st: Stages) -> tuple[list[str], list[bool]]:
    """One repetition decided as :func:`memlib.staged.decide` does, each look by the claim's ``check`` on its own
    result (``draws``: per-seed arrays for the most seeds): the status and whether it stopped, per look taken."""
    from memlib.staged import undecided

    statuses, stops = [], []
    n = st.initial
    for look in range(1, st.looks + 1):
        v = settled(sim.check(sim.build(draws, n)), st.looks)
        statuses.append(v.status)
        stops.append(look == st.looks or not undecided(v))
        if stops[-1]:
            return statuses, stops
        n += st.stage
    raise AssertionError("unreachable")


class _Recorder:
    """Stands in for ``t_interval`` in a claim's module while its ``check`` runs on many repetitions at once (each
    repetition's seeds one block of the result's seeds): returns the interval over all of them, and keeps each call's
    per-seed values so that every criterion's interval can be recomputed on each repetition's block."""

    def __init__(self, real):
        self.real, self.calls = real, {}

    def __call__(self, values, unit="number", level=_measure.LEVEL, what="seeds"):
        vals = np.asarray([float(x) for x in values], dtype=float)
        iv = self.real(vals, unit, level, what)
        self.calls[id(iv)] = (iv, vals, unit, level, what)  # the interval is kept, so its id stays unique
        return iv


def _no_bootstrap(a, b, statistic, unit="number", level=_measure.LEVEL, **kw):
    """Claim 2's pooled AUC bootstrap (description only: it is in a criterion's note, never its interval) over every
    repetition's examples at once would take seconds; the batched path leaves it out (:func:`agreement` checks that the
    verdicts do not change)."""
    nan = float("nan")
    return _measure.Interval(nan, nan, nan, 0, "bootstrap (not computed in the batched simulation)", unit, level)


@dataclass
class Batch:
    """One ``check`` of many repetitions at once: its criteria as check built them, each with its per-seed values
    (repetitions × seeds; ``None`` for an interval not over seeds, the same in every repetition)."""

    kind: str
    plan: list

    def verdict(self, r: int, n: int, looks: int) -> tuple[str, bool]:
        """Repetition ``r``'s status with its first ``n`` seeds, settled for ``looks``, and whether the staged procedure
        stops there (:func:`memlib.staged.undecided` is empty).  Each criterion's interval is the same ``t_interval``
        call on those seeds, decided as :func:`memlib.claims.criterion` decides it."""
        import dataclasses
        from types import SimpleNamespace

        from memlib.claims import decide
        from memlib.staged import undecided

        crit = []
        for c, call in self.plan:
            iv = c.interval if call is None else call[0](call[1][r, :n], *call[2:])
            crit.append(dataclasses.replace(c, interval=iv, outcome=decide(iv, c.threshold, c.direction, c.opposite),
                                            against_level=_measure.LEVEL, for_level=_measure.LEVEL))
        crit = settle(crit, self.kind, looks)
        return combine(crit, self.kind, looks), not undecided(SimpleNamespace(criteria=crit, kind=self.kind))


def batch_check(sim: "Sim", draws: dict, reps: np.ndarray, n: int) -> Batch:
    """The claim's ``check`` once on repetitions ``reps`` with ``n`` seeds each (repetition r's seeds are the r-th
    block of ``n`` seeds of one result), recording every ``t_interval`` call's per-seed values.  Every quantity a
    criterion reads is per seed (the seeds of other repetitions do not change it; :func:`agreement` checks it against
    ``check`` on each repetition's own result), so a repetition's first ``k`` seeds give its look at ``k`` seeds."""
    k = len(reps)
    flat = {key: v[reps, :n].reshape(k * n, *v.shape[2:]) for key, v in draws.items()}
    mod = sim.module
    rec = _Recorder(mod.t_interval)
    saved = {a: getattr(mod, a) for a in ("t_interval", "bootstrap_two_sample") if hasattr(mod, a)}
    try:
        mod.t_interval = rec
        if "bootstrap_two_sample" in saved:
            mod.bootstrap_two_sample = _no_bootstrap
        v = sim.check(sim.build(flat, k * n))
    finally:
        for a, f in saved.items():
            setattr(mod, a, f)
    plan = []
    for c in v.criteria:
        call = rec.calls.get(id(c.interval))
        if call is None:
            if c.interval is None or c.threshold is None or c.interval.kind == "t":
                raise ValueError(f"{sim.name}: criterion {c.key!r} has an interval that is not one t_interval call")
            plan.append((c, None))  # not over seeds (e.g. a correlation over examples): the same in every repetition
            continue
        _, vals, unit, level, what = call
        if len(vals) != k * n:
            raise ValueError(f"{sim.name}: criterion {c.key!r} reads {len(vals)} values, not one per seed ({k * n})")
        plan.append((c, (rec.real, vals.reshape(k, n), unit, level, what)))
    return Batch(v.kind, plan)


# ================================================================================================ seed spreads

def recorded_sd(name: str) -> dict[str, float]:
    """``seed_sd`` of the claim's newest calibration record that has one (empty when none has)."""
    from memlib.calibration import records

    for path in reversed(records(name)):
        rec = json.loads(Path(path).read_text())
        if rec.get("seed_sd"):
            return {k: float(v) for k, v in rec["seed_sd"].items()}
    return {}


def seed_sds(sim: "Sim") -> tuple[dict[str, float], dict[str, str]]:
    """Per deciding quantity: its per-seed spread and where it comes from ('calibration' or 'tests')."""
    rec = recorded_sd(sim.name)
    sd, src = {}, {}
    for k, default in sim.default_sd.items():
        if k in rec and math.isfinite(rec[k]) and rec[k] > 0:
            sd[k], src[k] = rec[k], "calibration"
        else:
            sd[k], src[k] = default, "tests"
    return sd, src


# ================================================================================================ the fakes

class Sim:
    """A claim's fake results: ``draw`` the per-seed values of every deciding quantity (and nuisance noise) for the
    most seeds the plan can use, ``build`` a result from the first ``n`` seeds, ``check`` it with the claim's own
    check.  ``clear``: each quantity clearly on the claimed side (used where another one sits at its threshold);
    ``default_sd``: the spread per seed the claim's tests use."""

    name = ""
    chunk = 250  # repetitions per batched check (claim 1 scans its similarity table once per seed: smaller)
    default_sd: dict[str, float] = {}
    clear: dict[str, float] = {}
    noeffect: dict[str, float] | None = None

    def __init__(self):
        self.module = get_claim(self.name)

    def check(self, result):
        return self.module.check(result)

    def draw(self, rng, means: dict[str, float], sd: dict[str, float], shape: tuple) -> dict[str, np.ndarray]:
        """Every per-seed value, ``shape`` = (repetitions, seeds): the deciding quantities, then the nuisance."""
        d = {k: means[k] + sd[k] * rng.standard_normal(shape) for k in self.default_sd}
        d.update(self.nuisance(rng, tuple(shape)))
        return d

    def nuisance(self, rng, shape: tuple) -> dict[str, np.ndarray]:
        return {}

    def build(self, d: dict[str, np.ndarray], n: int) -> Result:
        raise NotImplementedError


def _clip(v, lo=0.0, hi=1.0):
    return np.clip(v, lo, hi)


class GradientSimilarity(Sim):
    """Claim 1.  Per seed: a history with four evaluations (epoch 0; the window's start, where the mislabeled accuracy
    passes 25%; its end, 90%; the last epoch, ``E``: the final accuracy), so the window's start and end are any share of
    training to 1/``E``; ``K`` layer × epoch cells in the window (two layer groups), of which a drawn share has a
    negative cosine, the placebo's share is the drawn excess below it, and the layer groups' mean cosines are the
    drawn maximum and 0.1 below it."""

    name = "gradient_similarity"
    chunk = 40
    E, K = 100_000, 100
    # the tests' spreads: ~16 window cells of cosines N(0, 0.3) per seed (share: binomial, 0.12; layer mean 0.13);
    # windows at epochs 5-7 and 10-12 of 20 (0.05)
    default_sd = {"negative_share": 0.12, "placebo_excess": 0.12, "window_start": 0.05, "window_end": 0.05,
                  "all_layers": 0.13}
    clear = {"negative_share": 0.85, "placebo_excess": 0.5, "window_start": 0.25, "window_end": 0.5,
             "all_layers": -0.3}

    def nuisance(self, rng, shape):
        return {"final": 0.99 + 0.005 * rng.standard_normal(shape)}  # the precondition (> 90%) clearly holds

    def build(self, d, n):
        from memlib.experiments.gradient_similarity import TRAINING

        E, K, half = self.E, self.K, self.K // 2
        start = np.clip(np.rint(E * d["window_start"][:n]), 1, E - 2).astype(int)
        end = np.clip(np.rint(E * d["window_end"][:n]), start + 1, E - 1).astype(int)
        seeds = np.arange(n)
        hist = pd.DataFrame({
            "seed": np.repeat(seeds, 4),
            "epoch": np.column_stack([np.zeros(n, int), start, end, np.full(n, E)]).ravel(),
            "train_noisy_acc": np.column_stack([np.full(n, 0.1), np.full(n, 0.3), np.full(n, 0.95),
                                                _clip(d["final"][:n])]).ravel(),
            "train_clean_acc": 0.95, "test_acc": 0.8, "train_noisy_true": 0.1})
        k = np.clip(np.rint(K * d["negative_share"][:n]), 0, K).astype(int)
        kp = np.clip(k - np.rint(K * d["placebo_excess"][:n]).astype(int), 0, K)
        cos = np.empty((n, K))
        plac = np.where(np.arange(K)[None, :] < kp[:, None], -0.1, 0.1)
        top = d["all_layers"][:n]
        for layer, (lo, kk, m) in enumerate(((0, k // 2, top), (half, k - k // 2, top - 0.1))):
            p = np.clip(kk / half, 1 / half, 1 - 1 / half)  # the edges (all of a layer one sign) are rarer than 1e-6
            neg = np.where(m < 0, ((1 - p) * 0.2 - m) / p, 0.2)
            pos = np.where(m < 0, 0.2, (m + p * 0.2) / (1 - p))
            idx = np.arange(half)[None, :]
            cos[:, lo:lo + half] = np.where(idx < kk[:, None], -neg[:, None], pos[:, None])
        sim = pd.DataFrame({"seed": np.repeat(seeds, K), "protocol": TRAINING, "epoch": np.repeat(start, K),
                            "layer": np.tile(np.repeat(["conv1", "conv2"], half), n), "cosine": cos.ravel(),
                            "placebo_cosine": plac.ravel()})
        return Result({"history": hist, "similarity": sim}, {"n_train": 1000})


class DropoutComparison(Sim):
    """Claim 2.  Per seed: the accuracy table's rows (example-tied dropout with its memorization channels dropped: the
    drawn mislabeled accuracy and gap; the untied control's gap = example-tied dropout's minus the drawn excess; the
    baselines and the preconditions clearly fitting), and an examples table of ``K`` kept clean examples and, for each
    of example-tied dropout and the untied control, one lost clean example placed so that its AUC is the drawn one
    (to 1/``K``)."""

    name = "dropout_comparison"
    K = 20
    # the tests' spreads (tests/test_dropout_comparison.py::_fake_result: 1 point of jitter per accuracy, 2 points on
    # example-tied dropout's clean accuracy in the error-rate fake); the AUCs: 0.05
    default_sd = {"etd_gap": 0.022, "etd_forgets_mislabeled": 0.01, "gap_beyond_untied": 0.027,
                  "sparse_fits_mislabeled": 0.01, "forgotten_atypical": 0.05, "atypical_beyond_untied": 0.05}
    clear = {"etd_gap": 0.7, "etd_forgets_mislabeled": 0.05, "gap_beyond_untied": 0.4, "sparse_fits_mislabeled": 0.99,
             "forgotten_atypical": 0.9, "atypical_beyond_untied": 0.3}

    def nuisance(self, rng, shape):
        return {f"pre{i}": 0.985 + 0.005 * rng.standard_normal(shape) for i in range(5)}

    def build(self, d, n):
        g = {k: v[:n] for k, v in d.items()}
        etd_noisy = _clip(g["etd_forgets_mislabeled"])
        etd_clean = _clip(etd_noisy + g["etd_gap"])
        untied_gap = (etd_clean - etd_noisy) - g["gap_beyond_untied"]
        un_noisy = _clip((1 - untied_gap) / 2)
        un_clean = _clip(un_noisy + untied_gap)
        rows = [("dropout", "eval", _clip(g["pre0"]), _clip(g["pre1"])), ("untied", "drop", un_clean, un_noisy),
                ("untied", "mean", _clip(g["pre2"]), np.full(n, 0.95)),
                ("sparse", "eval", np.ones(n), _clip(g["sparse_fits_mislabeled"])),
                ("example_tied", "drop", etd_clean, etd_noisy),
                ("example_tied", "own", _clip(g["pre3"]), _clip(g["pre4"]))]
        seeds = np.arange(n)
        acc = pd.DataFrame({"seed": np.tile(seeds, len(rows)), "method": np.repeat([r[0] for r in rows], n),
                            "mode": np.repeat([r[1] for r in rows], n),
                            "train_clean_acc": np.concatenate([r[2] for r in rows]),
                            "train_noisy_acc": np.concatenate([r[3] for r in rows]), "train_noisy_true": 0.0,
                            "test_acc": 0.8})
        K = self.K
        j = np.clip(np.rint(K * g["forgotten_atypical"]), 0, K)  # kept examples scored above the forgotten one
        ju = np.clip(np.rint(K * (g["forgotten_atypical"] - g["atypical_beyond_untied"])), 0, K)
        kept = np.arange(1, K + 1) / (K + 1)
        score = np.column_stack([np.tile(kept, (n, 1)), (K - j + 0.5) / (K + 1), (K - ju + 0.5) / (K + 1)])
        m = K + 2
        lost_etd = np.tile(np.arange(m) == K, n)
        lost_untied = np.tile(np.arange(m) == K + 1, n)
        ex = pd.DataFrame({"seed": np.repeat(seeds, m), "noisy": False, "label": 1, "forgotten": lost_etd,
                           "etd_pred_drop": np.where(lost_etd | lost_untied, 0, 1), "dropout_pred": 1,
                           "untied_pred_mean": 1, "untied_pred_drop": np.where(lost_etd | lost_untied, 0, 1),
                           "untied_forgotten": lost_untied, "cscore": score.ravel()})
        return Result({"accuracy": acc, "examples": ex}, {"n_train": 1000})


class OutlierPercentiles(Sim):
    """Claim 3, at the quick profile's datasets (Fashion-MNIST: the middle third should win; MNIST: the lowest).  Per
    seed and dataset: one window per third, the paper's best third at 80% test accuracy (with its own seed noise) and
    each other third below it by the drawn difference; the window models fit their windows and the metric models'
    halves agree (the preconditions)."""

    name = "outlier_percentiles"
    DATASETS = {"fashion-mnist": "middle", "mnist5k": "low"}
    # the tests' spread: 1 point of test accuracy per window and seed, so about 1.4 points on a difference
    default_sd = {f"{ds.replace('-', '_')}_{best}_minus_{o}": 0.014 for ds, best in DATASETS.items()
                  for o in ("low", "middle", "high") if o != best}
    clear = {k: 0.05 for k in default_sd}

    def nuisance(self, rng, shape):
        return {f"base_{ds}": 0.8 + 0.01 * rng.standard_normal(shape) for ds in self.DATASETS}

    def build(self, d, n):
        parts = []
        seeds = np.arange(n)
        for ds, best in self.DATASETS.items():
            key = ds.replace("-", "_")
            base = d[f"base_{ds}"][:n]
            acc = {r: base if r == best else base - d[f"{key}_{best}_minus_{r}"][:n] for r in ("low", "middle", "high")}
            for w, r in enumerate(("low", "middle", "high")):
                parts.append(pd.DataFrame({"dataset": ds, "seed": seeds, "window": w, "region": r, "pct_lo": 100 * w / 3,
                                           "pct_hi": 100 * (w + 1) / 3, "pct_mid": 100 * (w + 0.5) / 3,
                                           "test_acc": acc[r], "train_acc": 1.0, "adv_mean": float(w)}))
        per = {ds: {"spearman_adv_halves": 0.8, "n_pool": 5000} for ds in self.DATASETS}
        return Result({"curve": pd.concat(parts, ignore_index=True)}, {"per_dataset": per, "n_train": 5000})


class EarlyLearning(Sim):
    """Claim 4 (the chapter's verdict), the fake of the claim's own error-rate test (``_claim4`` there), drawn per seed.
    Cross-entropy's true-class fraction sits on a flat plateau at the drawn ``peak_true`` over evaluations 1-6 of 8
    (with evaluation noise), ``memorized_at_peak_true`` memorized over the same evaluations, so that whichever
    evaluation the peak is chosen on, the evaluation it is read at has the drawn value as its expectation (a maximum
    over the plateau would lean for the claim); evaluation 7 falls to 30% (never chosen) and evaluation 8 ends at the
    drawn ``final_memorized``.  Test accuracy is flat over the plateau and ends ``test_drop`` lower; ELR memorizes the
    drawn ratio of cross-entropy's final fraction, and its gains are the drawn ones.  The early phase (clean labels):
    the distance per iteration a 1/√t decay raised by exp(``early_phase_settles``) over the window's first tenth, the
    gradient norm ``grad_ratio`` times higher there, each with per-iteration noise; rewinding gains the drawn
    ``rewind_gain``."""

    name = "early_learning"
    EVAL_SD, STEPS = 0.01, 40
    # tests/test_error_rates.py::_claim4 (before this rewrite): 3 points per seed, 1 point per evaluation
    default_sd = {"peak_true": 0.03, "memorized_at_peak_true": 0.03, "final_memorized": 0.03, "test_drop": 0.01,
                  "elr_memorized_ratio": 0.03, "elr_true_gain": 0.03, "elr_test_gain": 0.03, "elr_drop_less": 0.014,
                  "early_phase_settles": 0.03, "grad_ratio": 0.05, "rewind_gain": 0.01}
    clear = {"peak_true": 0.60, "memorized_at_peak_true": 0.05, "final_memorized": 0.90, "test_drop": 0.05,
             "elr_memorized_ratio": 0.10, "elr_true_gain": 0.3, "elr_test_gain": 0.1, "elr_drop_less": 0.05,
             "early_phase_settles": 0.7, "grad_ratio": 2.0, "rewind_gain": 0.03}

    def nuisance(self, rng, shape):
        ev = lambda: self.EVAL_SD * rng.standard_normal((*shape, 6))  # noqa: E731
        return {"ev_true": ev(), "ev_mem": ev(), "ev_test": ev(), "ev_elr": ev(),
                "ce_end": 0.70 + 0.03 * rng.standard_normal(shape), "ce_true_end": 0.30 + 0.03 * rng.standard_normal(shape),
                "speed_noise": np.exp(0.05 * rng.standard_normal((*shape, self.STEPS))),
                "grad_noise": 1 + 0.05 * rng.standard_normal((*shape, self.STEPS))}

    def build(self, d, n):
        from memlib.experiments.early_learning import CE, CLEAN, ELR

        g = {k: v[:n] for k, v in d.items()}
        col = lambda v: np.asarray(v, float).reshape(n, -1) if np.ndim(v) else np.full((n, 1), float(v))  # noqa
        cat = lambda *parts: np.hstack([col(p) for p in parts])  # noqa: E731
        f = _clip(g["final_memorized"])
        ce_end = g["ce_end"]
        elr_end = ce_end + g["elr_test_gain"]
        ce_top = ce_end + g["test_drop"]
        elr_top = elr_end + g["test_drop"] - g["elr_drop_less"]
        arms = {
            CE: (cat(0.1, _clip(g["peak_true"][:, None] + g["ev_true"]), 0.30, _clip(g["ce_true_end"])),
                 cat(0.1, _clip(g["memorized_at_peak_true"][:, None] + g["ev_mem"]), 0.35, f),
                 cat(0.5, ce_top[:, None] + g["ev_test"], ce_end, ce_end)),
            ELR: (cat(0.1, np.full((n, 7), 0.5), _clip(g["ce_true_end"] + g["elr_true_gain"])),
                  cat(0.1, np.full((n, 7), 0.05), _clip(f * g["elr_memorized_ratio"])),
                  cat(0.5, elr_top[:, None] + g["ev_elr"], elr_end, elr_end)),
            CLEAN: (np.full((n, 9), np.nan), np.full((n, 9), np.nan), cat(0.1, np.full((n, 8), 0.9))),
        }
        clean = np.tile(np.r_[0.5, np.full(8, 0.95)], n)
        hist = pd.concat([pd.DataFrame({"seed": np.repeat(np.arange(n), 9), "arm": arm, "epoch": np.tile(np.arange(9), n),
                                        "train_clean_acc": clean, "train_noisy_acc": mem.ravel(),
                                        "train_noisy_true": true.ravel(), "test_acc": test.ravel()})
                          for arm, (true, mem, test) in arms.items()], ignore_index=True)
        T = self.STEPS
        t = np.arange(1, T + 1)
        first = t <= T // 10
        speed = 0.1 * t ** -0.5 * np.exp(np.where(first, 1.0, 0.0) * g["early_phase_settles"][:, None]) * g["speed_noise"]
        grad = np.where(first, g["grad_ratio"][:, None], 1.0) * g["grad_noise"]
        nanrow = np.full((n, 1), np.nan)
        steps = np.arange(T + 1)
        ep = pd.DataFrame({"seed": np.repeat(np.arange(n), T + 1), "arm": CLEAN, "step": np.tile(steps, n),
                           "grad_norm": np.hstack([nanrow, grad]).ravel(), "step_norm": np.hstack([nanrow, speed]).ravel(),
                           "lr": np.tile(np.r_[np.nan, np.full(T, 0.1)], n),
                           "dist_init": np.tile(np.sqrt(steps), n), "rel_dist_init": np.tile(np.sqrt(steps) / 10, n),
                           "sign_changed": np.tile(np.sqrt(steps), n), "null_dist_init": np.tile(steps ** 2.0, n),
                           "null_sign_changed": np.tile(steps ** 1.5, n)})
        rw = pd.DataFrame({"seed": np.repeat(np.arange(n), 2), "k": np.tile([0, 10], n), "k_frac": np.tile([0, 0.05], n),
                           "sparsity": 0.8, "test_acc": np.column_stack([np.full(n, 0.7), 0.7 + g["rewind_gain"]]).ravel()})
        return Result({"history": hist, "early_phase": ep, "rewind": rw}, {"seeds": list(range(n)), "n_train": 100})


class LthVsDropout(Sim):
    """Claim 5 (a hypothesis).  Per seed: one dropout site with one generalization and one memorization channel (the
    memorization channel moved the drawn ratio of the other's distance), the first pruning round removing the drawn
    enrichment times the chance share of memorization-channel weights, and per chain the random mask fitting the drawn
    gap more mislabeled examples than the ticket and that gap minus the drawn selectivity more clean ones; the
    example-tied network localizes and the dense ordinary one memorizes (the preconditions)."""

    name = "lth_vs_dropout"
    # tests/test_lth_vs_dropout.py::made_result, noise 0.03 (3% per channel and share; 3 points per accuracy)
    default_sd = {"moved": 0.014, "enrichment": 0.03, "etd_ticket_less": 0.042, "etd_ticket_selective": 0.06,
                  "ordinary_ticket_less": 0.042, "ordinary_ticket_selective": 0.06}
    clear = {"moved": 0.5, "enrichment": 1.4, "etd_ticket_less": 0.3, "etd_ticket_selective": 0.3,
             "ordinary_ticket_less": 0.3, "ordinary_ticket_selective": 0.3}
    noeffect = {"moved": 1.0, "enrichment": 1.0, "etd_ticket_less": 0.0, "etd_ticket_selective": 0.0,
                "ordinary_ticket_less": 0.0, "ordinary_ticket_selective": 0.0}

    def nuisance(self, rng, shape):
        return {"etd_dropped": 0.05 + 0.01 * rng.standard_normal(shape),
                "dense_fit": 0.9 + 0.01 * rng.standard_normal(shape)}

    def build(self, d, n):
        from memlib.experiments.lth_vs_dropout import FINAL_ARMS, Chain
        from memlib.pruning import Arm

        g = {k: v[:n] for k, v in d.items()}
        seeds = np.arange(n)
        channels = pd.DataFrame({"seed": np.repeat(seeds, 2), "site": 0, "layer": "l0", "channel": np.tile([0, 1], n),
                                 "group": np.tile(["generalization", "memorization"], n),
                                 "moved": np.column_stack([np.full(n, 0.01), 0.01 * g["moved"]]).ravel(),
                                 "mean_abs": 0.02, "l2": 1.0})
        overlap = pd.DataFrame({"seed": seeds, "round": 1, "site": 0, "layer": "l0", "available": 1000.0,
                                "available_mem": 600.0, "removed": 200.0, "removed_mem": 200.0 * 0.6 * g["enrichment"],
                                "sparsity": 0.2})
        parts = []
        for chain, key, dense_noisy in ((Chain.ETD, "etd", _clip(g["etd_dropped"])),
                                        (Chain.ORDINARY, "ordinary", _clip(g["dense_fit"]))):
            gap, sel = g[f"{key}_ticket_less"], g[f"{key}_ticket_selective"]
            parts.append(pd.DataFrame({"seed": seeds, "chain": chain.value, "arm": Arm.DENSE.value, "round": 0,
                                       "sparsity": 0.0, "train_clean_acc": 0.98, "train_noisy_acc": dense_noisy,
                                       "train_noisy_true": 0.05, "test_acc": 0.8}))
            for arm in dict.fromkeys((Arm.MAGNITUDE_K, *FINAL_ARMS[chain])):
                rnd = arm is Arm.RANDOM_K
                parts.append(pd.DataFrame({"seed": seeds, "chain": chain.value, "arm": arm.value, "round": 2,
                                           "sparsity": 0.91, "train_clean_acc": 0.5 + (gap - sel if rnd else 0.0),
                                           "train_noisy_acc": 0.5 + (gap if rnd else 0.0), "train_noisy_true": 0.1,
                                           "test_acc": 0.75}))
        return Result({"channels": channels, "overlap": overlap, "arms": pd.concat(parts, ignore_index=True)},
                      {"n_train": 1000})


SIMS = {cls.name: cls for cls in (GradientSimilarity, DropoutComparison, OutlierPercentiles, EarlyLearning,
                                  LthVsDropout)}


# ================================================================================================ configurations

@dataclass(frozen=True)
class Configuration:
    label: str
    side: str  # "against", "contradicted" (only contradicted is false) or "for"
    means: dict


def configurations(sim: Sim) -> list[Configuration]:
    """The claim's least favourable configurations: every deciding quantity at its threshold (against); for a
    hypothesis, every step at no effect (contradicted); each essential criterion (step) in turn at its threshold with
    every other quantity clearly on the claimed side (for)."""
    from memlib.plans import plan_of

    plan = plan_of(sim.name)
    at = {s.key: s.threshold for s in plan.criteria if s.key in sim.default_sd}
    missing = [s.key for s in plan.criteria if s.key not in sim.default_sd and s.over == "seeds"
               and (s.essential or plan.kind == "hypothesis") and not _other_dataset(sim, s.key)]
    if missing:
        raise ValueError(f"{sim.name}: the simulation lacks the planned deciding quantities {missing}")
    clear = clear_means(sim, plan, seed_sds(sim)[0])
    out = [Configuration("every deciding quantity at its threshold", "against", at)]
    if sim.noeffect is not None:
        out.append(Configuration("every step at no effect (ratios 1, gaps 0)", "contradicted", dict(sim.noeffect)))
    for s in plan.criteria:
        if s.key in at and (s.essential or plan.kind == "hypothesis"):
            out.append(Configuration(f"{s.key} at its threshold, the others clear", "for",
                                     {**clear, s.key: s.threshold}))
    return out


def clear_means(sim: Sim, plan, sd: dict[str, float]) -> dict[str, float]:
    """Each quantity clearly on the claimed side: the simulation's clear value, or 10 seed spreads from the threshold
    where that is farther (so that with the first look's seeds it holds almost surely, whatever the spread: the
    least favourable case for a false verdict for the claim is the others holding)."""
    out = {}
    for s in plan.criteria:
        if s.key in sim.clear:
            dist = max(abs(sim.clear[s.key] - s.threshold), 10 * sd[s.key])
            out[s.key] = s.threshold + (dist if s.direction == "above" else -dist)
    return out


def power_configuration(sim: Sim) -> Configuration:
    """Every deciding quantity at the effect its plan names, on the claimed side of its threshold: the paper's value
    where the plan gives one (``paper``), else its smallest effect of interest (``effect``); quantities with neither
    at the simulation's clear value."""
    from memlib.plans import plan_of

    means = dict(sim.clear)
    for s in plan_of(sim.name).criteria:
        if s.key in sim.default_sd and s.distance is not None:
            means[s.key] = s.threshold + (s.distance if s.direction == "above" else -s.distance)
    return Configuration("every quantity at the paper's value or the smallest effect of interest", "power", means)


def _other_dataset(sim: Sim, key: str) -> bool:
    """Claim 3's criteria of datasets the quick profile does not run (its plan declares all four datasets)."""
    return isinstance(sim, OutlierPercentiles) and not any(key.startswith(ds.replace("-", "_") + "_")
                                                           for ds in sim.DATASETS)


# ================================================================================================ simulation

@dataclass
class Rates:
    claim: str
    config: Configuration
    reps: int
    statuses: pd.Series
    looks: np.ndarray  # per repetition: the looks it took
    seeds: float
    first_look: float
    seconds: float

    @property
    def against(self) -> float:
        false = (CONTRADICTED,) if self.config.side == "contradicted" else AGAINST
        return float(self.statuses.isin(false).mean())

    @property
    def for_claim(self) -> float:
        return float(self.statuses.isin(FOR_CLAIM).mean())

    @property
    def not_testable(self) -> float:
        return float((self.statuses == NOT_TESTABLE).mean())

    def row(self) -> dict:
        n = self.reps
        return {"configuration": self.config.label, "false side": self.config.side,
                "against": f"{self.against:.4f} ({round(self.against * n)})",
                "for": f"{self.for_claim:.4f} ({round(self.for_claim * n)})",
                "inconclusive": f"{float((self.statuses == 'inconclusive').mean()):.3f}",
                "not testable": f"{self.not_testable:.3f}", "mean seeds": f"{self.seeds:.2f}",
                "stopped at look 1": f"{self.first_look:.3f}", "s": f"{self.seconds:.0f}"}


def simulate(name: str, config: Configuration, reps: int, seed: int = 0, sd: dict | None = None,
             direct: bool = False) -> Rates:
    """``reps`` staged verdicts of claim ``name`` under ``config`` (seeded: deterministic).  ``direct``: every look of
    every repetition through the claim's ``check`` on its own result (slow); else batched (:func:`batch_check`)."""
    cache_t_quantiles()
    sim = SIMS[name]()
    st = stages(name)
    sd = sd or seed_sds(sim)[0]
    draws = sim.draw(np.random.default_rng(seed), config.means, sd, (reps, st.most))
    t0 = time.process_time()
    status = np.empty(reps, dtype=object)
    taken = np.zeros(reps, dtype=int)
    if direct:
        for r in range(reps):
            ss, _ = staged_verdict(sim, {k: v[r] for k, v in draws.items()}, st)
            status[r], taken[r] = ss[-1], len(ss)
    else:
        for i in range(0, reps, sim.chunk):
            chunk = np.arange(i, min(reps, i + sim.chunk))
            batch = batch_check(sim, draws, chunk, st.most)
            for j, r in enumerate(chunk):
                for look in range(1, st.looks + 1):
                    s_, stop = batch.verdict(j, st.initial + (look - 1) * st.stage, st.looks)
                    if stop or look == st.looks:
                        status[r], taken[r] = s_, look
                        break
    seeds = st.initial + (taken - 1) * st.stage
    return Rates(name, config, reps, pd.Series(list(status)), taken, float(seeds.mean()), float((taken == 1).mean()),
                 time.process_time() - t0)


def agreement(name: str, config: Configuration, reps: int, seed: int = 0) -> tuple[int, int]:
    """Of ``reps`` repetitions, how many end with the same status after the same looks batched
    (:func:`batch_check`) as through the claim's ``check`` on each repetition's own result, look by look
    (:func:`staged_verdict`): the same draws both ways."""
    a = simulate(name, config, reps, seed, direct=True)
    b = simulate(name, config, reps, seed, direct=False)
    same = (a.statuses.to_numpy() == b.statuses.to_numpy()) & (a.looks == b.looks)
    return int(same.sum()), reps


def run_claim(name: str, reps: int, seed: int = 0) -> list[Rates]:
    sim = SIMS[name]()
    sd, _ = seed_sds(sim)
    return [simulate(name, c, reps, seed + 1000 * i, sd) for i, c in enumerate(configurations(sim))]


def maxima(rates: list[Rates]) -> tuple[float, float]:
    """The largest false-against rate (against configurations) and false-for rate (every configuration)."""
    against = max(r.against for r in rates if r.config.side in ("against", "contradicted"))
    return against, max(r.for_claim for r in rates)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2000, help="repetitions per configuration (default 2000)")
    ap.add_argument("--claims", default="", help="comma-separated claim numbers or names (default: all five)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--power", type=int, default=0, metavar="N",
                    help="also N staged verdicts per claim at the papers' effect sizes (the plans' paper values, else "
                         "their smallest effects of interest), with the seed rule's prediction beside them")
    args = ap.parse_args(argv)
    from memlib.experiments import get_experiment

    names = [get_experiment(c.strip()).NAME for c in args.claims.split(",") if c.strip()] or list(CLAIMS)
    pd.set_option("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60)
    every = []
    for i, name in enumerate(names):
        sim = SIMS[name]()
        sd, src = seed_sds(sim)
        st = stages(name)
        from memlib.plans import plan_of

        kind = plan_of(name).kind
        print(f"\n== claim {CLAIMS.index(name) + 1}: {name} ({kind}) — seeds {st.initial}, +{st.stage} while undecided, "
              f"{st.looks} looks (at most {st.most} seeds); {args.reps} repetitions per configuration")
        print("   per-seed spreads: " + ", ".join(f"{k} {v:.3g} ({src[k]})" for k, v in sd.items()), flush=True)
        rates = run_claim(name, args.reps, args.seed + 100_000 * i)
        print(pd.DataFrame([r.row() for r in rates]).to_string(index=False), flush=True)
        a, f = maxima(rates)
        print(f"   worst: false against {a:.4f}, false for {f:.4f}"
              + ("" if max(a, f) <= TARGET else f"   ** above {TARGET} **"), flush=True)
        if args.power:
            from memlib.plan import planned_seeds

            p = simulate(name, power_configuration(sim), args.power, args.seed + 100_000 * i + 99_999, sd)
            rule = planned_seeds(plan_of(name), sd)
            print(f"   power (effects {', '.join(f'{k} {v:g}' for k, v in p.config.means.items())}): for the claim "
                  f"{p.for_claim:.3f}, against {p.against:.3f}, inconclusive "
                  f"{float((p.statuses == 'inconclusive').mean()):.3f} of {args.power}; the seed rule wants "
                  f"{rule['wanted']} seeds at these spreads (at most {rule['cap']} here)", flush=True)
        every += rates
    a, f = maxima(every)
    print(json.dumps({"reps": args.reps, "max_false_against": round(a, 4), "max_false_for": round(f, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
