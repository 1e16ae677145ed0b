"""Claim 1 reference (Maini et al. 2023, via the talk) and its verdict."""
from __future__ import annotations

import pandas as pd

from . import Verdict, status_from

CITATION = "Maini et al. (2023), Can Neural Network Memorization Be Localized?"
REFERENCE = {
    "setting": "ResNet-9, CIFAR-10, 10% label noise, ~50 epochs, 3 seeds",
    "memorization_window_epochs": (10, 30),
    "window_fraction_of_training": (10 / 50, 30 / 50),
    "similarity": "low or negative in every layer (memorization is not confined to the last layers)",
}
START_LEVEL, END_LEVEL = 0.10, 0.90  # mislabeled train accuracy (on the wrong label) bounding the window
LOW_COSINE = 0.2


def mean_history(history: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in history.columns if c not in ("seed",)]
    return history[cols].groupby("epoch").mean(numeric_only=True).reset_index()


def memorization_window(history: pd.DataFrame) -> tuple[int | None, int | None]:
    """First epoch at which mislabeled accuracy reaches 10%, and first at which it reaches 90%."""
    h = mean_history(history).dropna(subset=["train_noisy_acc"])
    h = h[h.epoch >= 1]
    start = h.loc[h.train_noisy_acc >= START_LEVEL, "epoch"]
    end = h.loc[h.train_noisy_acc >= END_LEVEL, "epoch"]
    return (int(start.iloc[0]) if len(start) else None, int(end.iloc[0]) if len(end) else None)


def layer_cosines(similarity: pd.DataFrame, upto: int | None) -> pd.Series:
    """Mean cosine per layer over epochs 1..upto (seeds averaged), in forward order."""
    s = similarity[(similarity.epoch >= 1) & ((similarity.epoch <= upto) if upto else True)]
    order = list(dict.fromkeys(similarity.layer))
    return s.groupby("layer", sort=False).cosine.mean().reindex(order)


def check(result, cfg=None) -> Verdict:
    hist, sim = result.tables["history"], result.tables["similarity"]
    h = mean_history(hist)
    epochs = int(h.epoch.max())
    start, end = memorization_window(hist)
    final_noisy = float(h.train_noisy_acc.iloc[-1])
    early = h[h.epoch <= max(1, epochs // 5)]
    peak_true = float(early.train_noisy_true.max())
    peak_true_epoch = int(early.loc[early.train_noisy_true.idxmax(), "epoch"])
    layers = layer_cosines(sim, end or epochs)
    n_low = int((layers < LOW_COSINE).sum())
    crit = [
        ("mislabeled examples get memorized (train accuracy on the wrong labels reaches 90%)",
         end is not None, f"final {final_noisy:.1%}; reaches 90% at epoch {end}"),
        ("memorization is delayed: under 10% on the wrong labels at epoch 1",
         bool(h.loc[h.epoch == 1, "train_noisy_acc"].iloc[0] < START_LEVEL),
         f"epoch 1: {h.loc[h.epoch == 1, 'train_noisy_acc'].iloc[0]:.1%}; window starts at epoch {start}"),
        ("early learning: in the first fifth of training the model predicts the true class of many (>= 40%) "
         "mislabeled examples", peak_true >= 0.4, f"peak {peak_true:.1%} at epoch {peak_true_epoch}"),
        (f"gradient similarity is low (< {LOW_COSINE}) in every layer until memorization completes",
         n_low == len(layers), f"{n_low} of {len(layers)} layers; range {layers.min():.2f} to {layers.max():.2f}"),
    ]
    status = status_from(crit, essential=1)
    frac = (f"{start / epochs:.0%}–{end / epochs:.0%} of training" if start is not None and end is not None
            else "no complete window")
    summary = (f"Mislabeled examples were memorized between epochs {start} and {end} of {epochs} ({frac}); "
               f"the paper reports epochs 10–30 of about 50 (20%–60%). "
               f"Per-layer cosine similarity (epochs 1–{end or epochs}) ranged {layers.min():.2f} to "
               f"{layers.max():.2f}.")
    measured = {"window_start": start, "window_end": end, "epochs": epochs, "final_noisy_acc": final_noisy,
                "peak_noisy_true": peak_true, "peak_noisy_true_epoch": peak_true_epoch,
                "cosine_min": float(layers.min()), "cosine_max": float(layers.max()),
                "final_test_acc": float(h.test_acc.iloc[-1]), "final_clean_acc": float(h.train_clean_acc.iloc[-1])}
    return Verdict("Gradient similarity and the memorization window", status, summary, measured, REFERENCE, crit)
