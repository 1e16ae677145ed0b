"""Outlier scores (Carlini et al. 2019): the adv metric and model confidence, ranking and percentile windows.

* ``adv``: for each example, the L2 distance to the decision boundary of a trained model (see
  :mod:`memlib.attacks`), averaged over several independently trained models; an example a model already
  classifies as another class than its label counts as distance 0.  Small = outlier, large = prototypical.
* ``conf``: the softmax probability a model gives the example's label, averaged over the same models (a second,
  cheap score of the paper's family, computed without any attack).
* Ranking sorts ascending (lowest score = 0th percentile); ties (e.g. distance 0 for examples every model
  misclassifies) are broken by ``conf`` (less confident = more of an outlier), then by position.
* Windows are ``n_windows`` runs of ``window_size`` consecutive ranks, with start positions spread evenly from
  the first rank to the last possible one (consecutive, non-overlapping windows when ``n_windows *
  window_size == n``).  :func:`balanced_windows` makes them *class-balanced*: the pool is ranked within each
  class and window ``w`` takes the same within-class percentile range from every class, so every window holds
  ``window_size / K`` examples of each of the K classes and class composition cannot shape the curve.
* Regions: the windows, in percentile order, are cut into three equal groups (*low*, *middle*, *high*), so no
  region holds more windows than another (``n_windows`` must be a multiple of 3).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .attacks import min_l2_distance
from .train import predict

REGIONS = ("low", "middle", "high")


def adv_distances(models: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, steps: int = 50,
                  overshoot: float = 0.02, search_steps: int = 20, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Per-model distances [M, N] (0 where the model misclassifies), predictions and convergence flags."""
    dist, conv, correct = [], [], []
    for m in models:
        r = min_l2_distance(m, x, steps=steps, overshoot=overshoot, search_steps=search_steps,
                            batch_size=batch_size)
        ok = r.pred == y
        dist.append(torch.where(ok, r.distance, torch.zeros_like(r.distance)).cpu().numpy())
        conv.append((r.converged | ~ok).cpu().numpy())
        correct.append(ok.cpu().numpy())
    return {"distance": np.stack(dist), "converged": np.stack(conv), "correct": np.stack(correct)}


@torch.no_grad()
def label_confidence(models: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                     batch_size: int = 2048) -> np.ndarray:
    """Softmax probability of the given label under each model: [M, N]."""
    out = []
    for m in models:
        p = torch.softmax(predict(m, x, batch_size=batch_size, precision="fp32"), 1)
        out.append(p.gather(1, y[:, None])[:, 0].cpu().numpy())
    return np.stack(out)


def rank_order(scores, tiebreak=None) -> np.ndarray:
    """Positions sorted by ascending score; ties by ascending ``tiebreak`` (if given), then by position."""
    scores = np.asarray(scores)
    if tiebreak is None:
        return np.argsort(scores, kind="stable")
    return np.lexsort((np.arange(len(scores)), np.asarray(tiebreak), scores))


def windows(n: int, window_size: int, n_windows: int) -> list[tuple[int, int]]:
    """``[start, stop)`` rank ranges of ``n_windows`` windows of ``window_size`` ranks spread over ``n`` ranks."""
    if window_size < 1 or n_windows < 1:
        raise ValueError(f"window_size and n_windows must be >= 1, got {window_size} and {n_windows}")
    if window_size > n:
        raise ValueError(f"window_size {window_size} is larger than the pool of {n} examples")
    if n_windows > n - window_size + 1:
        raise ValueError(f"{n_windows} windows of {window_size} do not fit in {n} examples with distinct starts "
                         f"(at most {n - window_size + 1})")
    if n_windows == 1:
        return [(0, window_size)]
    starts = np.rint(np.linspace(0, n - window_size, n_windows)).astype(int)
    return [(int(s), int(s) + window_size) for s in starts]


def window_region(window: int, n_windows: int) -> str:
    """The region of window ``window`` (0-based, in percentile order): the first third of the windows is 'low',
    the second 'middle', the last 'high'.  ``n_windows`` must be a multiple of 3 (equal-sized regions)."""
    if n_windows % len(REGIONS):
        raise ValueError(f"n_windows must be a multiple of {len(REGIONS)} for equal-sized regions, got {n_windows}")
    if not 0 <= window < n_windows:
        raise ValueError(f"window {window} is outside 0..{n_windows - 1}")
    return REGIONS[len(REGIONS) * window // n_windows]


def balanced_windows(labels, scores_rank, window_size: int, n_windows: int,
                     num_classes: int) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Class-balanced percentile windows.

    ``labels`` and ``scores_rank`` (any ascending score or rank, lower = more of an outlier) are per pool
    position.  Each class's positions are sorted by ``scores_rank`` and cut into ``n_windows`` windows of
    ``window_size // num_classes`` examples (:func:`windows`); window ``w`` is the union over classes of their
    ``w``-th window.  Returns the positions of each window and a table with, per window, its size, its
    percentile range averaged over the classes and its region.
    """
    labels, scores_rank = np.asarray(labels), np.asarray(scores_rank)
    per = window_size // num_classes
    if per < 1:
        raise ValueError(f"window_size {window_size} is smaller than the {num_classes} classes: a balanced window "
                         "needs at least one example of each")
    members: list[list[np.ndarray]] = [[] for _ in range(n_windows)]
    lo, hi = np.zeros(n_windows), np.zeros(n_windows)
    for c in range(num_classes):
        pos = np.flatnonzero(labels == c)
        if len(pos) < per + n_windows - 1:
            raise ValueError(f"class {c} has {len(pos)} examples in the pool: too few for {n_windows} windows of "
                             f"{per} per class; raise n_train or lower window_size / n_windows")
        ordered = pos[np.argsort(scores_rank[pos], kind="stable")]
        for w, (a, b) in enumerate(windows(len(pos), per, n_windows)):
            members[w].append(ordered[a:b])
            lo[w] += 100 * a / len(pos) / num_classes
            hi[w] += 100 * b / len(pos) / num_classes
    out = [np.sort(np.concatenate(m)) for m in members]
    table = pd.DataFrame({"window": np.arange(n_windows), "size": [len(m) for m in out], "pct_lo": lo, "pct_hi": hi,
                          "pct_mid": (lo + hi) / 2, "region": [window_region(w, n_windows) for w in range(n_windows)]})
    return out, table


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    ra = pd.Series(np.asarray(a, dtype=float)).rank().to_numpy()
    rb = pd.Series(np.asarray(b, dtype=float)).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])
