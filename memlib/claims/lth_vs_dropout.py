"""Claim 5: the talk's hypothesis that lottery tickets work in part by removing memorization.

The hypothesis is a chain of three steps; each gets its own status (supported / refuted / undecided) from the
measured numbers, one value per seed:

1. Under example-tied dropout, memorization channels end up with smaller weights than generalization
   channels.  Effect per seed: ``1 - mean|w|(memorization) / mean|w|(generalization)`` (layers before every
   dropout site, channels averaged within each group, then sites averaged).
2. Magnitude pruning therefore removes memorization channels preferentially.  Effect per seed: the share of
   removed weights (first round, summed over site layers) that lie in memorization channels, divided by the
   share expected by chance (their share of the weights), minus 1.
3. Pruning + rewinding lowers accuracy on mislabeled training examples (memorization) more than random pruning
   at the same sparsity.  Effect per seed: mislabeled accuracy of the random mask (rewound to k) minus that of
   the magnitude mask (rewound to k), averaged over rounds; it must also exceed the matching drop in clean
   training accuracy, or it would only mean the network fits less of everything.

Decision rule per step: *supported* if every seed's effect is at least the margin; *refuted* if every seed's
effect is zero or in the opposite direction; otherwise *undecided*.  The hypothesis as a whole is supported
only if all three steps are, refuted if any step is refuted, and undecided otherwise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import REFUTED, SUPPORTED, UNDECIDED, Verdict

CITATION = ("The talk's own hypothesis, on lottery tickets (Frankle & Carbin 2019; Frankle et al. 2020) and "
            "example-tied dropout (Maini et al. 2023)")
REFERENCE = {
    "lth": "magnitude-pruned + rewound subnetworks train to the dense network's accuracy; randomly pruned ones "
           "do not (Frankle & Carbin 2019; Frankle et al. 2020)",
    "etd": "example-tied dropout, p_gen = 0.4, p_mem = 0.2: dropping memorization channels takes mislabeled "
           "training accuracy from ~100% to ~3% (Maini et al. 2023)",
    "hypothesis": "memorization channels keep smaller weights, so magnitude pruning removes them and rewinding "
                  "works in part by removing memorization (talk; 'may be controversial')",
}
MARGINS = {"smaller_weights": 0.05, "pruning_overlap": 0.05, "less_memorization": 0.02}
MEMORIZES = 0.3  # the dense ordinary network must fit at least this share of the mislabeled labels
MAGNITUDE, RANDOM, REWIND0 = "magnitude / rewind to k", "random mask / rewind to k", "magnitude / rewind to 0"
STEPS = ("smaller_weights", "pruning_overlap", "less_memorization")


def decide(effects, margin: float) -> str:
    e = np.asarray(list(effects), dtype=float)
    if len(e) == 0 or np.isnan(e).any():
        return UNDECIDED
    if (e >= margin).all():
        return SUPPORTED
    if (e <= 0).all():
        return REFUTED
    return UNDECIDED


def _spread(e) -> str:
    e = np.asarray(list(e), dtype=float)
    sd = f" ± {e.std(ddof=1):.3f} (sd)" if len(e) > 1 else ""
    return f"{e.mean():.3f}{sd} over {len(e)} seed(s) [{', '.join(f'{x:.3f}' for x in e)}]"


def weight_ratio(channels: pd.DataFrame, rnd: int = 1, stat: str = "mean_abs") -> pd.Series:
    """Per seed: mean over sites of (memorization channels' mean ``stat``) / (generalization channels')."""
    c = channels[channels["round"] == rnd]
    g = c.groupby(["seed", "site", "group"])[stat].mean().unstack("group")
    return (g["memorization"] / g["generalization"]).groupby("seed").mean()


def pruning_enrichment(overlap: pd.DataFrame, rnd: int = 1) -> pd.DataFrame:
    """Per seed: share of removed site-layer weights in memorization channels, the chance share, their ratio."""
    o = overlap[overlap["round"] == rnd].groupby("seed")[["removed", "removed_mem", "available",
                                                          "available_mem"]].sum()
    out = pd.DataFrame({"share": o.removed_mem / o.removed, "chance": o.available_mem / o.available})
    out["enrichment"] = out.share / out.chance
    return out


def arm_means(arms: pd.DataFrame) -> pd.DataFrame:
    cols = ["sparsity", "train_clean_acc", "train_noisy_acc", "train_noisy_true", "test_acc"]
    return arms.groupby(["round", "arm"], sort=False)[cols].agg(["mean", "std"])


def memorization_gap(arms: pd.DataFrame, a: str = RANDOM, b: str = MAGNITUDE,
                     metric: str = "train_noisy_acc") -> pd.Series:
    """Per seed: ``metric`` of arm ``a`` minus arm ``b``, averaged over pruning rounds."""
    p = arms[arms["round"] >= 1].pivot_table(index=["seed", "round"], columns="arm", values=metric)
    return (p[a] - p[b]).groupby("seed").mean()


def check(result, cfg=None) -> Verdict:
    arms, channels, overlap = result.tables["arms"], result.tables["channels"], result.tables["overlap"]
    seeds = sorted(arms.seed.unique())
    steps: dict[str, str] = {}
    crit = []

    # 1. smaller weights
    ratio = weight_ratio(channels)
    l2_ratio = weight_ratio(channels, stat="l2")
    steps["smaller_weights"] = decide(1 - ratio, MARGINS["smaller_weights"])
    crit.append(("step 1: memorization channels have smaller weights than generalization channels after "
                 "example-tied training (mean |w| ratio mem / gen below "
                 f"{1 - MARGINS['smaller_weights']:.2f} in every seed)",
                 steps["smaller_weights"] == SUPPORTED,
                 f"{steps['smaller_weights']}: ratio {_spread(ratio)}; L2-norm ratio {l2_ratio.mean():.3f}"))

    # 2. magnitude pruning removes memorization channels preferentially
    enr = pruning_enrichment(overlap)
    steps["pruning_overlap"] = decide(enr.enrichment - 1, MARGINS["pruning_overlap"])
    crit.append(("step 2: magnitude pruning removes weights of memorization channels more often than chance "
                 f"(enrichment share / chance above {1 + MARGINS['pruning_overlap']:.2f} in every seed)",
                 steps["pruning_overlap"] == SUPPORTED,
                 f"{steps['pruning_overlap']}: {enr.share.mean():.1%} of removed weights in memorization channels "
                 f"vs {enr.chance.mean():.1%} by chance; enrichment {_spread(enr.enrichment)}"))

    # 3. less memorization than random pruning
    dense = arms[arms.arm == "dense"]
    dense_noisy = float(dense.train_noisy_acc.mean())
    gap = memorization_gap(arms)
    clean_gap = memorization_gap(arms, metric="train_clean_acc")
    gap0 = memorization_gap(arms, b=REWIND0)
    test_gap = memorization_gap(arms, metric="test_acc")
    if dense_noisy < MEMORIZES:
        steps["less_memorization"] = UNDECIDED
        why = f"undecided: the dense network fit only {dense_noisy:.1%} of the mislabeled labels (< {MEMORIZES:.0%})"
    else:
        s = decide(gap, MARGINS["less_memorization"])
        if s == SUPPORTED and not (gap > clean_gap).all():
            s = UNDECIDED  # lower mislabeled accuracy but no less clean accuracy lost: not specific to memorization
        steps["less_memorization"] = s
        why = s
    crit.append(("step 3: magnitude pruning + rewinding to k lowers mislabeled training accuracy more than a random "
                 f"mask at the same sparsity (by at least {MARGINS['less_memorization']:.0%} in every seed, and by more "
                 "than it lowers clean accuracy)", steps["less_memorization"] == SUPPORTED,
                 f"{why}: mislabeled accuracy random − magnitude {_spread(gap)}; clean accuracy random − magnitude "
                 f"{clean_gap.mean():+.3f}; test accuracy random − magnitude {test_gap.mean():+.3f}; "
                 f"with rewinding to 0 the mislabeled gap is {gap0.mean():+.3f}; dense network: "
                 f"{dense_noisy:.1%} mislabeled fit"))

    st = list(steps.values())
    overall = SUPPORTED if all(s == SUPPORTED for s in st) else REFUTED if REFUTED in st else UNDECIDED
    names = {"smaller_weights": "smaller memorization weights", "pruning_overlap": "pruning hits memorization",
             "less_memorization": "tickets memorize less than random pruning"}
    summary = (f"The hypothesis is {overall} at this scale ({len(seeds)} seed(s)): "
               + "; ".join(f"{names[k]}: {v}" for k, v in steps.items()) + ".")

    m = arm_means(arms)
    last = int(arms["round"].max())

    def at(arm, col, rnd=last):
        try:
            return float(m.loc[(rnd, arm), (col, "mean")])
        except KeyError:
            return float("nan")

    measured = {
        "status_smaller_weights": steps["smaller_weights"], "status_pruning_overlap": steps["pruning_overlap"],
        "status_less_memorization": steps["less_memorization"],
        "weight_ratio": float(ratio.mean()), "weight_ratio_sd": float(ratio.std(ddof=1)) if len(ratio) > 1 else 0.0,
        "l2_ratio": float(l2_ratio.mean()),
        "pruned_share_mem": float(enr.share.mean()), "chance_share_mem": float(enr.chance.mean()),
        "enrichment": float(enr.enrichment.mean()),
        "noisy_gap": float(gap.mean()), "noisy_gap_sd": float(gap.std(ddof=1)) if len(gap) > 1 else 0.0,
        "clean_gap": float(clean_gap.mean()), "test_gap": float(test_gap.mean()), "noisy_gap_rewind0": float(gap0.mean()),
        "dense_noisy_acc": dense_noisy, "dense_clean_acc": float(dense.train_clean_acc.mean()),
        "dense_test_acc": float(dense.test_acc.mean()),
        "final_sparsity": at(MAGNITUDE, "sparsity"), "rounds": last,
        "magnitude_noisy_acc": at(MAGNITUDE, "train_noisy_acc"), "random_noisy_acc": at(RANDOM, "train_noisy_acc"),
        "rewind0_noisy_acc": at(REWIND0, "train_noisy_acc"),
        "reinit_noisy_acc": at("magnitude / random re-init", "train_noisy_acc"),
        "magnitude_test_acc": at(MAGNITUDE, "test_acc"), "random_test_acc": at(RANDOM, "test_acc"),
        "etd_noisy_acc": at("example-tied (ticket search)", "train_noisy_acc", 0),
        "n_seeds": len(seeds),
    }
    return Verdict("Lottery tickets vs example-tied dropout", overall, summary, measured, REFERENCE, crit)


def texts(v: Verdict) -> dict[str, str]:
    """Ratios and gaps formatted for the page (``glue_verdict`` would print ratios in [0, 1] as percentages)."""
    m = v.measured
    sd = lambda k: f" ± {m[k]:.3f}" if m.get("n_seeds", 1) > 1 else ""  # noqa: E731
    pts = lambda x: f"{100 * x:+.1f} points"  # noqa: E731
    return {"weight_ratio_text": f"{m['weight_ratio']:.3f}{sd('weight_ratio_sd')}",
            "l2_ratio_text": f"{m['l2_ratio']:.3f}", "enrichment_text": f"{m['enrichment']:.3f}",
            "noisy_gap_text": pts(m["noisy_gap"]) + (f" (sd {100 * m['noisy_gap_sd']:.1f})" if m["n_seeds"] > 1 else ""),
            "noisy_gap_rewind0_text": pts(m["noisy_gap_rewind0"]), "clean_gap_text": pts(m["clean_gap"]),
            "test_gap_text": pts(m["test_gap"])}
