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
  window_size == n``).
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


def window_table(n: int, window_size: int, n_windows: int) -> pd.DataFrame:
    """One row per window: rank range and its percentiles (0 = lowest score)."""
    rows = []
    for w, (a, b) in enumerate(windows(n, window_size, n_windows)):
        rows.append({"window": w, "start": a, "stop": b, "pct_lo": 100 * a / n, "pct_hi": 100 * b / n,
                     "pct_mid": 100 * (a + b) / (2 * n)})
    return pd.DataFrame(rows)


def region(pct_mid: float) -> str:
    """'low' (centre below the 33rd percentile), 'high' (above the 67th) or 'middle'."""
    if pct_mid < 100 / 3:
        return "low"
    if pct_mid > 200 / 3:
        return "high"
    return "middle"


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    ra = pd.Series(np.asarray(a, dtype=float)).rank().to_numpy()
    rb = pd.Series(np.asarray(b, dtype=float)).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])
