"""Claim 2: example-tied dropout, the two baselines, and the dropout-comparison experiment / verdict."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from memlib.config import ConfigError
from memlib.experiments import resolve
from memlib.dropout import (ETD_MODES, ExampleTiedDropout, FixedChannelMask, StandardDropout, UntiedChannelDropout,
                            etd_modules, make_factory, set_etd_mode)
from memlib.models import build_model
from memlib.result import Result


def etd(channels=10, p_gen=0.4, p_mem=0.2, n=50, seed=0):
    return ExampleTiedDropout(channels, p_gen, p_mem, n, seed=seed)


# ----------------------------------------------------------------------------- example-tied dropout

def test_mask_is_deterministic_per_index():
    a, b = etd(seed=3), etd(seed=3)
    idx = torch.tensor([4, 0, 17, 4])
    assert torch.equal(a.example_masks(idx), b.example_masks(idx))
    # Example i's mask does not depend on how many examples there are, nor on the order it is asked in.
    big = etd(n=500, seed=3)
    assert torch.equal(big.mem_mask[:50], a.mem_mask)
    m = a.example_masks(idx)
    assert torch.equal(m[0], m[3])
    assert torch.equal(a.example_masks(torch.tensor([17]))[0], m[2])
    # Training forward uses the same mask every time for the same example.
    a.train()
    x = torch.randn(4, 10, 3, 3)
    assert torch.equal(a(x, idx), a(x, idx))
    # A different seed gives different masks.
    assert not torch.equal(etd(seed=4).mem_mask, a.mem_mask)


def test_mask_never_touches_global_rng():
    x = torch.ones(8, 10)
    state = torch.get_rng_state()
    m = etd(n=100)
    assert torch.equal(state, torch.get_rng_state())
    m.train()
    m(x, torch.arange(8))
    assert torch.equal(state, torch.get_rng_state())


def test_mask_fractions():
    c, p_gen, p_mem, n = 100, 0.4, 0.2, 4000
    m = etd(c, p_gen, p_mem, n)
    assert m.n_gen == int(p_gen * c) == 40 and m.n_mem == 60
    masks = m.example_masks(torch.arange(n))
    assert masks.shape == (n, c) and masks.dtype == torch.bool
    assert masks[:, :40].all()  # generalization channels: always active
    frac = masks[:, 40:].float().mean().item()
    assert abs(frac - p_mem) < 0.005  # 240,000 Bernoulli(0.2) draws
    # Active fraction of the whole layer per example: p_gen + (1 - p_gen) * p_mem on average.
    assert abs(masks.float().mean().item() - (0.4 + 0.6 * 0.2)) < 0.005
    # Stored as booleans: N x C_mem bytes, not floats per position.
    assert m.mem_mask.dtype == torch.bool and m.mem_mask.shape == (n, 60)


def test_masks_differ_across_examples():
    m = etd(64, 0.25, 0.5, 200)
    masks = m.example_masks(torch.arange(200))
    distinct = {tuple(r.tolist()) for r in masks}
    assert len(distinct) == 200  # 48 memorization channels at p = 0.5: collisions are astronomically unlikely
    # Two examples share, on average, about p_mem of each other's memorization channels.
    mem = masks[:, 16:].float()
    overlap = (mem[0::2] * mem[1::2]).sum(1) / mem[0::2].sum(1).clamp_min(1)
    assert 0.3 < overlap.mean().item() < 0.7


def test_training_applies_each_examples_mask_per_channel():
    m = etd(6, 0.5, 0.5, 10, seed=1)
    m.train()
    x = torch.rand(3, 6, 4, 5) + 1.0  # strictly positive, so zeros come from the mask only
    idx = torch.tensor([2, 7, 9])
    out = m(x, idx)
    keep = m.example_masks(idx)
    for b in range(3):
        for ch in range(6):
            if keep[b, ch]:
                assert torch.equal(out[b, ch], x[b, ch])  # no rescaling during training
            else:
                assert (out[b, ch] == 0).all()  # whole channel, broadcast over height and width


def test_drop_mode_drops_exactly_the_memorization_channels():
    p_gen, p_mem = 0.4, 0.2
    m = etd(10, p_gen, p_mem, 20)
    m.eval()  # default evaluation mode is "drop", the paper's test-time mode
    assert m.mode == "drop"
    x = torch.ones(5, 10, 2, 2)
    out = m(x)  # no indices needed
    assert (out[:, 4:] == 0).all()
    assert torch.allclose(out[:, :4], torch.full((5, 4, 2, 2), (p_gen + p_mem) / p_gen))
    # Same for any example, whatever its own mask is, and for 2-D inputs.
    assert torch.equal(m(x, torch.arange(5)), out)
    out2 = m(torch.ones(3, 10))
    assert (out2[:, 4:] == 0).all() and torch.allclose(out2[:, :4], torch.tensor(1.5))


def test_other_evaluation_modes():
    m = etd(10, 0.4, 0.2, 20)
    m.eval()
    x = torch.randn(4, 10, 3, 3)
    idx = torch.tensor([0, 5, 6, 19])
    m.mode = "own"
    m.train()
    train_out = m(x, idx)
    m.eval()
    assert torch.equal(m(x, idx), train_out)  # each example's own training-time mask
    with pytest.raises(ValueError, match="needs example indices"):
        m(x)
    m.mode = "all"
    assert torch.equal(m(x), x)
    m.mode = "mean"
    out = m(x)
    assert torch.allclose(out[:, :4], x[:, :4]) and torch.allclose(out[:, 4:], 0.2 * x[:, 4:])


def test_training_without_indices_is_a_clear_error():
    m = etd()
    m.train()
    with pytest.raises(ValueError, match="idx=positions"):
        m(torch.randn(2, 10))


def test_set_etd_mode_and_bad_arguments():
    model = build_model("resnet9", 8, (1, 28, 28), 10, make_factory("example_tied", p_gen=0.4, p_mem=0.2,
                                                                       n_examples=30, seed=2))
    mods = etd_modules(model)
    assert len(mods) == 6  # after conv1, conv2, res1, conv3, res2, conv4 (not after the linear layer)
    assert len({m.seed for m in mods}) == 6  # each site draws its own masks
    assert [m.channels for m in mods] == [8, 16, 16, 32, 32, 16]
    for mode in ETD_MODES:
        set_etd_mode(model, mode)
        assert all(m.mode == mode for m in mods)
    with pytest.raises(ValueError, match="unknown example-tied dropout mode"):
        set_etd_mode(model, "keep")
    with pytest.raises(ValueError, match="n_examples"):
        ExampleTiedDropout(8, 0.4, 0.2, 0)
    with pytest.raises(ValueError, match="p_gen"):
        ExampleTiedDropout(8, 0.0, 0.2, 10)
    with pytest.raises(ValueError, match="unknown dropout kind"):
        make_factory("tied")


def test_model_with_example_tied_dropout_runs_in_all_modes():
    model = build_model("smallcnn", 8, (1, 28, 28), 10, make_factory("example_tied", p_gen=0.5, p_mem=0.5,
                                                                        n_examples=12))
    x = torch.randn(4, 1, 28, 28)
    model.train()
    assert model(x, idx=torch.arange(4)).shape == (4, 10)
    model.eval()
    for mode in ("drop", "all", "mean"):
        set_etd_mode(model, mode)
        assert model(x).shape == (4, 10)


# ----------------------------------------------------------------------------- baselines

def test_standard_dropout_rate_and_scaling():
    torch.manual_seed(0)
    d = StandardDropout(0.4)
    d.train()
    x = torch.ones(200, 50, 4, 4)
    out = d(x, torch.arange(200))
    zero = (out == 0).float().mean().item()
    assert abs(zero - 0.4) < 0.01  # element-wise, 160,000 units
    assert torch.allclose(out[out != 0], torch.tensor(1 / 0.6))
    # Not tied to examples or channels: one channel of one example has both kept and dropped units.
    assert 0 < (out[0, 0] == 0).sum() < 16
    d.eval()
    assert torch.equal(d(x), x)


def test_standard_dropout_draws_from_torch_seed_and_checks_p():
    x = torch.ones(8, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    d = StandardDropout(0.5).train()
    torch.manual_seed(3)
    a = d(x)
    torch.manual_seed(3)
    assert torch.equal(d(x), a)  # the global generator decides the mask: a seeded training repeats
    assert a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(StandardDropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        StandardDropout(1.0)


@pytest.mark.parametrize("channels,sparsity", [(10, 0.4), (64, 0.4), (7, 0.5), (16, 0.0)])
def test_sparse_network_rate_and_fixed_mask(channels, sparsity):
    m = FixedChannelMask(channels, sparsity, seed=5)
    assert int((~m.keep).sum()) == int(sparsity * channels)
    x = torch.rand(6, channels, 3, 3) + 1.0
    m.train()
    a = m(x, torch.arange(6))
    m.eval()
    b = m(x)
    assert torch.equal(a, b)  # same units at training and test time
    zeroed = (a == 0).all(dim=(2, 3))  # [B, C]
    assert (zeroed == ~m.keep).all()  # the same channels for every example
    assert torch.equal(FixedChannelMask(channels, sparsity, seed=5).keep, m.keep)
    with pytest.raises(ValueError, match="sparsity"):
        FixedChannelMask(channels, 1.0)


# ----------------------------------------------------------------------------- experiment and verdict

def test_config_validation():
    cfg = resolve("dropout_comparison", "smoke")
    assert cfg.p_gen == 0.4 and cfg.p_mem == 0.2 and cfg.dropout_p == 0.4 and cfg.sparsity == 0.4
    paper = resolve("dropout_comparison", "paper")
    assert (paper.dataset, paper.model, paper.width, paper.noise_rate) == ("cifar10", "resnet9", 64, 0.1)
    quick = resolve("dropout_comparison", "quick")
    assert quick.seeds >= 3 and quick.model == "resnet9"
    with pytest.raises(ConfigError, match="p_mem"):
        resolve("dropout_comparison", "smoke", {"p_mem": 0})
    with pytest.raises(ConfigError, match="p_gen"):
        resolve("dropout_comparison", "smoke", {"p_gen": 1.5})
    with pytest.raises(ConfigError, match="too narrow"):
        resolve("dropout_comparison", "smoke", {"width": 1, "p_gen": 0.6})
    with pytest.raises(ConfigError, match="did you mean 'sparsity'"):
        resolve("dropout_comparison", "smoke", {"sparsit": 0.3})


def test_margins_by_hand():
    from memlib.experiments.dropout_comparison import margins

    logits = torch.tensor([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0], [1.0, 1.0, -1.0]])
    y = torch.tensor([0, 0, 1])
    assert torch.allclose(margins(logits, y), torch.tensor([1.0, -3.0, 0.0]))


def test_forgotten_mask_by_hand():
    from memlib.experiments.dropout_comparison import forgotten_mask

    ex = pd.DataFrame({"noisy": [False, False, False, True, False],
                       "label": [1, 2, 3, 4, 5],
                       "pred_own": [1, 2, 0, 4, 5],
                       "pred_drop": [0, 2, 0, 0, 5]})
    # 0: clean, fit with own mask, lost when dropped -> forgotten; 1 kept; 2 never fit; 3 mislabeled; 4 kept.
    assert forgotten_mask(ex).tolist() == [True, False, False, False, False]


def _fake_result(etd_noisy=0.03, do_noisy=1.0, forgotten_score=0.3, seeds=(0, 1, 2), jitter=0.01, rng_seed=0,
                 sp_noisy=0.99, own_noisy=0.98, own_clean=1.0, untied_clean=0.8, untied_noisy=0.7,
                 untied_forgotten_score=0.9, untied_mean_clean=1.0, etd_clean=0.9):
    """Hand-made tables: per-seed accuracies (with a little seed noise), the untied control's rows (memorization
    channels dropped: gap ``untied_clean - untied_noisy``; every channel at its expected scale), and per seed
    per-example consistency scores (examples 20-39 forgotten by example-tied dropout, 40-59 by the untied
    control)."""
    rng = np.random.default_rng(rng_seed)
    j = lambda v: float(np.clip(v + jitter * rng.normal(), 0, 1))
    rows, exs = [], []
    n = 200
    for seed in seeds:
        rows += [dict(seed=seed, method="dropout", mode="eval", train_clean_acc=j(1.0), train_noisy_acc=j(do_noisy),
                      train_noisy_true=0.0, test_acc=j(0.8)),
                 dict(seed=seed, method="untied", mode="drop", train_clean_acc=j(untied_clean),
                      train_noisy_acc=j(untied_noisy), train_noisy_true=0.0, test_acc=j(0.8)),
                 dict(seed=seed, method="untied", mode="mean", train_clean_acc=j(untied_mean_clean),
                      train_noisy_acc=j(0.95), train_noisy_true=0.0, test_acc=j(0.8)),
                 dict(seed=seed, method="sparse", mode="eval", train_clean_acc=j(1.0), train_noisy_acc=j(sp_noisy),
                      train_noisy_true=0.0, test_acc=j(0.8)),
                 dict(seed=seed, method="example_tied", mode="drop", train_clean_acc=j(etd_clean),
                      train_noisy_acc=j(etd_noisy), train_noisy_true=0.5, test_acc=j(0.8)),
                 dict(seed=seed, method="example_tied", mode="own", train_clean_acc=j(own_clean), train_noisy_acc=j(own_noisy),
                      train_noisy_true=0.0, test_acc=float("nan"))]
        noisy = np.zeros(n, bool)
        noisy[:20] = True
        forgotten = np.zeros(n, bool)
        forgotten[20:40] = True
        lost = np.zeros(n, bool)
        lost[40:60] = True
        score = np.clip(rng.normal(0.9, 0.1, n), 0, 1)
        score[20:40] = np.clip(rng.normal(forgotten_score, 0.1, 20), 0, 1)
        score[40:60] = np.clip(rng.normal(untied_forgotten_score, 0.1, 20), 0, 1)
        exs.append(pd.DataFrame({"seed": seed, "noisy": noisy, "label": 1, "forgotten": forgotten,
                                 "etd_pred_drop": np.where(forgotten | noisy, 0, 1), "dropout_pred": 1,
                                 "untied_pred_mean": 1, "untied_pred_drop": np.where(lost | noisy, 0, 1),
                                 "untied_forgotten": lost, "cscore": score}))
    return Result({"accuracy": pd.DataFrame(rows), "examples": pd.concat(exs, ignore_index=True)}, {"n_train": n})


def test_verdict_from_numbers():
    from memlib.claims import PARTLY, REPRODUCED, NOT_REPRODUCED
    from memlib.claims import dropout_comparison as claim

    v = claim.check(_fake_result())
    assert v.status == REPRODUCED, v._repr_markdown_()
    assert v.measured["etd_clean"].estimate == pytest.approx(0.9, abs=0.02)
    assert v.measured["etd_noisy"].estimate == pytest.approx(0.03, abs=0.02)
    assert v.measured["n_forgotten"] == 3 * 20 and v.measured["n_kept"] == 3 * 160
    assert claim.check(_fake_result(sp_noisy=0.5)).status == PARTLY
    assert claim.check(_fake_result(etd_noisy=0.6)).status == NOT_REPRODUCED
    table = claim.comparison_table(_fake_result(jitter=0.0))
    assert table.loc["Standard dropout", "clean (paper)"] == "100.0%"
    assert table.loc["Example-tied: memorization dropped", "mislabeled (measured)"] == "3.0% [3.0%, 3.0%]"
    at = claim.atypicality(_fake_result())
    assert at["auc"].estimate > 0.99 and at["auc"].low > 0.9 and at["p_value"] < 1e-6
    assert math.isclose(at["forgotten_rate"], 20 / 180)
    assert v.measured["cscore_auc"].n == 3 and v.measured["cscore_auc"].method == "t-interval over 3 seeds"
    assert table.loc["Untied channel dropout (control): memorization dropped",
                     "mislabeled (measured)"] == "70.0% [70.0%, 70.0%]"


def test_null_dropout_comparison_no_forgetting_is_not_reproduced():
    """Dropping the memorization channels changes nothing (clean and mislabeled accuracy both high)."""
    from memlib.claims import NOT_REPRODUCED
    from memlib.claims import dropout_comparison as claim

    v = claim.check(_fake_result(etd_noisy=0.9))
    gap = [c for c in v.criteria if not c.precondition][0]
    assert gap.outcome == "fails" and v.status == NOT_REPRODUCED


@pytest.mark.parametrize("kw, failing", [
    (dict(do_noisy=0.07), "standard dropout fits the mislabeled examples"),
    (dict(own_noisy=0.3), "memorization channels kept"),
    (dict(own_clean=0.41), "the example-tied model fits its clean examples"),
    (dict(untied_mean_clean=0.1, untied_clean=0.1, untied_noisy=0.1), "the untied control"),
])
def test_precondition_a_network_that_does_not_memorize_is_not_testable(kw, failing):
    """The quick book's old failure: standard dropout fitting 7% of the mislabeled examples (or the example-tied
    model never fitting them) makes the comparison untestable, even where the deciding criteria fail."""
    from memlib.claims import NOT_TESTABLE
    from memlib.claims import dropout_comparison as claim

    for etd_noisy in (0.03, 0.9):  # forgetting or not: the run could not have shown the claim
        v = claim.check(_fake_result(etd_noisy=etd_noisy, **kw))
        assert v.status == NOT_TESTABLE, v._repr_markdown_()
        assert [failing in c.text for c in v.failed_preconditions] == [True]
        assert failing in v.status_line() and "needs > 90.0%" in v.status_line()


def test_null_dropout_comparison_random_scores_are_not_atypical():
    """Forgotten and kept clean examples drawn from the same score distribution: the atypicality criterion must not
    hold (AUC near 0.5, below the floor)."""
    from memlib.claims import dropout_comparison as claim

    for rs in range(3):
        v = claim.check(_fake_result(forgotten_score=0.9, rng_seed=rs))
        at = [c for c in v.criteria if c.text.startswith("the forgotten clean examples are atypical")][0]
        assert at.outcome != "holds" and v.status != "reproduced", v._repr_markdown_()
        assert 0.3 < v.measured["cscore_auc"].estimate < 0.7


def test_null_dropout_comparison_seed_noise_is_inconclusive():
    """A gap that is all seed noise (one seed huge, one negative) decides nothing."""
    from memlib.claims import INCONCLUSIVE
    from memlib.claims import dropout_comparison as claim

    r = _fake_result(seeds=(0, 1), jitter=0.0)
    acc = r.tables["accuracy"]
    sel = (acc.method == "example_tied") & (acc["mode"] == "drop")
    acc.loc[sel, "train_noisy_acc"] = [0.0, 0.9]
    acc.loc[sel, "train_clean_acc"] = [1.0, 0.5]
    assert claim.check(r).status == INCONCLUSIVE


def _crit(v, start):
    return [c for c in v.criteria if c.text.startswith(start)][0]


MATCHED = "matched null: example-tied dropout's clean − mislabeled gap"
MATCHED_AUC = "matched null: the forgotten clean examples are more atypical"


def test_power_dropout_comparison_matched_nulls_hold_when_the_tying_localizes():
    """The untied control, with its memorization channels dropped, keeps most clean examples and many mislabeled
    ones too (gap 10 points), and what it forgets is typical: both matched criteria hold."""
    from memlib.claims import REPRODUCED
    from memlib.claims import dropout_comparison as claim

    v = claim.check(_fake_result())
    assert _crit(v, MATCHED).outcome == "holds" and _crit(v, MATCHED).essential
    assert v.measured["matched_excess"].estimate == pytest.approx(0.87 - 0.10, abs=0.03)
    assert v.measured["untied_gap"].estimate == pytest.approx(0.10, abs=0.03)
    assert _crit(v, MATCHED_AUC).outcome == "holds" and not _crit(v, MATCHED_AUC).essential
    assert v.measured["untied_cscore_auc"].n == 3 and 0.3 < v.measured["untied_cscore_auc"].estimate < 0.7
    assert v.status == REPRODUCED


def test_untied_control_with_the_same_gap_is_not_reproduced():
    """Hand-built: the untied control forgets its mislabeled examples and keeps its clean ones exactly as example-
    tied dropout does (the tying adds nothing).  Example-tied dropout's own gap clears GAP, but the matched
    criterion must not hold, and the claim is not reproduced (or, on a wide interval, undecided)."""
    from memlib.claims import NOT_REPRODUCED
    from memlib.claims import dropout_comparison as claim

    for rs in range(3):
        v = claim.check(_fake_result(untied_clean=0.9, untied_noisy=0.03, rng_seed=rs))
        assert _crit(v, "example-tied dropout, memorization channels dropped").outcome == "holds"
        assert _crit(v, MATCHED).outcome in ("fails", "inconclusive"), v._repr_markdown_()
        assert v.status in (NOT_REPRODUCED, "inconclusive")
        assert abs(v.measured["matched_excess"].estimate) < 0.05


def test_untied_matched_null_can_fail_when_tying_does_not_matter():
    """Simulated world where the tying does not matter: per seed, the example-tied and the untied network's
    accuracies (memorization channels dropped) are draws of one distribution (clean 90%, mislabeled 3%, seed spread
    2 points per accuracy, 4 points per gap difference).  The matched null must *fail* -- not merely stay
    undecided -- and turn the verdict to not reproduced in most runs at 5 seeds (32 of these 40; the failing side
    is decided on the Bonferroni-widened interval), never hold, although example-tied dropout's own gap holds every
    time: it is a null that can fail."""
    from memlib.claims import NOT_REPRODUCED
    from memlib.claims import dropout_comparison as claim

    runs = 40
    failed = not_reproduced = own_gap_held = held = 0
    for rs in range(runs):
        v = claim.check(_fake_result(untied_clean=0.9, untied_noisy=0.03, seeds=tuple(range(5)), jitter=0.02,
                                     rng_seed=100 + rs))
        failed += _crit(v, MATCHED).outcome == "fails"
        held += _crit(v, MATCHED).outcome == "holds"
        not_reproduced += v.status == NOT_REPRODUCED
        own_gap_held += _crit(v, "example-tied dropout, memorization channels dropped").outcome == "holds"
    assert own_gap_held == runs
    assert held == 0 and failed >= 0.75 * runs and not_reproduced == failed, (failed, not_reproduced)


def test_untied_control_forgetting_equally_atypical_examples_is_not_reproduced():
    """The artefact for atypicality: the untied control's forgotten set is as atypical as example-tied dropout's
    (a low score tracks difficulty, and so does forgetting under channel dropout): the AUC floor holds, the matched
    one not."""
    from memlib.claims import dropout_comparison as claim

    for rs in range(3):
        v = claim.check(_fake_result(untied_forgotten_score=0.3, rng_seed=rs))
        assert _crit(v, "the forgotten clean examples are atypical").outcome == "holds"
        assert _crit(v, MATCHED_AUC).outcome != "holds", v._repr_markdown_()
        assert v.status != "reproduced"


def test_null_dropout_comparison_atypicality_of_one_seed_decides_nothing():
    """Seed is the unit: many examples forgotten in one seed (none in the others) give no interval, where pooling
    the rows would have decided; the seeds without an AUC are counted."""
    from memlib.claims import dropout_comparison as claim

    r = _fake_result()
    ex = r.tables["examples"]
    ex.loc[ex.seed != 0, ["forgotten", "untied_forgotten"]] = False
    v = claim.check(r)
    at = _crit(v, "the forgotten clean examples are atypical")
    assert at.outcome == "inconclusive" and "AUC undefined in 2 of 3 seeds" in at.evidence
    assert claim.atypicality(r)["auc"].low > 0.9  # the pooled bootstrap would have "held"


def test_untied_masks_differ_across_steps_while_example_tied_masks_do_not():
    """The control's only difference: the same example gets a fresh memorization mask at every step (untied), its
    own fixed mask under example-tied dropout; generalization channels always on, the same rate of memorization
    channels, no rescaling in training."""
    c, p_gen, p_mem, n = 20, 0.4, 0.2, 8
    tied, untied = etd(c, p_gen, p_mem, n, seed=1), UntiedChannelDropout(c, p_gen, p_mem)
    assert (untied.n_gen, untied.n_mem) == (tied.n_gen, tied.n_mem) == (8, 12)
    tied.train(), untied.train()
    x = torch.rand(n, c, 2, 2) + 1.0  # strictly positive: zeros come from the mask only
    idx = torch.arange(n)
    torch.manual_seed(0)
    steps_tied = [(tied(x, idx) != 0).all(dim=(2, 3)) for _ in range(5)]
    steps_untied = [(untied(x, idx) != 0).all(dim=(2, 3)) for _ in range(5)]
    assert all(torch.equal(m, steps_tied[0]) for m in steps_tied)  # tied: the same mask every step
    assert torch.equal(steps_tied[0], tied.example_masks(idx))
    for i in range(n):  # untied: example i's mask changes from step to step
        assert len({tuple(m[i].tolist()) for m in steps_untied}) > 1
    for m in steps_untied:
        assert m[:, :8].all()  # generalization channels on for every example, every step
    out = untied(x, idx)
    assert torch.equal(out[out != 0], x[out != 0])  # whole channels, not rescaled in training
    # the same rate of memorization channels as example-tied dropout: 20,000 x 12 Bernoulli(0.2) draws
    rate = untied.random_masks(20_000)[:, 8:].float().mean().item()
    assert abs(rate - p_mem) < 0.005
    # drawn from torch's global generator: a seeded training repeats
    torch.manual_seed(3)
    a = untied(x, idx)
    torch.manual_seed(3)
    assert torch.equal(untied(x, idx), a)


def test_untied_control_is_evaluated_exactly_as_example_tied_dropout():
    c, p_gen, p_mem = 10, 0.4, 0.2
    tied, untied = etd(c, p_gen, p_mem, 20), UntiedChannelDropout(c, p_gen, p_mem)
    tied.eval(), untied.eval()
    x = torch.randn(5, c, 3, 3)
    for mode in ("drop", "all", "mean"):
        tied.mode = untied.mode = mode
        assert torch.equal(untied(x), tied(x)), mode
    untied.mode = "drop"
    assert (untied(x)[:, 4:] == 0).all() and torch.allclose(untied(x)[:, :4], 1.5 * x[:, :4])
    untied.mode = "own"
    with pytest.raises(ValueError, match="no 'own' mode"):
        untied(x)
    # in a model: the same sites and channels as example-tied dropout, set_etd_mode reaches them
    kw = dict(p_gen=p_gen, p_mem=p_mem)
    model = build_model("resnet9", 8, (1, 28, 28), 10, make_factory("untied", **kw))
    mods = [m for m in model.modules() if isinstance(m, UntiedChannelDropout)]
    ref = etd_modules(build_model("resnet9", 8, (1, 28, 28), 10, make_factory("example_tied", n_examples=4, **kw)))
    assert [(m.channels, m.n_gen) for m in mods] == [(m.channels, m.n_gen) for m in ref] and len(mods) == 6
    set_etd_mode(model, "mean")
    assert all(m.mode == "mean" for m in mods)
    with pytest.raises(ValueError, match="no 'own' mode"):
        set_etd_mode(model, "own")
    p_one = UntiedChannelDropout(8, 1.0, 0.2).train()
    assert torch.equal(p_one(x[:, :8]), x[:, :8])  # p_gen = 1: no memorization channels


def test_p_gen_one_has_nothing_to_drop():
    m = ExampleTiedDropout(8, 1.0, 0.2, 10)
    assert m.n_mem == 0
    x = torch.randn(3, 8, 2, 2)
    m.train()
    assert torch.equal(m(x, torch.arange(3)), x)
    m.eval()
    for mode in ETD_MODES:
        m.mode = mode
        assert torch.equal(m(x, torch.arange(3)), x)  # not rescaled by 1 + p_mem


def test_held_out_scores_by_hand():
    from memlib.probes.consistency import held_out_scores, random_subsets

    subsets = torch.tensor([[0, 1], [1, 2], [2, 3]])  # 3 models, 4 examples
    correct = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)
    score, count = held_out_scores(correct, subsets)
    # example 0 held out by models 1, 2 -> (0 + 1) / 2; 1 by 2 -> 0; 2 by 0 -> 0; 3 by 0, 1 -> (1 + 0) / 2
    assert count.tolist() == [2, 1, 1, 2]
    assert score.tolist() == [0.5, 0.0, 0.0, 0.5]
    s = random_subsets(101, 6, 2, seed=1)
    assert s.shape == (6, 50) and all(len(set(r.tolist())) == 50 for r in s)
    assert not set(s[0].tolist()) & set(s[1].tolist())  # one round of 2 folds: disjoint halves
    assert held_out_scores(torch.ones(6, 101, dtype=torch.bool), s)[1].min() >= 3  # every example held out 3x
    assert torch.equal(s, random_subsets(101, 6, 2, seed=1)) and not torch.equal(s, random_subsets(101, 6, 2, 2))
    with pytest.raises(ValueError, match="multiple of folds"):
        random_subsets(100, 5, 2, seed=0)


def test_consistency_scores_flag_mislabeled_examples():
    """On separable synthetic data, models that did not see an example predict its true class, so mislabeled
    examples score low and clean ones high."""
    from memlib.data import load
    from memlib.probes.consistency import consistency_scores
    from memlib.train import TrainSpec

    d = load("synthetic", n_train=300, n_test=20, noise_rate=0.2, seed=0)
    tr = d.train
    score, count, _ = consistency_scores(tr.x, tr.y, k=8, folds=2, model="mlp", width=32,
                                         spec=TrainSpec(epochs=5, batch_size=50, progress=False), seed=0)
    assert count.min() >= 4
    assert score[~tr.noisy].mean() > 0.8 and score[tr.noisy].mean() < 0.2


def test_tiny_run_end_to_end(store):
    from memlib.claims import dropout_comparison as claim
    from memlib.experiments import dropout_comparison as exp
    from memlib.plots import dropout_comparison as plots

    cfg = resolve("dropout_comparison", "smoke", {"dataset": "synthetic", "n_train": 120, "n_test": 40,
                                                  "epochs": 2, "model": "mlp", "width": 16, "seeds": 2,
                                                  "batch_size": 40, "noise_rate": 0.2, "device": "cpu"})
    r = exp.run(cfg, store)
    acc = r.tables["accuracy"]
    assert len(acc) == 2 * (2 + len(exp.ETD_EVAL_MODES) + len(exp.UNTIED_EVAL_MODES))
    assert set(acc[acc.method == "example_tied"]["mode"]) == set(exp.ETD_EVAL_MODES)
    assert set(acc[acc.method == "dropout"]["mode"]) == {"eval"}
    untied = acc[acc.method == "untied"]  # the matched control, every seed, evaluated as example-tied dropout
    assert set(untied["mode"]) == {"drop", "mean"} and sorted(untied[untied["mode"] == "drop"].seed) == [0, 1]
    assert untied[["train_clean_acc", "train_noisy_acc", "test_acc"]].stack().between(0, 1).all()
    ex = r.tables["examples"]
    assert len(ex) == 2 * 120 and ex.noisy.sum() == 2 * 24
    for col in ("etd_pred_drop", "etd_pred_own", "dropout_pred", "sparse_pred", "dropout_aum", "forgotten", "cscore",
                "cscore_models", "untied_pred_drop", "untied_pred_mean", "untied_forgotten"):
        assert col in ex.columns
    # the control's accuracies are those of its predictions; its forgotten set is clean, fit, then lost
    s0 = ex[ex.seed == 0]
    row = untied[(untied.seed == 0) & (untied["mode"] == "drop")].iloc[0]
    assert row.train_clean_acc == pytest.approx((s0.untied_pred_drop == s0.label)[~s0.noisy].mean())
    assert not (ex.untied_forgotten & ex.noisy).any()
    lost = ex[ex.untied_forgotten]
    assert (lost.untied_pred_mean == lost.label).all() and (lost.untied_pred_drop != lost.label).all()
    assert r.scalars["seeds"] == [0, 1] and r.scalars["n_train"] == 120
    g = r.tables["grid"]
    assert len(g) == min(cfg.grid_size, int(ex[ex.seed == 0].forgotten.sum()))
    images = r.arrays["grid"]  # row i of the grid table is image i, as the dataset's uint8 pixels
    assert images.dtype == np.uint8 and images.shape == (len(g), *r.scalars["image_shape"])
    assert g.image.tolist() == list(range(len(g))) and not any(c.startswith("p0") for c in g.columns)
    assert ex.cscore.between(0, 1).all() and (ex.cscore_models >= 1).all()
    v = claim.check(r, cfg)
    assert len(v.criteria) == 10 and len(v.preconditions) == 4 and v.scale.seeds == 2
    assert "Untied channel dropout (control): memorization dropped" in claim.comparison_table(r).index
    assert len(claim.seed_aucs(r)) == 2
    for fig in (plots.accuracy_bars(r), plots.forgotten_grid(r), plots.atypicality(r)):
        assert len(fig.axes) >= 1 and fig.get_figwidth() <= 7
    # Cached: a second call loads the same tables.
    r2 = exp.run(cfg, store)
    assert r2.cached and len(r2.tables["examples"]) == len(ex)
    np.testing.assert_array_equal(r2.arrays["grid"], images)


def test_p_value_text():
    from memlib.claims.dropout_comparison import p_text

    assert p_text(0.00312) == "p = 0.0031"
    assert p_text(0.0) == "p < 1e-16"
    assert p_text(float("nan")) == "p = n/a"


def test_dropout_sites_put_modules_only_where_asked_and_keep_each_sites_masks():
    from memlib.models import Identity

    every = build_model("resnet9", 8, (1, 28, 28), 10, make_factory("example_tied", p_gen=0.5, p_mem=0.5,
                                                                    n_examples=20, seed=3))
    some = build_model("resnet9", 8, (1, 28, 28), 10, make_factory("example_tied", p_gen=0.5, p_mem=0.5,
                                                                   n_examples=20, seed=3, sites=(2, 4)))
    drops = [f"drop{i}" for i in range(1, 7)]
    kinds = [type(getattr(some, d)).__name__ for d in drops]
    assert kinds == ["Identity", "Identity", "ExampleTiedDropout", "Identity", "ExampleTiedDropout", "Identity"]
    assert torch.equal(some.drop3.mem_mask, every.drop3.mem_mask) and torch.equal(some.drop5.mem_mask,
                                                                                every.drop5.mem_mask)
    assert isinstance(build_model("resnet9", 8, (1, 28, 28), 10, make_factory("dropout", p=0.4, sites=())).drop1,
                      Identity)
    cfg = resolve("dropout_comparison", "smoke", model="resnet9", width=8, dropout_sites="residual")
    assert cfg.dropout_sites == "residual"
    with pytest.raises(ConfigError, match="dropout_sites='residual' names ResNet-9 sites; with model='mlp'"):
        resolve("dropout_comparison", "smoke", dropout_sites="residual")
    with pytest.raises(ConfigError, match="unknown dropout_sites 'some'"):
        resolve("dropout_comparison", "smoke", dropout_sites="some")


def test_every_criterion_and_precondition_has_its_plan_key():
    """Keys name each criterion in the analysis plan; every criterion decides a sub-claim, every precondition
    guards named sub-claims (the untied control's included) and is none of the criteria's quantities."""
    from memlib.claims import dropout_comparison as claim

    v = claim.check(_fake_result())
    keys = [c.key for c in v.criteria]
    assert all(keys) and len(set(keys)) == len(keys)
    crit = {c.key: c for c in v.criteria if not c.precondition}
    pre = {c.key: c for c in v.criteria if c.precondition}
    assert set(pre) == {"dropout_fits_mislabeled", "etd_own_fits_mislabeled", "etd_own_fits_clean",
                        "untied_fits_clean"}
    assert {k: c.subclaim for k, c in crit.items()} == {
        "etd_gap": "localization", "etd_forgets_mislabeled": "localization", "gap_beyond_untied": "localization",
        "sparse_fits_mislabeled": "baselines", "forgotten_atypical": "atypicality",
        "atypical_beyond_untied": "atypicality"}
    assert all(c.guards == ("localization", "atypicality") for c in pre.values())
    subclaims = {c.subclaim for c in crit.values()}
    assert all(set(c.guards) <= subclaims for c in pre.values())
    # no precondition's interval is a criterion's (a precondition is never a deciding quantity)
    assert not {id(c.interval) for c in pre.values()} & {id(c.interval) for c in crit.values()}
    assert all(c.interval.text() != d.interval.text() for c in pre.values() for d in crit.values())
