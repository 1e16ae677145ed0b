"""The five claims' analysis plans (:mod:`memlib.plan` says what a plan is and how it may change).

The claims' ``check`` functions read their thresholds, directions, sub-claims and guards from here
(:class:`memlib.claims.Planned`), and :meth:`memlib.plan.AnalysisPlan.validate` refuses a verdict whose criteria
differ.  Where a paper reports the quantity, ``paper`` is its value; elsewhere
``effect`` is the smallest distance from the threshold worth detecting, chosen from the claim's wording, never from a
run.  Calibration grids sweep capacity, data and training length only where the claim does not fix them; they were
fixed on 2026-12-07 before any run of this version, replacing grids that had left settings out after looking at
verdicts (the amendment log says so).
"""
from __future__ import annotations

import math

from .plan import OPTIONAL, PLANS, AnalysisPlan, Calibration, MapGrid, SeedRule, criterion, precondition, register

# ------------------------------------------------------------------------------------------------ claim 1
register(AnalysisPlan(
    claim="gradient_similarity", kind="paper",
    specs=(
        precondition("memorized", 0.90),
        criterion("negative_share", 0.5, essential=True, subclaim="opposing_gradients", paper=1.0),
        criterion("placebo_excess", 0.0, essential=True, subclaim="opposing_gradients", effect=0.3),
        criterion("window_start", 0.10, subclaim="window", paper=0.20),
        criterion("window_end", 0.70, "below", subclaim="window", paper=0.60),
        criterion("all_layers", 0.0, "below", subclaim="all_layers", effect=0.1),
    ),
    calibration=Calibration(
        grid={"width": (8, 16), "n_train": (1000, 1500, 2000)}, axes=("n_train", "width"),
        why="the paper's training length (50 epochs, its warm-up and cosine schedule) at every profile but smoke, "
            "because the verdict reads where the memorization window lies as a share of training and a swept length "
            "would decide that by construction; only capacity (width) and data (training images) are swept"),
    seeds=SeedRule(floor=3, stage=2, looks=2, max_initial=4),
    map=MapGrid(grid={"noise_rate": (0.1, 0.2, 0.4), "width": (8, 16)}, shows="negative_share",
                paper={"noise_rate": 0.1, "width": 64}),
))

# ------------------------------------------------------------------------------------------------ claim 2
_GUARDED = ("localization", "atypicality")
register(AnalysisPlan(
    claim="dropout_comparison", kind="paper",
    specs=(
        precondition("dropout_fits_mislabeled", 0.9, guards=_GUARDED),
        precondition("etd_own_fits_mislabeled", 0.9, guards=_GUARDED),
        precondition("etd_own_fits_clean", 0.9, guards=_GUARDED),
        precondition("untied_fits_clean", 0.9, guards=_GUARDED),
        criterion("etd_gap", 0.5, essential=True, subclaim="localization", paper=0.908 - 0.031),
        criterion("etd_forgets_mislabeled", 0.2, "below", essential=True, subclaim="localization", paper=0.031),
        criterion("gap_beyond_untied", 0.10, essential=True, subclaim="localization", effect=0.3),
        criterion("sparse_fits_mislabeled", 0.9, subclaim="baselines", paper=0.998),
        criterion("forgotten_atypical", 0.65, subclaim="atypicality", effect=0.1),
        criterion("atypical_beyond_untied", 0.0, subclaim="atypicality", effect=0.1),
    ),
    calibration=Calibration(
        grid={"width": (16,), "n_train": (1000,), "batch_size": (32,), "dropout_p": (0.1, 0.2),
              "epochs": (30, 35, 40, 60)}, axes=("epochs", "dropout_p"),
        why="how long, and at which standard-dropout rate, a width-16 ResNet-9 on 1,000 images fits its mislabeled "
            "examples (the preconditions); the grid of the calibrations of 2026-11-30 and 2026-12-01, unchanged"),
    seeds=SeedRule(floor=3, stage=2, looks=2, max_initial=3),
    map=MapGrid(grid={"noise_rate": (0.1, 0.2, 0.4), "width": (8, 16)}, shows="gap_beyond_untied",
                paper={"noise_rate": 0.1, "width": 64}),
    notes="the matched null is a network trained with untied channel dropout (the same channels dropped at random "
          "at every step, not tied to examples), evaluated like example-tied dropout: what it isolates is the tying",
))

# ------------------------------------------------------------------------------------------------ claim 3
_REGIONS = {"mnist": ("low", ("middle", "high")), "mnist5k": ("low", ("middle", "high")),
            "fashion_mnist": ("middle", ("low", "high")), "cifar10": ("middle", ("low", "high"))}
_c3 = []
for _ds, (_best, _others) in _REGIONS.items():
    _c3 += [precondition(f"{_ds}_rank_agreement", 0.3, guards=(_ds,), over="examples"),
            precondition(f"{_ds}_window_fit", 0.9, guards=(_ds,))]
    _c3 += [criterion(f"{_ds}_{_best}_minus_{_o}", 0.0, essential=True, subclaim=_ds, effect=0.01) for _o in _others]
register(AnalysisPlan(
    claim="outlier_percentiles", kind="paper", specs=tuple(_c3),
    calibration=Calibration(grid={"metric_epochs": (20,), "epochs": (15, 30)}, axes=("epochs", "metric_epochs")),
    seeds=SeedRule(floor=3, stage=2, looks=2, max_initial=5),
    notes="Figure 6 gives no numbers: the smallest effect of interest is one point of test accuracy",
))
OPTIONAL["outlier_percentiles"] = tuple(s.key for s in _c3)  # a run has the criteria of its own datasets

# ------------------------------------------------------------------------------------------------ claim 4
register(AnalysisPlan(
    claim="early_learning", kind="paper",
    specs=(
        precondition("fits_clean", 0.9, guards=("early_learning", "memorization", "elr")),
        precondition("clean_learns", 0.9, guards=("early_phase",)),
        criterion("peak_true", 0.40, essential=True, subclaim="early_learning", effect=0.2),
        criterion("memorized_at_peak_true", 0.20, "below", essential=True, subclaim="early_learning", effect=0.1),
        criterion("final_memorized", 0.50, essential=True, subclaim="memorization", paper=1.0),
        criterion("test_drop", 0.02, subclaim="memorization", effect=0.03),
        criterion("elr_memorized_ratio", 0.5, "below", essential=True, subclaim="elr", effect=0.3),
        criterion("elr_true_gain", 0.10, subclaim="elr", effect=0.1),
        criterion("elr_test_gain", 0.01, subclaim="elr", effect=0.05),
        criterion("elr_drop_less", 0.0, subclaim="elr", effect=0.02),
        criterion("early_phase_settles", math.log(1.25), subclaim="early_phase", effect=0.2),
        criterion("grad_ratio", 1.2, subclaim="early_phase", effect=0.3),
        criterion("rewind_gain", 0.005, subclaim="early_phase", effect=0.02),
    ),
    calibration=Calibration(
        grid={"width": (8,), "n_train": (1000, 1500, 2000), "epochs": (16, 20, 24, 30)}, axes=("epochs", "n_train"),
        why="training images and epochs for a width-8 ResNet-9 (the preconditions: it fits its clean training "
            "examples, and learns on clean labels); fixed on 2026-12-07 without the exclusions of 2026-12-01, "
            "which had left out 1,000 images after seeing a verdict"),
    seeds=SeedRule(floor=3, stage=2, looks=2, max_initial=3),
    map=MapGrid(grid={"noise_rate": (0.2, 0.36, 0.5), "width": (8, 16)}, shows="elr_memorized_ratio",
                paper={"noise_rate": 0.36, "width": 64}),
))

# ------------------------------------------------------------------------------------------------ claim 5
register(AnalysisPlan(
    claim="lth_vs_dropout", kind="hypothesis",
    specs=(
        precondition("localizes", 0.2, "below", guards=("steps_1_2",)),
        precondition("dense_memorizes", 0.5, guards=("steps_3_4",)),
        criterion("moved", 0.95, "below", subclaim="steps_1_2", effect=0.10),
        criterion("enrichment", 1.05, subclaim="steps_1_2", effect=0.25),
        criterion("etd_ticket_less", 0.02, subclaim="steps_3_4", effect=0.05),
        criterion("etd_ticket_selective", 0.0, subclaim="steps_3_4", effect=0.05),
        criterion("ordinary_ticket_less", 0.02, subclaim="steps_3_4", effect=0.05),
        criterion("ordinary_ticket_selective", 0.0, subclaim="steps_3_4", effect=0.05),
    ),
    calibration=Calibration(grid={"width": (8,), "n_train": (400, 600), "epochs": (15, 20, 25)},
                            axes=("epochs", "n_train")),
    seeds=SeedRule(floor=3, stage=2, looks=2, max_initial=4),
    map=MapGrid(grid={"noise_rate": (0.1, 0.2, 0.4), "width": (8, 16)}, shows="ordinary_ticket_less",
                paper={"noise_rate": 0.1, "width": 64}),
    notes="the talk gives no numbers: the smallest effects of interest are a tenth of the weight movement, a "
          "quarter more pruning than chance, and five points of mislabeled training accuracy",
))


def plan_of(claim: str) -> AnalysisPlan:
    """The analysis plan of an experiment (its NAME, notebook name or number)."""
    from .config import ConfigError
    from .experiments import find_claim, get_experiment, module_name

    try:
        name = get_experiment(claim).NAME
    except ConfigError:  # a number or part of a name: "02", "dropout"
        name = get_experiment(module_name(find_claim(claim))).NAME
    if name not in PLANS:
        raise ValueError(f"experiment {name!r} has no analysis plan in memlib/plans.py")
    return PLANS[name]
