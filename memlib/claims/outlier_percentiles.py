"""Claim 3 reference (Carlini et al. 2019, Figure 6, via the talk) and its verdict: where the curve peaks."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..outliers import region
from . import NOT_REPRODUCED, PARTLY, REPRODUCED, Verdict

CITATION = "Carlini, Erlingsson, Papernot (2019), Distribution Density, Tails, and Outliers in Machine Learning"
# Where the test-accuracy-vs-percentile curve peaks (0th percentile = outliers by the adv metric).
EXPECTED_REGION = {"mnist": "low", "mnist5k": "low", "fashion-mnist": "middle", "cifar10": "middle"}
REFERENCE = {
    "setting": "models trained on 5,000 consecutively ranked training examples (adv metric), full test set",
    "mnist": "training on the outliers (lowest percentiles) is always better",
    "fashion-mnist": "best to train on the middle percentiles, neither the outliers nor the most prototypical",
    "cifar10": "best to train on the middle percentiles, neither the outliers nor the most prototypical",
    "expected_region": EXPECTED_REGION,
}
SEED_AGREEMENT = 2 / 3  # share of seeds whose own best window must lie in the same region


def mean_curve(curve: pd.DataFrame, dataset: str) -> pd.DataFrame:
    c = curve[curve.dataset == dataset]
    return (c.groupby("window").agg(pct_mid=("pct_mid", "first"), test_acc=("test_acc", "mean"),
                                    test_sd=("test_acc", "std"), n_seeds=("seed", "nunique"))
            .reset_index())


def curve_summary(curve: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and window: percentile range, test accuracy (mean, sd over seeds), train accuracy, composition."""
    g = curve.groupby(["dataset", "window"], sort=False)
    out = g.agg(pct_lo=("pct_lo", "first"), pct_hi=("pct_hi", "first"), test_acc=("test_acc", "mean"),
                test_sd=("test_acc", "std"), train_acc=("train_acc", "mean"), mean_adv=("adv_mean", "first"),
                largest_class=("max_class_frac", "first"))
    out.insert(0, "percentiles", [f"{a:.0f}–{b:.0f}" for a, b in zip(out.pop("pct_lo"), out.pop("pct_hi"))])
    return out


def curve_shape(curve: pd.DataFrame, dataset: str) -> dict:
    """Peak window and region of the seed-mean curve, per-seed agreement, and the peak's margin."""
    m = mean_curve(curve, dataset)
    best = int(m.test_acc.idxmax())
    reg = region(float(m.pct_mid.iloc[best]))
    c = curve[curve.dataset == dataset]
    per_seed = c.loc[c.groupby("seed").test_acc.idxmax()]
    agree = float(np.mean([region(p) == reg for p in per_seed.pct_mid]))
    regions = m.pct_mid.map(region)
    other = m[regions != reg]
    margin = float(m.test_acc.iloc[best] - other.test_acc.max()) if len(other) else float("nan")
    by_region = {r: float(m.test_acc[regions == r].mean()) for r in ("low", "middle", "high") if (regions == r).any()}
    return {"peak_pct": float(m.pct_mid.iloc[best]), "peak_acc": float(m.test_acc.iloc[best]),
            "peak_sd": float(m.test_sd.iloc[best]) if m.n_seeds.iloc[best] > 1 else float("nan"),
            "region": reg, "seed_agreement": agree, "margin": margin,
            "lowest_acc": float(m.test_acc.iloc[0]), "highest_acc": float(m.test_acc.iloc[-1]),
            "region_means": by_region, "n_seeds": int(c.seed.nunique())}


def comparison_table(result) -> pd.DataFrame:
    """Per dataset: what the paper reports beside where our curve peaks."""
    curve = result.tables["curve"]
    rows = {}
    for ds in dict.fromkeys(curve.dataset):
        s = curve_shape(curve, ds)
        paper_ds = "mnist" if ds == "mnist5k" else ds
        rows[ds] = {"paper": REFERENCE.get(paper_ds, "—"), "paper's best region": EXPECTED_REGION.get(ds, "—"),
                    "our best region": s["region"], "our best window (centre percentile)": f"{s['peak_pct']:.0f}",
                    "its test accuracy": f"{s['peak_acc']:.1%}", "lowest window": f"{s['lowest_acc']:.1%}",
                    "highest window": f"{s['highest_acc']:.1%}", "seeds peaking in that region":
                    f"{s['seed_agreement']:.0%} of {s['n_seeds']}"}
    return pd.DataFrame(rows)


def check(result, cfg=None) -> Verdict:
    curve = result.tables["curve"]
    datasets = list(dict.fromkeys(curve.dataset))
    crit, measured, matches, judged = [], {}, 0, 0
    for ds in datasets:
        s = curve_shape(curve, ds)
        key = ds.replace("-", "_")
        measured.update({f"{key}_peak_pct": int(round(s["peak_pct"])), f"{key}_peak_acc": s["peak_acc"],
                         f"{key}_region": s["region"], f"{key}_seed_agreement": s["seed_agreement"],
                         f"{key}_margin": f"{100 * s['margin']:+.1f} points", f"{key}_lowest_acc": s["lowest_acc"],
                         f"{key}_highest_acc": s["highest_acc"]})
        exp = EXPECTED_REGION.get(ds)
        nums = (f"peak at the {s['peak_pct']:.0f}th percentile ({s['region']}), {s['peak_acc']:.1%} test accuracy, "
                f"{100 * s['margin']:+.1f} points over the best window elsewhere; {s['seed_agreement']:.0%} of "
                f"{s['n_seeds']} seeds peak in the same region; lowest window {s['lowest_acc']:.1%}, highest "
                f"{s['highest_acc']:.1%}")
        if exp is None:
            crit.append((f"{ds}: (no reference; shape reported only)", True, nums))
            continue
        judged += 1
        ok = s["region"] == exp and s["seed_agreement"] >= SEED_AGREEMENT
        matches += ok
        crit.append((f"{ds}: accuracy peaks in the {exp} percentiles, consistently over seeds (>= "
                     f"{SEED_AGREEMENT:.0%} of seeds)", ok, nums))
    if judged == 0:
        status = NOT_REPRODUCED
    elif matches == judged:
        status = REPRODUCED
    elif matches > 0:
        status = PARTLY
    else:
        status = NOT_REPRODUCED
    parts = []
    for ds in datasets:
        k = ds.replace("-", "_")
        exp = EXPECTED_REGION.get(ds)
        parts.append(f"{ds}: peak in the {measured[k + '_region']} percentiles (paper: {exp or 'n/a'})")
    summary = (f"Test accuracy against the adv-percentile of the training window peaks as follows: "
               f"{'; '.join(parts)}. {matches} of {judged} dataset(s) match the paper's shape.")
    measured["matches"] = matches
    measured["judged"] = judged
    return Verdict("Outliers and percentile training", status, summary, measured, REFERENCE, crit)
