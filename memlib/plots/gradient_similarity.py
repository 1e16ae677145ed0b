"""Claim 1 figures: the per-layer x per-epoch cosine heatmap and the clean / mislabeled curves."""
from __future__ import annotations

import pandas as pd
import seaborn as sns

from .style import PALETTE, figure


def similarity_matrix(similarity: pd.DataFrame, max_epoch: int | None = None) -> pd.DataFrame:
    """Layers (rows, forward order) x epochs (columns) of the seed-averaged cosine similarity."""
    order = list(dict.fromkeys(similarity.layer))
    s = similarity if max_epoch is None else similarity[similarity.epoch <= max_epoch]
    return s.pivot_table(index="layer", columns="epoch", values="cosine", aggfunc="mean").reindex(order)


def heatmap(result, max_epoch: int | None = None, layers: list[str] | None = None, ax=None):
    m = similarity_matrix(result.tables["similarity"], max_epoch)
    if layers:
        m = m.loc[[l for l in m.index if l in layers]]
    if ax is None:
        fig, ax = figure(figsize=(min(14, 2 + 0.35 * m.shape[1]), 0.45 * m.shape[0] + 1.5))
    sns.heatmap(m, ax=ax, cmap="RdBu_r", vmin=-1, vmax=1, center=0, cbar_kws={"label": "cosine similarity"},
                linewidths=0.2)
    ax.set_xlabel("epoch (0 = initialisation)")
    ax.set_ylabel("layer (input → output)")
    ax.set_title("Clean vs mislabeled average gradients, per layer and epoch")
    return ax.figure


def accuracy_curves(result, window: tuple | None = None, ax=None):
    h = result.tables["history"].dropna(subset=["train_clean_acc"])
    long = h.melt(id_vars=["epoch", "seed"], value_vars=["train_clean_acc", "train_noisy_acc", "train_noisy_true",
                                                         "test_acc"], var_name="what", value_name="accuracy")
    names = {"train_clean_acc": "clean train (given = true label)",
             "train_noisy_acc": "mislabeled train, predicted as the wrong label (memorized)",
             "train_noisy_true": "mislabeled train, predicted as the true label",
             "test_acc": "test"}
    colors = {names["train_clean_acc"]: PALETTE["clean"], names["train_noisy_acc"]: PALETTE["noisy"],
              names["train_noisy_true"]: PALETTE["true"], names["test_acc"]: PALETTE["test"]}
    long["what"] = long["what"].map(names)
    if ax is None:
        fig, ax = figure(figsize=(8, 4.2))
    sns.lineplot(long, x="epoch", y="accuracy", hue="what", palette=colors, ax=ax, errorbar="sd", marker="o",
                 markersize=3)
    if window and window[0] is not None and window[1] is not None:
        ax.axvspan(window[0], window[1], color=PALETTE["noisy"], alpha=0.08, label="memorization window")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="center right", fontsize=8)
    ax.set_title("Training accuracy on clean and mislabeled examples")
    return ax.figure


def gradient_norms(result, ax=None):
    s = result.tables["similarity"]
    s = s[s.epoch >= 1].groupby("layer", sort=False)[["norm_clean", "norm_noisy"]].mean()
    if ax is None:
        fig, ax = figure(figsize=(8, 3.4))
    s.plot.bar(ax=ax, color=[PALETTE["clean"], PALETTE["noisy"]], logy=True)
    ax.set_ylabel("mean gradient norm (log)")
    ax.set_title("Average-gradient norm per layer (mean over epochs)")
    ax.legend(["clean", "mislabeled"])
    return ax.figure
