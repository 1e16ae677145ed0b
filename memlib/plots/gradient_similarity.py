"""Claim 1 figures: the per-layer x per-epoch cosine heatmaps (both protocols) and the clean / mislabeled curves.

Sized for the book's 676 px text column: at most 7 in wide, panels stacked vertically, legends outside the data.
"""
from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.patches import Rectangle

from ..experiments.gradient_similarity import PROTOCOL_LABELS, PROTOCOLS
from .style import COLUMN_IN, PALETTE, figure

WIDTH = COLUMN_IN  # inches: the book's text column (wider would be clamped, with a warning)


def similarity_matrix(similarity: pd.DataFrame, protocol: str, max_epoch: int | None = None) -> pd.DataFrame:
    """Layers (rows, forward order) x epochs (columns) of one protocol's seed-averaged cosine similarity."""
    s = similarity[similarity.protocol == protocol]
    order = list(dict.fromkeys(s.layer))
    if max_epoch is not None:
        s = s[s.epoch <= max_epoch]
    return s.pivot_table(index="layer", columns="epoch", values="cosine", aggfunc="mean").reindex(order)


def heatmaps(result, window: tuple | None = None, protocols=PROTOCOLS):
    """One heatmap per protocol, stacked; the memorization window (epochs) outlined."""
    sim = result.tables["similarity"]
    mats = [(p, similarity_matrix(sim, p)) for p in protocols if (sim.protocol == p).any()]
    n_layers = max(m.shape[0] for _, m in mats)
    fig, axes = figure(len(mats), 1, figsize=(WIDTH, len(mats) * (0.28 * n_layers + 1.3) + 0.4), squeeze=False)
    for ax, (p, m) in zip(axes[:, 0], mats):
        sns.heatmap(m, ax=ax, cmap="RdBu_r", vmin=-1, vmax=1, center=0, linewidths=0.2,
                    cbar_kws={"label": "cosine", "pad": 0.02})
        ax.set_title(f"Gradients {PROTOCOL_LABELS[p]}", fontsize=11)
        ax.set_xlabel("epoch" + (" (0 = initialisation)" if 0 in m.columns else ""), fontsize=10)
        ax.set_ylabel("layer (input → output)", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.tick_params(axis="x", labelrotation=0)
        for lab in ax.get_xticklabels()[1::2] if m.shape[1] > 20 else []:
            lab.set_visible(False)
        if window and window[0] is not None:
            cols = list(m.columns)
            end = window[1] if window[1] is not None else cols[-1]
            if window[0] in cols and end in cols:
                a, b = cols.index(window[0]), cols.index(end) + 1
                ax.add_patch(Rectangle((a, 0), b - a, m.shape[0], fill=False, edgecolor="k", linewidth=1.5))
    return fig


def accuracy_curves(result, window: tuple | None = None):
    """Training accuracy of clean and mislabeled examples and test accuracy per epoch (mean, band: sd over seeds)."""
    h = result.tables["history"].dropna(subset=["train_clean_acc"])
    names = {"train_clean_acc": "clean (given = true label)",
             "train_noisy_acc": "mislabeled, as the wrong label (memorized)",
             "train_noisy_true": "mislabeled, as the true label",
             "test_acc": "test"}
    long = h.melt(id_vars=["epoch", "seed"], value_vars=list(names), var_name="what", value_name="accuracy")
    colors = {names["train_clean_acc"]: PALETTE["clean"], names["train_noisy_acc"]: PALETTE["noisy"],
              names["train_noisy_true"]: PALETTE["true"], names["test_acc"]: PALETTE["test"]}
    long["what"] = long["what"].map(names)
    fig, ax = figure(figsize=(WIDTH, 4.2))
    sns.lineplot(long, x="epoch", y="accuracy", hue="what", palette=colors, ax=ax, errorbar="sd", marker="o",
                 markersize=3)
    if window and window[0] is not None and window[1] is not None:
        ax.axvspan(window[0], window[1], color=PALETTE["noisy"], alpha=0.1, label="memorization window")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy (training: eval mode)")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=9, frameon=False)
    return fig


def gradient_norms(result, protocol: str):
    """Each group's gradient norm per layer group (mean over epochs and seeds), log scale."""
    s = result.tables["similarity"]
    s = s[(s.protocol == protocol) & (s.epoch >= 1)].groupby("layer", sort=False)[["norm_clean", "norm_noisy"]].mean()
    fig, ax = figure(figsize=(WIDTH, 3.4))
    s.plot.bar(ax=ax, color=[PALETTE["clean"], PALETTE["noisy"]], logy=True, rot=0)
    ax.set_ylabel("gradient norm (log)")
    ax.set_xlabel("layer group")
    ax.tick_params(labelsize=9)
    ax.legend(["clean", "mislabeled"], loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    return fig
