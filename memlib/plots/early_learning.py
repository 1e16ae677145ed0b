"""Claim 4 figures: per-epoch fractions (cross-entropy vs ELR on noisy labels) and the early-phase timeline (clean
vs noisy labels, against the random-walk null).  Sized for the book's text column; panels are stacked."""
from __future__ import annotations

import pandas as pd
import seaborn as sns

from ..experiments.early_learning import ARM_NAMES, CE, CLEAN, ELR, NOISY_ARMS
from .style import PALETTE, figure

NAMES = {"train_noisy_true": "mislabeled → true class", "train_noisy_acc": "mislabeled → given wrong label (memorized)",
         "train_clean_acc": "clean train", "test_acc": "test"}
COLORS = {NAMES["train_noisy_true"]: PALETTE["true"], NAMES["train_noisy_acc"]: PALETTE["noisy"],
          NAMES["train_clean_acc"]: PALETTE["clean"], NAMES["test_acc"]: PALETTE["test"]}
ARM_COLORS = {ARM_NAMES[CLEAN]: PALETTE["clean"], ARM_NAMES[CE]: PALETTE["noisy"], ARM_NAMES[ELR]: PALETTE["true"]}
NULL_NAME = "random walk, same step lengths (clean run's)"


def _long(history: pd.DataFrame) -> pd.DataFrame:
    h = history.dropna(subset=["test_acc"])
    long = h.melt(id_vars=["seed", "arm", "epoch"], value_vars=list(NAMES), var_name="what", value_name="fraction")
    long["what"] = long["what"].map(NAMES)
    return long


def fractions(result):
    """Liu et al.'s Figure 1, measured: per epoch, for cross-entropy and for ELR on noisy labels, the fractions of
    mislabeled training examples predicted as their true class / as their wrong label, with clean-train and test
    accuracy (mean and 95% band over seeds); panels stacked."""
    long = _long(result.tables["history"])
    arms = [a for a in NOISY_ARMS if a in set(long["arm"])]
    fig, axes = figure(len(arms), 1, figsize=(6.5, 2.8 * len(arms) + 0.8), sharex=True, squeeze=False)
    for ax, arm in zip(axes[:, 0], arms):
        sns.lineplot(long[long["arm"] == arm], x="epoch", y="fraction", hue="what", palette=COLORS, ax=ax,
                     errorbar=("ci", 95), marker="o", markersize=4)
        ax.set_title(ARM_NAMES[arm])
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("fraction")
        ax.legend().remove()
    h, lab = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, lab, loc="outside lower center", ncol=2, fontsize=10, frameon=False)
    return fig


def test_accuracy(result):
    """Test accuracy per epoch, cross-entropy vs ELR on noisy labels, with each curve's peak marked."""
    h = result.tables["history"].dropna(subset=["test_acc"])
    h = h[(h.epoch >= 1) & h["arm"].isin(NOISY_ARMS)].assign(arm=lambda d: d["arm"].map(ARM_NAMES))
    fig, ax = figure(figsize=(6.5, 3.6))
    sns.lineplot(h, x="epoch", y="test_acc", hue="arm", ax=ax, errorbar=("ci", 95), marker="o", markersize=4,
                 palette=ARM_COLORS)
    m = h.groupby(["arm", "epoch"]).test_acc.mean().reset_index()
    for arm, g in m.groupby("arm"):
        best = g.loc[g.test_acc.idxmax()]
        ax.plot([best.epoch], [best.test_acc], marker="*", ms=14, color=ARM_COLORS[arm], linestyle="none")
    ax.set_ylabel("test accuracy")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=10, frameon=False, title=None)
    return fig


def _relative(e: pd.DataFrame, col: str) -> pd.Series:
    """A column as a fraction of its value at the end of the probed window (per seed and arm)."""
    end = e.sort_values("step").groupby(["seed", "arm"])[col].transform("last")
    return e[col] / end


def early_phase(result):
    """Frankle et al.'s early-phase timeline, measured on clean and on noisy labels: gradient norm, distance from
    initialization and sign changes (each as a fraction of its value at the window's end, against the random walk
    with the clean run's step lengths), and test accuracy after pruning and rewinding to k."""
    e = result.tables["early_phase"]
    r = result.tables["rewind"]
    fig, axes = figure(2, 2, figsize=(6.5, 5.8))
    (a_grad, a_dist), (a_sign, a_rew) = axes
    d = e.assign(who=e["arm"].map(ARM_NAMES))
    null = e[e["arm"] == CLEAN].assign(who=NULL_NAME)
    pal = {**ARM_COLORS, NULL_NAME: "#888888"}
    sns.lineplot(d[d.step >= 1], x="step", y="grad_norm", hue="who", palette=pal, ax=a_grad, errorbar=None, lw=1)
    a_grad.set_yscale("log")
    a_grad.set_title("mini-batch gradient norm", fontsize=11)
    a_grad.set_ylabel("gradient norm (log scale)")
    for ax, col, title in ((a_dist, "dist_init", "distance from init"), (a_sign, "sign_changed", "sign changes")):
        both = pd.concat([d.assign(v=_relative(d, col)),
                          null.assign(v=_relative(null, f"null_{col}"))], ignore_index=True)
        sns.lineplot(both, x="step", y="v", hue="who", palette=pal, ax=ax, errorbar=None, lw=1.2)
        ax.axhline(0.5, color="#444444", lw=0.8, ls=":")
        ax.set_title(f"{title} (÷ end value)", fontsize=11)
        ax.set_ylabel("fraction of end value")
    for ax in (a_grad, a_dist, a_sign):
        ax.set_xlabel("iteration")
        ax.legend().remove()
    sns.pointplot(r, x="k", y="test_acc", ax=a_rew, errorbar=("ci", 95), color=PALETTE["clean"])
    a_rew.set_xlabel("rewind iteration k")
    a_rew.set_ylabel("test accuracy")
    a_rew.set_title(f"rewinding ({r.sparsity.mean():.0%} pruned)", fontsize=11)
    h, lab = a_dist.get_legend_handles_labels()
    fig.legend(h, lab, loc="outside lower center", ncol=2, fontsize=10, frameon=False)
    return fig
