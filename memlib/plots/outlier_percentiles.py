"""Claim 3 figures: accuracy-vs-percentile curves, strips of lowest / highest ranked images, score agreement.

Figures are sized for the book's text column (at most 7 in wide); panels of several datasets are stacked."""
from __future__ import annotations

import seaborn as sns

from ..claims.outlier_percentiles import EXPECTED_REGION
from ..experiments.outlier_percentiles import REGIONS, strips_array
from .style import PALETTE, figure, image_grid

REGION_SHADES = {"low": "#f2f2f2", "middle": "#e0e0e0", "high": "#f2f2f2"}


def curves(result):
    """Test accuracy of a model trained on each class-balanced window, against the window's percentile (mean and
    95% interval over seeds), one panel per dataset, stacked; the thirds are shaded and the paper's best one named."""
    c = result.tables["curve"]
    datasets = list(dict.fromkeys(c.dataset))
    fig, axes = figure(len(datasets), 1, figsize=(6.5, 2.9 * len(datasets)), squeeze=False, sharex=True)
    for a, ds in zip(axes[:, 0], datasets):
        d = c[c.dataset == ds]
        for r in REGIONS:
            w = d[d.region == r]
            if len(w):
                a.axvspan(w.pct_lo.min(), w.pct_hi.max(), color=REGION_SHADES[r], zorder=0)
                a.text((w.pct_lo.min() + w.pct_hi.max()) / 2, 0.02, r, transform=a.get_xaxis_transform(),
                       ha="center", fontsize=10, color="#444444")
        sns.lineplot(d, x="pct_mid", y="test_acc", ax=a, errorbar=("ci", 95), marker="o", color=PALETTE["ours"],
                     label="this run (mean, 95% band over seeds)")
        m = d.groupby("region").test_acc.mean().reindex(REGIONS).dropna()
        for r, v in m.items():
            w = d[d.region == r]
            a.hlines(v, w.pct_lo.min(), w.pct_hi.max(), color=PALETTE["noisy"], lw=2,
                     label="region mean" if r == m.index[0] else None)
        exp = EXPECTED_REGION.get(ds)
        a.set_title(f"{ds} (paper: best in the {exp} third)" if exp else ds)
        a.set_xlim(0, 100)
        a.set_ylabel("test accuracy")
        a.legend().remove()
    axes[-1, 0].set_xlabel("window percentile of the adv score within each class (0 = outliers)")
    h, lab = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, lab, loc="outside lower center", ncol=2, fontsize=10, frameon=False)
    return fig


def strip(result, dataset: str, group: str = "lowest", ncols: int = 8):
    """The lowest- (outliers) or highest-ranked (prototypical) training images with label and adv distance."""
    s = result.tables["strips"]
    s = s[(s.dataset == dataset) & (s.group == group)].sort_values("order")
    titles = [f"{lab}\nadv {a:.2f}" for lab, a in zip(s.label, s.adv)]
    what = "outliers: smallest adv distance" if group == "lowest" else "prototypes: largest adv distance"
    images = result.arrays[strips_array(dataset)][s.image.to_numpy()]
    return image_grid(images, titles, ncols=ncols, size=6.5 / ncols, suptitle=f"{dataset}: {what}")


def score_agreement(result):
    """Rank of the adv score against rank of the confidence score, per dataset (hexbin of ranks)."""
    sc = result.tables["scores"]
    datasets = list(dict.fromkeys(sc.dataset))
    fig, axes = figure(1, len(datasets), figsize=(6.5, 3.4), squeeze=False)
    for a, ds in zip(axes[0], datasets):
        d = sc[sc.dataset == ds]
        a.hexbin(d.adv.rank(pct=True) * 100, d.conf.rank(pct=True) * 100, gridsize=25, cmap="Blues", mincnt=1)
        a.set_xlabel("adv percentile")
        a.set_ylabel("confidence percentile")
        rho = result.scalars["per_dataset"][ds]["spearman_adv_conf"]
        a.set_title(f"{ds}: ρ = {rho:.2f}", fontsize=11)
    return fig
