"""Claim 3 figures: accuracy-vs-percentile curves, strips of lowest / highest ranked images, score agreement."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from ..claims.outlier_percentiles import EXPECTED_REGION
from .style import PALETTE, figure, image_grid

REGION_SPAN = {"low": (0, 100 / 3), "middle": (100 / 3, 200 / 3), "high": (200 / 3, 100)}


def curves(result, ax=None):
    """Test accuracy of a model trained on each window, against the window's percentile (mean ± sd over seeds)."""
    c = result.tables["curve"]
    datasets = list(dict.fromkeys(c.dataset))
    if ax is None:
        fig, axes = figure(1, len(datasets), figsize=(4.6 * len(datasets), 3.8), squeeze=False)
        axes = axes[0]
    else:
        axes = [ax]
    for a, ds in zip(axes, datasets):
        d = c[c.dataset == ds]
        sns.lineplot(d, x="pct_mid", y="test_acc", ax=a, errorbar="sd", marker="o", color=PALETTE["ours"],
                     label="this run (mean ± sd over seeds)")
        exp = EXPECTED_REGION.get(ds)
        if exp:
            lo, hi = REGION_SPAN[exp]
            a.axvspan(lo, hi, color=PALETTE["paper"], alpha=0.12, label=f"paper: best region ({exp})")
        m = d.groupby("pct_mid").test_acc.mean()
        a.plot([m.idxmax()], [m.max()], marker="*", markersize=14, color=PALETTE["noisy"], linestyle="none",
               label="maximum")
        a.set_xlim(0, 100)
        a.set_xlabel("window percentile (0 = outliers)")
        a.set_ylabel("test accuracy")
        a.set_title(ds)
        a.legend(fontsize=7, loc="lower center")
    return axes[0].figure


def _images(strips: pd.DataFrame, shape) -> np.ndarray:
    c, h, w = shape
    cols = [f"p{j}" for j in range(c * h * w)]
    return strips[cols].to_numpy(dtype=np.float32).reshape(len(strips), c, h, w)


def strip(result, dataset: str, group: str = "lowest", ncols: int = 8):
    """The lowest- (outliers) or highest-ranked (prototypical) training images with label and adv distance."""
    s = result.tables["strips"]
    s = s[(s.dataset == dataset) & (s.group == group)].sort_values("order")
    titles = [f"{lab}\nadv {a:.2f}" for lab, a in zip(s.label, s.adv)]
    what = "outliers: smallest adv distance" if group == "lowest" else "prototypes: largest adv distance"
    shape = result.scalars["per_dataset"][dataset]["image_shape"]
    return image_grid(_images(s, shape), titles, ncols=ncols, suptitle=f"{dataset}: {what}")


def score_agreement(result):
    """Rank of the adv score against rank of the confidence score, per dataset (hexbin of ranks)."""
    sc = result.tables["scores"]
    datasets = list(dict.fromkeys(sc.dataset))
    fig, axes = figure(1, len(datasets), figsize=(4.2 * len(datasets), 3.8), squeeze=False)
    for a, ds in zip(axes[0], datasets):
        d = sc[sc.dataset == ds]
        ra = d.adv.rank(pct=True) * 100
        rc = d.conf.rank(pct=True) * 100
        a.hexbin(ra, rc, gridsize=25, cmap="Blues", mincnt=1)
        a.set_xlabel("adv percentile")
        a.set_ylabel("confidence percentile")
        rho = result.scalars["per_dataset"][ds]["spearman_adv_conf"]
        a.set_title(f"{ds}: Spearman ρ = {rho:.2f}")
    return fig


def window_composition(result):
    """Class balance of each window (largest class share), which shapes what a window can teach."""
    c = result.tables["curve"]
    c = c[c.seed == c.seed.min()]
    fig, ax = figure(figsize=(6, 3.2))
    sns.lineplot(c, x="pct_mid", y="max_class_frac", hue="dataset", marker="o", ax=ax)
    ax.set_xlabel("percentile of the training window")
    ax.set_ylabel("share of the largest class")
    ax.set_ylim(0, 1)
    ax.set_title("Class balance of each window")
    return fig
