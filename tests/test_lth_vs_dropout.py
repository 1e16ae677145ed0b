import pandas as pd
import pytest

from memlib.claims import REFUTED, SUPPORTED, UNDECIDED
from memlib.claims import lth_vs_dropout as claim
from memlib.config import ConfigError, resolve
from memlib.experiments import lth_vs_dropout as exp

TINY = dict(dataset="synthetic", model="mlp", width=16, n_train=120, n_test=40, epochs=2, batch_size=30,
            rounds=2, prune_rate=0.5, rewind_step=3, seeds=2)


def test_decision_rule_by_hand():
    assert claim.decide([0.10, 0.06], 0.05) == SUPPORTED
    assert claim.decide([0.10, 0.01], 0.05) == UNDECIDED
    assert claim.decide([0.0, -0.2], 0.05) == REFUTED
    assert claim.decide([0.2, -0.2], 0.05) == UNDECIDED
    assert claim.decide([], 0.05) == UNDECIDED


def test_bad_parameters_give_clear_errors():
    with pytest.raises(ConfigError, match="p_gen"):
        resolve("lth_vs_dropout", "smoke", {"p_gen": 1.0})
    with pytest.raises(ConfigError, match="prune_rate"):
        resolve("lth_vs_dropout", "smoke", {"prune_rate": 0})
    with pytest.raises(ConfigError, match="scope"):
        resolve("lth_vs_dropout", "smoke", {"scope": "channel"})
    with pytest.raises(ConfigError, match="rewind_step"):
        resolve("lth_vs_dropout", "smoke", {"rewind_step": 10_000})


def test_profiles_resolve():
    for p in ("smoke", "quick", "paper"):
        cfg = resolve("lth_vs_dropout", p)
        assert 0 < cfg.p_gen < 1 and cfg.rounds >= 1


def test_tiny_run_tables_and_verdict(store):
    cfg = resolve("lth_vs_dropout", "smoke", TINY)
    r = exp.run(cfg, store)
    arms = r.tables["arms"]
    assert set(arms.seed) == {0, 1}
    per_seed = arms[arms.seed == 0]
    # ticket search at rounds 0..rounds-1, dense once, four pruned arms per round
    assert len(per_seed) == 1 + cfg.rounds + 4 * cfg.rounds
    pruned = per_seed[per_seed["round"] >= 1]
    for rnd, sp in pruned.groupby("round").sparsity:
        assert sp.nunique() == 1 and sp.iloc[0] == pytest.approx(1 - 0.5 ** rnd, abs=0.01)
    ov = r.tables["overlap"]
    assert (ov.removed_mem <= ov.removed).all() and ov.chance_mem.between(0, 1).all()
    ch = r.tables["channels"]
    assert set(ch.group) == {"generalization", "memorization"}
    assert (ch[(ch.seed == 0) & (ch["round"] == 1)].group == "generalization").sum() == int(0.4 * 16)
    v = claim.check(r, cfg)
    assert v.status in (SUPPORTED, REFUTED, UNDECIDED) and len(v.criteria) == 3
    assert v.measured["n_seeds"] == 2 and 0 < v.measured["weight_ratio"]
    again = exp.run(cfg, store)
    assert again.cached
    pd.testing.assert_frame_equal(again.tables["arms"], arms, check_dtype=False)
