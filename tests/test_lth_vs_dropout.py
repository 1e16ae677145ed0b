import numpy as np
import pandas as pd
import pytest

from memlib.claims import (UNTESTED, CONTRADICTED, CONTRADICTS, FAILS, HOLDS, INCONCLUSIVE, NOT_SUPPORTED, NOT_TESTABLE,
                           SUPPORTED, UNDECIDED)
from memlib.claims import lth_vs_dropout as claim
from memlib.config import ConfigError
from memlib.experiments import resolve
from memlib.experiments import lth_vs_dropout as exp
from memlib.experiments.lth_vs_dropout import FINAL_ARMS, Chain
from memlib.notebook import fmt
from memlib.pruning import Arm
from memlib.result import Result

TINY = dict(dataset="synthetic", model="mlp", width=16, n_train=120, n_test=40, epochs=2, batch_size=30,
            rounds=2, prune_rate=0.5, rewind_step=3, seeds=2)


# ----------------------------------------------------------------------------- hand-made results

def made_result(rng, seeds=3, moved_ratio=1.0, enrichment=1.0, etd_gap=0.0, ord_gap=0.0, clean_gap=0.0,
                dense_fit=0.9, noise=0.03, etd_dropped=0.05) -> Result:
    """Tables shaped like the experiment's, with the given true effects plus seed-to-seed noise ``noise``."""
    channels, overlap, arms = [], [], []
    for s in range(seeds):
        for site in range(2):
            for c in range(10):
                mem = c >= 4
                moved = 0.01 * (moved_ratio if mem else 1.0) * (1 + noise * rng.standard_normal())
                channels.append({"seed": s, "site": site, "layer": f"l{site}", "channel": c,
                                 "group": "memorization" if mem else "generalization", "moved": moved,
                                 "mean_abs": 0.02 * (1 + noise * rng.standard_normal()), "l2": 1.0})
        chance = 0.6
        share = min(1.0, chance * enrichment * (1 + noise * rng.standard_normal()))
        overlap.append({"seed": s, "round": 1, "site": 0, "layer": "l0", "available": 1000,
                        "available_mem": int(1000 * chance), "removed": 200, "removed_mem": int(round(200 * share)),
                        "sparsity": 0.2})
        for chain, g in ((Chain.ETD, etd_gap), (Chain.ORDINARY, ord_gap)):
            arms.append({"seed": s, "chain": chain.value, "arm": Arm.DENSE.value, "round": 0, "sparsity": 0.0,
                         "train_clean_acc": 0.98,
                         "train_noisy_acc": etd_dropped if chain is Chain.ETD else dense_fit, "train_noisy_true": 0.05,
                         "test_acc": 0.8})
            ticket_noisy = 0.7 + noise * rng.standard_normal()
            ticket_clean = 0.3 + noise * rng.standard_normal()
            for arm in dict.fromkeys((Arm.MAGNITUDE_K, *FINAL_ARMS[chain])):  # a fixed order of draws
                is_random = arm is Arm.RANDOM_K
                arms.append({"seed": s, "chain": chain.value, "arm": arm.value, "round": 2, "sparsity": 0.91,
                             "train_clean_acc": ticket_clean + (clean_gap if is_random else 0.0)
                             + noise * rng.standard_normal(),
                             "train_noisy_acc": ticket_noisy + (g if is_random else 0.0) + noise * rng.standard_normal(),
                             "train_noisy_true": 0.1, "test_acc": 0.75})
    return Result({"channels": pd.DataFrame(channels), "overlap": pd.DataFrame(overlap), "arms": pd.DataFrame(arms)},
                  {"n_train": 1000})


def steps(v):
    """The hypothesis' steps (criteria that are not preconditions), in order."""
    return [c for c in v.criteria if not c.precondition]


CLEAR = dict(moved_ratio=0.5, enrichment=1.4, etd_gap=0.3, ord_gap=0.3, clean_gap=0.0, noise=0.02)


def test_clear_effect_is_supported():
    v = claim.check(made_result(np.random.default_rng(0), **CLEAR))
    assert v.kind == "hypothesis"
    assert [c.outcome for c in steps(v)] == [HOLDS] * 6
    assert v.status == SUPPORTED
    assert v.measured["moved_ratio"].high < 0.95 and v.measured["etd_noisy_gap"].low > 0.02


def test_clear_opposite_effect_is_contradicted():
    # five seeds: "contradicted" is decided on the 1 - 5%/4 interval (four steps could contradict)
    v = claim.check(made_result(np.random.default_rng(1), seeds=5, moved_ratio=1.0, enrichment=1.0, etd_gap=-0.2,
                                ord_gap=-0.2))
    assert v.status == CONTRADICTED
    assert steps(v)[2].outcome == CONTRADICTS and steps(v)[4].outcome == CONTRADICTS


def test_effect_below_the_margin_is_not_supported():
    # memorization channels move 2% less: a real but negligible difference, decided as "fails", not "holds"
    v = claim.check(made_result(np.random.default_rng(2), **{**CLEAR, "moved_ratio": 0.98, "noise": 0.002}))
    assert steps(v)[0].outcome == FAILS and v.status == NOT_SUPPORTED


def test_tickets_that_fit_less_of_everything_are_not_specific():
    # random mask fits 30 points more mislabeled AND 60 points more clean examples: step 3b/4b fail
    v = claim.check(made_result(np.random.default_rng(3), **{**CLEAR, "clean_gap": 0.6}))
    assert steps(v)[2].outcome == HOLDS and steps(v)[3].outcome == FAILS
    assert v.status == NOT_SUPPORTED


def test_precondition_lth_no_memorization_in_the_dense_network_is_not_testable():
    """Steps 3-4 need a dense network that memorizes: the same clear effects are then not testable."""
    v = claim.check(made_result(np.random.default_rng(4), **{**CLEAR, "dense_fit": 0.1}))
    assert v.status == NOT_TESTABLE
    assert [c.text.split(":")[0] for c in v.failed_preconditions] == ["steps 3–4"]
    assert "dense ordinary network memorizes" in v.status_line() and "10.0%" in v.status_line()


def test_precondition_lth_example_tied_dropout_that_localizes_nothing_is_not_testable():
    """Steps 1-2 need memorization channels that hold the memorization: when dropping them leaves 80% of the
    mislabeled examples fitted, the hypothesis is not testable (never 'not supported')."""
    v = claim.check(made_result(np.random.default_rng(8), **{**CLEAR, "etd_dropped": 0.8}))
    assert v.status == NOT_TESTABLE
    assert [c.text.split(":")[0] for c in v.failed_preconditions] == ["steps 1–2"]


def test_null_lth_no_effect_is_not_supported():
    # channels that moved equally, measured precisely (20 channels x 3 seeds): step 1 clearly misses its margin;
    # the accuracy gaps are noise around 0: undecided or short of the margin, never holding or contradicted
    v = claim.check(made_result(np.random.default_rng(5)))
    assert steps(v)[0].outcome == FAILS
    assert all(c.outcome in (UNDECIDED, FAILS) for c in steps(v)[2:])
    assert v.status == NOT_SUPPORTED


def test_null_lth_one_seed_decides_nothing():
    v = claim.check(made_result(np.random.default_rng(6), seeds=1, **CLEAR))
    assert v.status == NOT_TESTABLE and all(c.outcome in (UNDECIDED, UNTESTED) for c in v.criteria)


# ----------------------------------------------------------------------------- configuration and a tiny run

def test_bad_parameters_give_clear_errors():
    with pytest.raises(ConfigError, match="p_gen"):
        resolve("lth_vs_dropout", "smoke", {"p_gen": 1.0})
    with pytest.raises(ConfigError, match="prune_rate"):
        resolve("lth_vs_dropout", "smoke", {"prune_rate": 0})
    with pytest.raises(ConfigError, match="scope"):
        resolve("lth_vs_dropout", "smoke", {"scope": "channel"})
    with pytest.raises(ConfigError, match="rewind_step"):
        resolve("lth_vs_dropout", "smoke", {"rewind_step": 10_000})


def test_quick_and_paper_profiles_reach_ninety_percent_sparsity_on_resnet9():
    for p in ("quick", "paper"):
        cfg = resolve("lth_vs_dropout", p)
        assert cfg.model == "resnet9" and cfg.scope == "global" and cfg.seeds >= 3
        assert exp.final_sparsity(cfg.values) >= 0.90
    paper = resolve("lth_vs_dropout", "paper")
    assert paper.prune_rate == 0.2 and paper.rounds == 11  # open_lth's sparse_global, 91.4% sparse


def test_tiny_run_tables_and_verdict(store):
    cfg = resolve("lth_vs_dropout", "smoke", TINY)
    r = exp.run(cfg, store)
    arms = r.tables["arms"]
    assert set(arms.seed) == {0, 1}
    s0 = arms[arms.seed == 0]
    etd, ordinary = s0[s0.chain == Chain.ETD.value], s0[s0.chain == Chain.ORDINARY.value]
    # example-tied chain: its dense network, then the last mask retrained as ticket and random mask
    assert sorted(etd.arm) == sorted([Arm.DENSE.value, Arm.MAGNITUDE_K.value, Arm.RANDOM_K.value])
    # ordinary chain: dense, the ticket at every level, and the three other branches at the last level
    assert len(ordinary) == 1 + cfg.rounds + 3
    tickets = ordinary[ordinary.arm == Arm.MAGNITUDE_K.value].sort_values("round")
    assert tickets.sparsity.tolist() == pytest.approx([0.5, 0.75], abs=0.01)
    last = ordinary[ordinary["round"] == cfg.rounds]
    assert set(last.arm) == {Arm.MAGNITUDE_K.value, Arm.MAGNITUDE_0.value, Arm.REINIT.value, Arm.RANDOM_K.value}
    assert last.sparsity.nunique() == 1
    # history: one end-of-training evaluation per training (eval_every = epochs), plus epoch 0
    h = r.tables["history"]
    assert h.dropna(subset=["test_acc"]).groupby(["seed", "chain", "arm", "round"]).size().eq(2).all()
    ov = r.tables["overlap"]
    assert (ov.removed_mem <= ov.removed).all() and set(ov["round"]) == {1, 2}
    ch = r.tables["channels"]
    assert (ch[ch.seed == 0].group == "generalization").sum() == int(0.4 * 16)
    assert (ch.moved > 0).all()
    v = claim.check(r, cfg)
    assert len(v.criteria) == 8 and len(v.preconditions) == 2 and v.measured["n_seeds"] == 2
    for val in v.measured.values():
        fmt(val)  # every measured value carries its format
    assert "75.0% sparse" in v.scale.text()
    again = exp.run(cfg, store)
    assert again.cached
    pd.testing.assert_frame_equal(again.tables["arms"], arms, check_dtype=False)


def test_each_precondition_guards_only_its_own_steps():
    """The dense network does not memorize (steps 3–4 not testable) while example-tied dropout localizes: steps 1–2
    are still decided and shown — a contradicted step 1 is not hidden behind the other steps' precondition."""
    rng = np.random.default_rng(7)
    v = claim.check(made_result(rng, seeds=4, moved_ratio=1.5, enrichment=1.4, dense_fit=0.2, noise=0.02))
    by = {c.key: c for c in v.criteria}
    assert by["localizes"].outcome == HOLDS and by["dense_memorizes"].outcome == FAILS
    assert by["moved"].outcome == CONTRADICTS and by["enrichment"].outcome == HOLDS
    assert all(by[k].outcome == UNTESTED for k in ("etd_ticket_less", "ordinary_ticket_less"))
    assert v.status == CONTRADICTED
    # the same steps 1–2 holding, steps 3–4 untestable: not testable (not supported would blame untested steps)
    v = claim.check(made_result(rng, seeds=4, moved_ratio=0.5, enrichment=1.4, dense_fit=0.2, noise=0.02))
    assert v.status == NOT_TESTABLE and {c.key for c in v.deciding_criteria()} == {"dense_memorizes"}
