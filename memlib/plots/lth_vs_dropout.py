"""Claim 5 (chapter 5) figures: how far channels moved, what pruning removes, and what the pruned networks fit.

Every figure is at most 7 in wide (the book's text column), panels stacked vertically, legends outside the data.
"""
from __future__ import annotations

import pandas as pd
import seaborn as sns

from ..experiments.lth_vs_dropout import Chain
from ..probes.channels import GENERALIZATION, MEMORIZATION
from ..pruning import Arm
from .style import COLUMN_IN, PALETTE, figure

GROUP_COLORS = {GENERALIZATION: PALETTE["clean"], MEMORIZATION: PALETTE["noisy"]}
ARM_COLORS = {Arm.DENSE.value: "#555555", Arm.MAGNITUDE_K.value: "#2ca02c", Arm.MAGNITUDE_0.value: "#1f77b4",
              Arm.REINIT.value: "#9467bd", Arm.RANDOM_K.value: "#d62728"}
CHAIN_MARKERS = {Chain.ETD.value: "s", Chain.ORDINARY.value: "o"}
METRICS = {"train_clean_acc": "clean training examples", "train_noisy_acc": "mislabeled examples fit (given label)",
           "test_acc": "test set"}
LEGEND = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)


def magnitudes(result):
    """Per channel, after example-tied training: distance moved from initialisation (top, what step 1 decides on)
    and size |w| (bottom, the second view), generalization vs memorization channels, per dropout site."""
    c = result.tables["channels"].copy()
    c["site"] = c["layer"]
    fig, axes = figure(2, 1, figsize=(COLUMN_IN, 6), sharex=True)
    for ax, (stat, label) in zip(axes, [("moved", "mean |w − w0| of a channel"), ("mean_abs", "mean |w| of a channel")]):
        sns.stripplot(c, x="site", y=stat, hue="group", palette=GROUP_COLORS, dodge=True, size=3, alpha=0.6, ax=ax,
                      legend=ax is axes[0])
        ax.set_ylabel(label, fontsize=10)
        ax.set_xlabel("")
        ax.tick_params(labelsize=9)
    axes[0].legend(title="channel group", title_fontsize=9, **LEGEND)
    axes[0].set_title("Distance moved from initialisation (step 1)", fontsize=11)
    axes[1].set_title("Weight size (second view)", fontsize=11)
    axes[1].set_xlabel("layer before each example-tied dropout site", fontsize=10)
    axes[1].tick_params(axis="x", labelrotation=20)
    return fig


def overlap(result):
    """Share of the weights removed by magnitude pruning that lie in memorization channels, vs chance, per round."""
    o = result.tables["overlap"].groupby(["seed", "round"])[["removed", "removed_mem", "available",
                                                            "available_mem"]].sum().reset_index()
    o["magnitude pruning"] = o.removed_mem / o.removed
    o["chance"] = o.available_mem / o.available
    long = o.melt(id_vars=["seed", "round"], value_vars=["magnitude pruning", "chance"], var_name="what",
                  value_name="share")
    fig, ax = figure(figsize=(COLUMN_IN, 3.4))
    sns.barplot(long, x="round", y="share", hue="what", palette=[PALETTE["noisy"], "#aaaaaa"], errorbar=("ci", 95),
                ax=ax)
    ax.set_ylim(0, 1)
    ax.set_xlabel("pruning round (example-tied chain)", fontsize=10)
    ax.set_ylabel("share of removed weights\nin memorization channels", fontsize=10)
    ax.legend(**LEGEND)
    return fig


def accuracies(result):
    """What the retrained networks fit at the last pruning round, per branch and chain (one point per seed, the
    mean with its 95% interval), against the dense ordinary network (dashed)."""
    a = result.tables["arms"]
    last = a[(a["round"] == a["round"].max()) | (a.arm == Arm.DENSE.value)]
    last = last[~((last.chain == Chain.ETD.value) & (last.arm == Arm.DENSE.value))]  # its accuracy is drop-mode
    order = [arm.value for arm in Arm]
    fig, axes = figure(3, 1, figsize=(COLUMN_IN, 8.5), sharex=True)
    for ax, (col, title) in zip(axes, METRICS.items()):
        sns.pointplot(last, x="arm", y=col, hue="chain", order=order, markers=list(CHAIN_MARKERS.values()),
                      hue_order=list(CHAIN_MARKERS), dodge=0.3, errorbar=("ci", 95), linestyle="none", ax=ax,
                      legend=ax is axes[0])
        ax.set_title(title, fontsize=11)
        ax.set_ylabel("accuracy", fontsize=10)
        ax.set_xlabel("")
        ax.set_ylim(-0.02, 1.02)
        ax.tick_params(labelsize=9)
    axes[0].legend(title="mask found by", title_fontsize=9, **LEGEND)
    for label in axes[-1].get_xticklabels():
        label.set_rotation(20)
        label.set_ha("right")
    sp = a.loc[a["round"] == a["round"].max(), "sparsity"].mean()
    axes[-1].set_xlabel(f"start of the retraining ({sp:.1%} of weights pruned; dense: none)", fontsize=10)
    return fig


def tickets_by_sparsity(result):
    """The ordinary lottery ticket at every pruning level (mean over seeds with 95% intervals), with the last
    level's random mask: clean and mislabeled training accuracy and test accuracy against sparsity."""
    a = result.tables["arms"]
    o = a[(a.chain == Chain.ORDINARY.value) & a.arm.isin([Arm.DENSE.value, Arm.MAGNITUDE_K.value])]
    r = a[(a.chain == Chain.ORDINARY.value) & (a.arm == Arm.RANDOM_K.value)]
    long = o.melt(id_vars=["seed", "sparsity"], value_vars=list(METRICS), var_name="metric", value_name="accuracy")
    long["metric"] = long.metric.map(METRICS)
    rl = r.melt(id_vars=["seed", "sparsity"], value_vars=list(METRICS), var_name="metric", value_name="accuracy")
    rl["metric"] = rl.metric.map(METRICS)
    fig, ax = figure(figsize=(COLUMN_IN, 3.6))
    pal = {METRICS["train_clean_acc"]: PALETTE["clean"], METRICS["train_noisy_acc"]: PALETTE["noisy"],
           METRICS["test_acc"]: PALETTE["test"]}
    sns.lineplot(long, x="sparsity", y="accuracy", hue="metric", palette=pal, marker="o", errorbar=("ci", 95), ax=ax)
    sns.scatterplot(rl, x="sparsity", y="accuracy", hue="metric", palette=pal, marker="X", s=70, ax=ax, legend=False)
    ax.set_xlabel("fraction of weights pruned (✕: random mask)", fontsize=10)
    ax.set_ylabel("accuracy", fontsize=10)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(**LEGEND)
    return fig


def arms_table(result) -> pd.DataFrame:
    """Mean ± sd over seeds per chain, round and branch, as formatted strings."""
    a = result.tables["arms"]
    cols = {"train_clean_acc": "clean train", "train_noisy_acc": "mislabeled train (given label)",
            "test_acc": "test"}
    g = a.groupby(["chain", "round", "arm"], sort=False)
    out = pd.DataFrame({"sparsity": g.sparsity.mean().map("{:.1%}".format)})
    for c, name in cols.items():
        mean, sd = g[c].mean(), g[c].std()
        out[name] = [f"{m:.1%}" + (f" ± {s:.1%}" if s == s else "") for m, s in zip(mean, sd)]
    return out
