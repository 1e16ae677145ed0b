"""Claim 4 figures: per-epoch fractions (cross-entropy vs ELR) and the early-phase timeline."""
from __future__ import annotations

import pandas as pd
import seaborn as sns

from .style import PALETTE, figure

NAMES = {"train_noisy_true": "mislabeled → true class", "train_noisy_acc": "mislabeled → given wrong label (memorized)",
         "train_clean_acc": "clean train", "test_acc": "test"}
COLORS = {NAMES["train_noisy_true"]: PALETTE["true"], NAMES["train_noisy_acc"]: PALETTE["noisy"],
          NAMES["train_clean_acc"]: PALETTE["clean"], NAMES["test_acc"]: PALETTE["test"]}
LOSS_NAMES = {"ce": "cross-entropy", "elr": "cross-entropy + ELR"}


def _long(history: pd.DataFrame) -> pd.DataFrame:
    h = history.dropna(subset=["test_acc"])
    long = h.melt(id_vars=["seed", "loss", "epoch"], value_vars=list(NAMES), var_name="what", value_name="fraction")
    long["what"] = long["what"].map(NAMES)
    return long


def fractions(result, axes=None):
    """Liu et al.'s Figure 1, measured: per epoch, for each loss, the fractions of mislabeled training examples
    predicted as their true class / as their wrong label, with clean-train and test accuracy."""
    long = _long(result.tables["history"])
    losses = [l for l in ("ce", "elr") if l in set(long["loss"])]
    if axes is None:
        fig, axes = figure(1, len(losses), figsize=(5.2 * len(losses), 3.9), sharey=True, squeeze=False)
        axes = axes[0]
    for ax, loss in zip(axes, losses):
        sns.lineplot(long[long["loss"] == loss], x="epoch", y="fraction", hue="what", palette=COLORS, ax=ax,
                     errorbar="sd", marker="o", markersize=3, legend=ax is axes[0])
        ax.set_title(LOSS_NAMES[loss])
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("fraction of examples")
    axes[0].legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, fontsize=7, title=None, frameon=False)
    return axes[0].figure


def test_accuracy(result, stats: dict | None = None, ax=None):
    """Test accuracy per epoch, cross-entropy vs ELR, with each curve's peak marked."""
    h = result.tables["history"].dropna(subset=["test_acc"])
    h = h[h.epoch >= 1].assign(loss=lambda d: d["loss"].map(LOSS_NAMES))
    if ax is None:
        fig, ax = figure(figsize=(7, 3.6))
    sns.lineplot(h, x="epoch", y="test_acc", hue="loss", ax=ax, errorbar="sd", marker="o", markersize=3,
                 palette={LOSS_NAMES["ce"]: PALETTE["noisy"], LOSS_NAMES["elr"]: PALETTE["true"]})
    m = h.groupby(["loss", "epoch"]).test_acc.mean().reset_index()
    for loss, g in m.groupby("loss"):
        best = g.loc[g.test_acc.idxmax()]
        ax.annotate(f"peak {best.test_acc:.1%} (epoch {int(best.epoch)})", (best.epoch, best.test_acc),
                    xytext=(0, 8), textcoords="offset points", ha="center", fontsize=8)
        ax.plot([best.epoch], [best.test_acc], marker="*", ms=12,
                color=PALETTE["noisy"] if loss == LOSS_NAMES["ce"] else PALETTE["true"])
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy: peak, then fall?")
    ax.legend(fontsize=8)
    return ax.figure


def early_phase(result):
    """Frankle et al.'s early-phase timeline, measured: per iteration gradient norm, distance from
    initialization, fraction of weights with a changed sign; and test accuracy after rewinding to k."""
    e = result.tables["early_phase"]
    r = result.tables.get("rewind")
    has_rewind = r is not None and len(r) > 0
    n = 4 if has_rewind else 3
    fig, axes = figure(1, n, figsize=(3.6 * n, 3.3), squeeze=False)
    axes = axes[0]
    g = e[e.step >= 1]
    panels = [("grad_norm", "mini-batch gradient norm", True), ("rel_dist_init", "‖w − w₀‖ / ‖w₀‖", False),
              ("sign_changed", "weights with changed sign", False)]
    for ax, (col, label, logy) in zip(axes, panels):
        d = g if col == "grad_norm" else e
        sns.lineplot(d, x="step", y=col, ax=ax, errorbar="sd", color=PALETTE["ours"], lw=1)
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        if logy:
            ax.set_yscale("log")
        if has_rewind:
            for k in sorted(set(r.k)):
                if k <= e.step.max():
                    ax.axvline(k, color=PALETTE["paper"], lw=0.8, ls="--")
    axes[0].set_title("gradient magnitude")
    axes[1].set_title("distance from init")
    axes[2].set_title("sign changes")
    if has_rewind:
        ax = axes[3]
        sns.pointplot(r, x="k", y="test_acc", ax=ax, errorbar="sd", color=PALETTE["paper"])
        ax.set_xlabel("rewind iteration k")
        ax.set_ylabel("test accuracy after retraining")
        ax.set_title(f"rewinding ({r.sparsity.mean():.0%} pruned)")
    fig.suptitle("The early phase of training (dashed: rewind points)")
    return fig
