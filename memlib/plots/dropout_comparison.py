"""Claim 2 figures: the accuracy comparison beside Table 3, the forgotten clean examples, their atypicality."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from ..claims import dropout_comparison as claim
from ..experiments.dropout_comparison import DROP, DROPOUT, EVAL, EXAMPLE_TIED, OWN, SPARSE, UNTIED
from .style import COLUMN_IN, PALETTE, figure, image_grid

WIDTH = COLUMN_IN  # inches: the book's text column
SHORT = {(DROPOUT, EVAL): "standard\ndropout", (SPARSE, EVAL): "sparse\nnetwork",
         (EXAMPLE_TIED, DROP): "example-tied\n(mem. dropped)",
         (UNTIED, DROP): "untied control\n(mem. dropped)", (EXAMPLE_TIED, OWN): "example-tied\n(mem. kept)"}
SCORES = {"cscore": ("held-out consistency score (C-score estimate): accuracy of models that did not see the "
                     "example", "Held-out consistency of each group"),
          "dropout_aum": ("standard-dropout model: margin on the given label, averaged over training",
                          "How well the standard-dropout model fits each group")}


def accuracy_bars(result, ax=None):
    """Clean / mislabeled training accuracy per model (bars: mean over seeds, dots: seeds; diamonds: paper)."""
    acc = result.tables["accuracy"]
    acc = acc[[(m, mo) in SHORT for m, mo in zip(acc.method, acc["mode"])]].copy()
    acc["model"] = [SHORT[(m, mo)] for m, mo in zip(acc.method, acc["mode"])]
    long = acc.melt(id_vars=["seed", "model"], value_vars=["train_clean_acc", "train_noisy_acc"],
                    var_name="group", value_name="accuracy")
    long["group"] = long.group.map({"train_clean_acc": "clean", "train_noisy_acc": "mislabeled"})
    order = [v for k, v in SHORT.items() if v in set(long.model)]
    colors = {"clean": PALETTE["clean"], "mislabeled": PALETTE["noisy"]}
    if ax is None:
        fig, ax = figure(figsize=(WIDTH, 3.8))
    sns.barplot(long, x="model", y="accuracy", hue="group", order=order, hue_order=["clean", "mislabeled"],
                palette=colors, errorbar=None, alpha=0.85, ax=ax)
    sns.stripplot(long, x="model", y="accuracy", hue="group", order=order, hue_order=["clean", "mislabeled"],
                  palette=colors, dodge=True, color="k", size=3, ax=ax, legend=False, edgecolor="k", linewidth=0.6)
    ref = {SHORT[(DROPOUT, EVAL)]: claim.REFERENCE[DROPOUT], SHORT[(SPARSE, EVAL)]: claim.REFERENCE[SPARSE],
           SHORT[(EXAMPLE_TIED, DROP)]: claim.REFERENCE[EXAMPLE_TIED]}
    first = True
    for i, name in enumerate(order):
        if name in ref:
            for dx, key in ((-0.2, "clean"), (0.2, "noisy")):
                ax.scatter(i + dx, ref[name][key], marker="D", s=28, color=PALETTE["paper"], zorder=5,
                           edgecolor="k", linewidth=0.5, label="paper (Table 3)" if first else None)
                first = False
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("")
    ax.set_ylabel("training accuracy (given label)")
    ax.tick_params(labelsize=9)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    return ax.figure


def forgotten_grid(result, n: int | None = None, ncols: int = 6):
    """Clean training examples forgotten when the memorization channels are dropped (least consistent first)."""
    g = result.tables["grid"]
    classes = result.scalars["classes"]
    if n is not None:
        g = g.head(n)
    if g.empty:
        fig, ax = figure(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no clean training example was forgotten", ha="center", va="center")
        return fig
    images = result.arrays["grid"][g.image.to_numpy()]
    titles = [f"given: {classes[int(a)]}\nnow: {classes[int(b)]}" for a, b in zip(g.label, g.etd_pred_drop)]
    fig = image_grid(images, titles, ncols=ncols, size=WIDTH / ncols)
    for ax in fig.axes:
        ax.title.set_fontsize(9)
    return fig


def atypicality(result, column: str = "cscore", ax=None):
    """Distribution of a per-example score (``cscore``: held-out consistency; ``dropout_aum``: the standard-dropout
    model's area under the margin) for kept clean, forgotten clean and mislabeled training examples (all seeds)."""
    ex = result.tables["examples"]
    clean = ~ex.noisy.astype(bool)
    group = np.where(~clean, "mislabeled", np.where(ex.forgotten.astype(bool), "clean, forgotten",
                                                    np.where(ex.etd_pred_drop == ex.label, "clean, kept",
                                                             "clean, never fit")))
    df = pd.DataFrame({"group": group, "score": ex[column]})
    order = [g for g in ("clean, kept", "clean, forgotten", "clean, never fit", "mislabeled") if g in set(group)]
    colors = {"clean, kept": PALETTE["clean"], "clean, forgotten": PALETTE["paper"],
              "clean, never fit": PALETTE["test"], "mislabeled": PALETTE["noisy"]}
    if ax is None:
        fig, ax = figure(figsize=(WIDTH, 3.2))
    sns.boxplot(df, x="score", y="group", order=order, hue="group", palette=colors, ax=ax, showfliers=False,
                legend=False)
    sns.stripplot(df, x="score", y="group", order=order, color="k", size=1.5, alpha=0.25, ax=ax)
    counts = df.group.value_counts()
    ax.set_yticks(range(len(order)), [f"{g} (n = {counts[g]:,})" for g in order])
    if column == "dropout_aum":
        ax.axvline(0, color="k", lw=0.8, ls=":")
    xlabel, title = SCORES.get(column, (column, column))
    ax.set_xlabel(xlabel, fontsize=10)
    ax.set_ylabel("")
    ax.tick_params(labelsize=9)
    return ax.figure
