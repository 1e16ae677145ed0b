"""Claim 5 figures: channel weight magnitudes, pruning overlap, and accuracies of the pruned networks."""
from __future__ import annotations

import pandas as pd
import seaborn as sns

from .style import PALETTE, figure

GROUP_COLORS = {"generalization": PALETTE["clean"], "memorization": PALETTE["noisy"]}
ARM_COLORS = {"dense": "#555555", "magnitude / rewind to 0": "#1f77b4", "magnitude / rewind to k": "#2ca02c",
              "magnitude / random re-init": "#9467bd", "random mask / rewind to k": "#d62728",
              "example-tied (ticket search)": "#ff7f0e"}


def magnitudes(result, rnd: int = 1, stat: str = "mean_abs"):
    """Distribution of per-channel mean |w| for generalization vs memorization channels (one panel per site)."""
    c = result.tables["channels"]
    c = c[c["round"] == rnd]
    sites = list(dict.fromkeys(c.layer))
    fig, axes = figure(1, len(sites), figsize=(min(16, max(6.5, 4.2 * len(sites))), 3.6), squeeze=False)
    for ax, layer in zip(axes[0], sites):
        d = c[c.layer == layer]
        sns.histplot(d, x=stat, hue="group", palette=GROUP_COLORS, stat="density", common_norm=False,
                     element="step", ax=ax, bins=30)
        ax.set_title(f"layer {layer}")
        ax.set_xlabel("mean |w| of a channel's incoming weights" if stat == "mean_abs" else stat)
    fig.suptitle("Channel weight magnitudes after example-tied training (all seeds)")
    return fig


def overlap(result):
    """Share of the weights removed by magnitude pruning that lie in memorization channels, vs chance."""
    o = result.tables["overlap"].groupby(["seed", "round"])[["removed", "removed_mem", "available",
                                                            "available_mem"]].sum().reset_index()
    o["magnitude pruning"] = o.removed_mem / o.removed
    o["chance"] = o.available_mem / o.available
    long = o.melt(id_vars=["seed", "round"], value_vars=["magnitude pruning", "chance"], var_name="what",
                  value_name="share")
    fig, ax = figure(figsize=(6, 3.6))
    sns.barplot(long, x="round", y="share", hue="what", palette=[PALETTE["noisy"], "#aaaaaa"], errorbar="sd",
                ax=ax)
    ax.set_ylim(0, 1)
    ax.set_xlabel("pruning round")
    ax.set_ylabel("share of removed weights\nin memorization channels")
    ax.set_title("Does magnitude pruning hit memorization channels?")
    ax.legend(fontsize=8)
    return fig


def accuracies(result, include_search: bool = False):
    """Clean / mislabeled training accuracy and test accuracy of every arm against sparsity (mean ± sd)."""
    a = result.tables["arms"].copy()
    if not include_search:
        a = a[a.arm != "example-tied (ticket search)"]
    dense = a[a.arm == "dense"]
    pruned = a[a.arm != "dense"]
    metrics = {"train_clean_acc": "clean training examples", "train_noisy_acc": "mislabeled, given (wrong) label",
               "test_acc": "test set"}
    fig, axes = figure(1, 3, figsize=(15, 4), sharex=True)
    for ax, (col, title) in zip(axes, metrics.items()):
        sns.lineplot(pruned, x="sparsity", y=col, hue="arm", palette=ARM_COLORS, errorbar="sd", marker="o", ax=ax,
                     legend=ax is axes[-1])
        ax.axhline(dense[col].mean(), color=ARM_COLORS["dense"], ls="--", lw=1, label="dense")
        ax.set_title(title)
        ax.set_ylabel("accuracy")
        ax.set_xlabel("fraction of weights pruned")
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle("Retrained pruned networks (dashed: dense network)")
    return fig


def arms_table(result) -> pd.DataFrame:
    """Mean ± sd over seeds per round and arm, as formatted strings."""
    a = result.tables["arms"]
    cols = {"train_clean_acc": "clean train", "train_noisy_acc": "mislabeled train (given label)",
            "test_acc": "test"}
    g = a.groupby(["round", "arm"], sort=False)
    out = pd.DataFrame({"sparsity": g.sparsity.mean().map("{:.0%}".format)})
    for c, name in cols.items():
        mean, sd = g[c].mean(), g[c].std()
        out[name] = [f"{m:.1%}" + (f" ± {s:.1%}" if s == s else "") for m, s in zip(mean, sd)]
    return out
