"""Claim 2 reference (Maini et al. 2023, Table 3, via the talk) and its verdict."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from . import Verdict, status_from

CITATION = "Maini et al. (2023), Can Neural Network Memorization Be Localized?, Table 3"
REFERENCE = {
    "setting": "ResNet-9, CIFAR-10, 10% label noise; accuracy on clean / mislabeled training examples",
    "dropout": {"label": "Standard dropout (p = 0.4)", "clean": 1.00, "noisy": 0.995},
    "sparse": {"label": "Sparse network (s = 0.4)", "clean": 1.00, "noisy": 0.998},
    "example_tied": {"label": "Example-tied dropout (p_gen = 0.4, p_mem = 0.2), memorization neurons dropped",
                     "clean": 0.908, "noisy": 0.031},
}

# Rows of the comparison table: (method, evaluation mode, row label).
ROWS = [
    ("dropout", "eval", "Standard dropout"),
    ("sparse", "eval", "Sparse network"),
    ("example_tied", "drop", "Example-tied: memorization dropped"),
    ("example_tied", "own", "Example-tied: memorization kept (own masks)"),
    ("example_tied", "all", "Example-tied: all channels, unscaled"),
    ("example_tied", "mean", "Example-tied: all channels, memorization × p_mem"),
]
METRICS = ("train_clean_acc", "train_noisy_acc", "test_acc")

# Thresholds of the verdict.
GAP = 0.5           # example-tied (dropped): clean minus mislabeled accuracy at least this
FORGOTTEN = 0.2     # ... and mislabeled accuracy at most this
FIT_CLEAN, FIT_NOISY = 0.95, 0.9  # baselines (and example-tied with its own masks) fit the training set
ALPHA = 0.01        # Mann-Whitney test: forgotten clean examples are harder than kept clean ones


def summary(result) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each row's accuracies (index: method, mode)."""
    acc = result.tables["accuracy"]
    g = acc.groupby(["method", "mode"])[list(METRICS)]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_sd")).join(g.size().rename("seeds"))
    order = [(m, mode) for m, mode, _ in ROWS if (m, mode) in out.index]
    return out.loc[order]


def _pm(mean: float, sd: float) -> str:
    if np.isnan(mean):
        return "—"
    return f"{100 * mean:.1f}%" + ("" if np.isnan(sd) else f" ± {100 * sd:.1f}")


def comparison_table(result) -> pd.DataFrame:
    """The talk's Table 3 beside the measured one (mean ± standard deviation over seeds, in %)."""
    s = summary(result)
    rows = []
    for method, mode, label in ROWS:
        if (method, mode) not in s.index:
            continue
        r = s.loc[(method, mode)]
        ref = REFERENCE[method] if mode in ("eval", "drop") else None
        rows.append({
            "method": label,
            "clean (paper)": f"{100 * ref['clean']:.1f}%" if ref else "",
            "mislabeled (paper)": f"{100 * ref['noisy']:.1f}%" if ref else "",
            "clean (measured)": _pm(r.train_clean_acc_mean, r.train_clean_acc_sd),
            "mislabeled (measured)": _pm(r.train_noisy_acc_mean, r.train_noisy_acc_sd),
            "test (measured)": _pm(r.test_acc_mean, r.test_acc_sd),
        })
    return pd.DataFrame(rows).set_index("method")


def atypicality(result, column: str = "dropout_aum") -> dict:
    """How hard the forgotten clean examples are for the standard-dropout model, compared with kept clean ones.

    ``column`` is a per-example score where lower = harder (default: the area under the margin, i.e. the margin
    on the given label averaged over the evaluations during training).  Returns counts, medians, the one-sided
    Mann-Whitney p-value (forgotten < kept) and the AUC = P(score of a forgotten < score of a kept example).
    """
    ex = result.tables["examples"]
    clean = ~ex["noisy"].astype(bool)
    forgotten = clean & ex["forgotten"].astype(bool)
    kept = clean & (ex["etd_pred_drop"] == ex["label"])
    a, b = ex.loc[forgotten, column].to_numpy(), ex.loc[kept, column].to_numpy()
    noisy = ex.loc[~clean, column].to_numpy()
    out = {"n_forgotten": int(len(a)), "n_kept": int(len(b)), "n_clean": int(clean.sum()),
           "forgotten_rate": float(len(a) / max(1, clean.sum())),
           "median_forgotten": float(np.median(a)) if len(a) else float("nan"),
           "median_kept": float(np.median(b)) if len(b) else float("nan"),
           "median_noisy": float(np.median(noisy)) if len(noisy) else float("nan"),
           "p_value": float("nan"), "auc": float("nan")}
    if len(a) and len(b):
        u, p = mannwhitneyu(a, b, alternative="less")
        out["p_value"], out["auc"] = float(p), float(1 - u / (len(a) * len(b)))
    return out


def p_text(p: float) -> str:
    """'p = 0.0031', or 'p < 1e-16' below double precision's resolution (where scipy may return 0)."""
    if np.isnan(p):
        return "p = n/a"
    return "p < 1e-16" if p < 1e-16 else f"p = {p:.2g}"


def check(result, cfg=None) -> Verdict:
    s = summary(result)

    def m(method, mode, metric):
        key = (method, mode)
        return float(s.loc[key, f"{metric}_mean"]) if key in s.index else float("nan")

    etd_clean, etd_noisy = m("example_tied", "drop", "train_clean_acc"), m("example_tied", "drop", "train_noisy_acc")
    own_clean, own_noisy = m("example_tied", "own", "train_clean_acc"), m("example_tied", "own", "train_noisy_acc")
    do_clean, do_noisy = m("dropout", "eval", "train_clean_acc"), m("dropout", "eval", "train_noisy_acc")
    sp_clean, sp_noisy = m("sparse", "eval", "train_clean_acc"), m("sparse", "eval", "train_noisy_acc")
    at = atypicality(result)
    seeds = int(s["seeds"].min())
    crit = [
        (f"example-tied dropout, memorization channels dropped: large gap between clean and mislabeled training "
         f"accuracy (clean − mislabeled ≥ {GAP:.0%} points and mislabeled ≤ {FORGOTTEN:.0%}; paper 90.8% / 3.1%)",
         bool(etd_clean - etd_noisy >= GAP and etd_noisy <= FORGOTTEN),
         f"clean {etd_clean:.1%}, mislabeled {etd_noisy:.1%}"),
        (f"standard dropout fits both (clean ≥ {FIT_CLEAN:.0%}, mislabeled ≥ {FIT_NOISY:.0%}; paper 100% / 99.5%)",
         bool(do_clean >= FIT_CLEAN and do_noisy >= FIT_NOISY), f"clean {do_clean:.1%}, mislabeled {do_noisy:.1%}"),
        (f"the sparse network fits both (clean ≥ {FIT_CLEAN:.0%}, mislabeled ≥ {FIT_NOISY:.0%}; "
         f"paper 100% / 99.8%)",
         bool(sp_clean >= FIT_CLEAN and sp_noisy >= FIT_NOISY), f"clean {sp_clean:.1%}, mislabeled {sp_noisy:.1%}"),
        (f"with the memorization channels kept, example-tied dropout had memorized the mislabeled examples "
         f"(mislabeled ≥ {FIT_NOISY:.0%})", bool(own_noisy >= FIT_NOISY),
         f"clean {own_clean:.1%}, mislabeled {own_noisy:.1%}"),
        (f"forgotten clean examples are atypical: the standard-dropout model fits them less well than kept clean "
         f"examples (area under the margin, one-sided Mann–Whitney p < {ALPHA})",
         bool(at["p_value"] < ALPHA),
         f"{at['n_forgotten']} forgotten vs {at['n_kept']} kept; medians {at['median_forgotten']:.2f} vs "
         f"{at['median_kept']:.2f}; AUC {at['auc']:.2f}; {p_text(at['p_value'])}"),
    ]
    status = status_from(crit, essential=1)
    summary_text = (
        f"With its memorization channels dropped, the example-tied model classifies {etd_clean:.1%} of clean and "
        f"{etd_noisy:.1%} of mislabeled training examples as labelled (the paper: 90.8% and 3.1%); with them "
        f"kept, {own_clean:.1%} and {own_noisy:.1%}. Standard dropout fits {do_clean:.1%} / {do_noisy:.1%} and "
        f"the sparse network {sp_clean:.1%} / {sp_noisy:.1%} (paper: 100% / 99.5% and 100% / 99.8%). "
        f"Means over {seeds} seed(s).")
    measured = {
        "etd_clean": etd_clean, "etd_noisy": etd_noisy, "etd_gap": etd_clean - etd_noisy,
        "etd_own_clean": own_clean, "etd_own_noisy": own_noisy,
        "etd_test": m("example_tied", "drop", "test_acc"), "etd_test_mean": m("example_tied", "mean", "test_acc"),
        "dropout_clean": do_clean, "dropout_noisy": do_noisy, "dropout_test": m("dropout", "eval", "test_acc"),
        "sparse_clean": sp_clean, "sparse_noisy": sp_noisy, "sparse_test": m("sparse", "eval", "test_acc"),
        "seeds": seeds, "n_forgotten": at["n_forgotten"], "n_kept": at["n_kept"],
        "forgotten_rate": at["forgotten_rate"],
        # Not fractions: kept as formatted text so that the page shows them as numbers, not percentages.
        "aum_forgotten": f"{at['median_forgotten']:.2f}", "aum_kept": f"{at['median_kept']:.2f}",
        "aum_noisy": f"{at['median_noisy']:.2f}", "aum_auc": f"{at['auc']:.2f}", "aum_p": p_text(at["p_value"]),
    }
    return Verdict("Example-tied dropout localizes memorization", status, summary_text, measured, REFERENCE, crit)
