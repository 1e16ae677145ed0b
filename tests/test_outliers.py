"""Claim 3: the attack (exact on linear models), ranking and windows, the verdict, config errors, reproducibility."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from memlib.attacks import linear_min_distance, min_l2_distance
from memlib.claims import INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED
from memlib.claims import outlier_percentiles as claim
from memlib.config import ConfigError
from memlib.experiments import resolve
from memlib.experiments import outlier_percentiles as exp
from memlib.outliers import balanced_windows, rank_order, spearman, window_region, windows


def test_linear_closed_form_by_hand():
    # logits (2, 0.5) for x = (2, 0.5) with W = I: class 0 wins; boundary x1 = x2 is (2 - 0.5) / sqrt(2) away.
    w, b = torch.eye(2), torch.zeros(2)
    d = linear_min_distance(w, b, torch.tensor([[2.0, 0.5]]))
    assert d.item() == pytest.approx(1.5 / math.sqrt(2))


@pytest.mark.parametrize("k,dim", [(2, 5), (10, 784)])
def test_attack_is_exact_on_a_linear_classifier(k, dim):
    torch.manual_seed(0)
    lin = nn.Linear(dim, k)
    model = nn.Sequential(nn.Flatten(), lin)
    x = torch.randn(300, dim) if dim != 784 else torch.randn(300, 1, 28, 28)
    r = min_l2_distance(model, x, steps=5, search_steps=30)
    exact = linear_min_distance(lin.weight.detach(), lin.bias.detach(), x)
    # (w_i - w_j).x + (b_i - b_j) over ||w_i - w_j||, minimum over j: one DeepFool step, then the bisection.
    assert r.converged.all() and (r.steps == 1).all()
    assert torch.allclose(r.distance, exact, rtol=1e-4, atol=1e-6)
    assert torch.equal(r.pred, lin(x.flatten(1)).argmax(1))


def test_attack_on_a_relu_net_finds_a_flipping_point_and_restores_mode():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4)).train()
    x = torch.randn(64, 20)
    r = min_l2_distance(model, x, batch_size=16)
    assert model.training and r.distance.shape == (64,) and r.converged.all() and (r.distance > 0).all()


def test_windows_edges():
    assert windows(10, 3, 4) == [(0, 3), (2, 5), (5, 8), (7, 10)]  # starts rint(linspace(0, 7, 4))
    w = windows(4000, 400, 10)
    assert w[0] == (0, 400) and w[-1] == (3600, 4000)
    assert all(b == a2 for (_, b), (a2, _) in zip(w, w[1:]))  # consecutive, no gap, no overlap
    assert windows(5, 5, 1) == [(0, 5)] and windows(5, 2, 1) == [(0, 2)]
    assert windows(5, 1, 5) == [(i, i + 1) for i in range(5)]
    with pytest.raises(ValueError, match="larger than the pool"):
        windows(5, 6, 1)
    with pytest.raises(ValueError, match="do not fit"):
        windows(5, 2, 5)


def test_balanced_windows_take_the_same_percentiles_of_every_class():
    # class 0 has 6 examples, class 1 has 12; scores make positions rank in reverse order within each class
    labels = np.array([0] * 6 + [1] * 12)
    score = -np.arange(18.0)
    members, t = balanced_windows(labels, score, window_size=4, n_windows=3, num_classes=2)
    # per class 2 examples a window; class 0 ranked 5,4,3,2,1,0 -> windows (5,4), (3,2), (1,0)
    # class 1 ranked 17..6 -> starts rint(linspace(0, 10, 3)) = 0, 5, 10 -> (17,16), (12,11), (7,6)
    assert [m.tolist() for m in members] == [[4, 5, 16, 17], [2, 3, 11, 12], [0, 1, 6, 7]]
    assert t.region.tolist() == ["low", "middle", "high"] and t["size"].tolist() == [4, 4, 4]
    assert t.pct_lo.tolist() == pytest.approx([0, (100 * 2 / 6 + 100 * 5 / 12) / 2, (100 * 4 / 6 + 100 * 10 / 12) / 2])
    assert t.pct_hi.iloc[-1] == pytest.approx(100)
    with pytest.raises(ValueError, match="class 0 has 6 examples"):
        balanced_windows(labels, score, window_size=10, n_windows=3, num_classes=2)
    with pytest.raises(ValueError, match="smaller than the 2 classes"):
        balanced_windows(labels, score, window_size=1, n_windows=3, num_classes=2)


def test_rank_order_ties_and_regions():
    s = [0.0, 2.0, 0.0, 1.0, 0.0]
    assert rank_order(s).tolist() == [0, 2, 4, 3, 1]  # ties by position
    assert rank_order(s, tiebreak=[0.9, 0, 0.1, 0, 0.9]).tolist() == [2, 0, 4, 3, 1]  # then by tiebreak
    assert [window_region(w, 9) for w in range(9)] == ["low"] * 3 + ["middle"] * 3 + ["high"] * 3
    assert [window_region(w, 3) for w in range(3)] == ["low", "middle", "high"]
    with pytest.raises(ValueError, match="multiple of 3"):
        window_region(0, 10)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 100]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def _curve(ds, accs_by_seed):
    rows = []
    n = len(accs_by_seed[0])
    for s, accs in enumerate(accs_by_seed):
        for w, a in enumerate(accs):
            rows.append({"dataset": ds, "seed": s, "window": w, "region": window_region(w, n),
                         "pct_lo": 100 * w / n, "pct_hi": 100 * (w + 1) / n, "pct_mid": 100 * (w + 0.5) / n,
                         "test_acc": a, "train_acc": 1.0, "adv_mean": w})
    return pd.DataFrame(rows)


def _r(curve, agreement=0.8, n_pool=5000):
    """A result-like object: the curve, and metric models whose two halves agree with Spearman ``agreement``."""
    per = {ds: {"spearman_adv_halves": agreement, "n_pool": n_pool} for ds in dict.fromkeys(curve.dataset)}
    return type("R", (), {"tables": {"curve": curve}, "scalars": {"per_dataset": per}})()


def steps(v):
    return [c for c in v.criteria if not c.precondition]


def test_verdict_from_hand_made_curves():
    # MNIST: the low third beats middle by 10 and high by 20 points, with a small seed spread
    low = _curve("mnist5k", [[0.90, 0.80, 0.90, 0.75, 0.70, 0.80, 0.60, 0.65, 0.70],
                             [0.88, 0.82, 0.91, 0.76, 0.71, 0.78, 0.62, 0.64, 0.69],
                             [0.91, 0.81, 0.87, 0.74, 0.69, 0.79, 0.61, 0.66, 0.71]])
    mid = _curve("fashion-mnist", [[0.5 + d, 0.6, 0.6, 0.8, 0.8 + d, 0.8, 0.6, 0.6, 0.5] for d in (0, .01, -.01)])
    high = _curve("fashion-mnist", [[0.5, 0.5, 0.6, 0.6, 0.7 + d, 0.7, 0.8, 0.9, 0.9] for d in (0, .01, -.01)])
    v = claim.check(_r(pd.concat([low, mid])))
    assert v.status == REPRODUCED and v.measured["mnist5k_best_region"] == "low"
    iv = v.measured["mnist5k_low_minus_middle"]
    assert iv.estimate == pytest.approx(0.8667 - 0.7467, abs=1e-3) and iv.low > 0 and iv.unit == "points"
    assert len(steps(v)) == 4 and len(v.preconditions) == 4 and all(c.outcome == "holds" for c in v.criteria)
    # the paper's middle region is clearly beaten by the high one: fails -> not reproduced
    v2 = claim.check(_r(pd.concat([low, high])))
    assert v2.status == NOT_REPRODUCED
    assert [c.outcome for c in steps(v2)] == ["holds", "holds", "holds", "fails"]  # middle vs low, vs high


def test_null_outlier_percentiles_flat_curve_with_seed_noise_is_inconclusive():
    # No effect: every window's accuracy is 0.8 plus independent noise; 5 seeds, 9 windows, two datasets.
    rng = np.random.default_rng(0)
    outcomes = []
    for rep in range(20):
        c = pd.concat([_curve(ds, (0.8 + 0.01 * rng.standard_normal((5, 9))).tolist())
                       for ds in ("fashion-mnist", "mnist5k")])
        v = claim.check(_r(c))
        outcomes.append(v.status)
    # a positive verdict needs all four intervals above zero: never under the null here
    assert REPRODUCED not in outcomes
    assert outcomes.count(INCONCLUSIVE) >= 14


def test_null_outlier_percentiles_one_seed_decides_nothing():
    v = claim.check(_r(_curve("fashion-mnist", [[0.5, 0.6, 0.6, 0.8, 0.9, 0.8, 0.6, 0.6, 0.5]])))
    assert v.status == NOT_TESTABLE and all(c.outcome in ("inconclusive", "not tested") for c in steps(v))


@pytest.mark.parametrize("agreement, train_acc, failing", [(0.05, 1.0, "carries signal"),
                                                          (0.8, 0.5, "window models train")])
def test_precondition_outliers_noise_ranking_or_untrained_windows_are_not_testable(agreement, train_acc, failing):
    """A clear middle peak is not evidence when the ranking is noise (the halves of the metric models disagree) or
    the window models do not fit their windows: not testable, never reproduced."""
    mid = _curve("fashion-mnist", [[0.5 + d, 0.6, 0.6, 0.8, 0.8 + d, 0.8, 0.6, 0.6, 0.5] for d in (0, .01, -.01)])
    mid["train_acc"] = train_acc
    v = claim.check(_r(mid, agreement=agreement))
    assert v.status == NOT_TESTABLE
    assert [failing in c.text for c in v.failed_preconditions] == [True]


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown dataset 'mnistt'"):
        resolve("outlier_percentiles", "smoke", datasets="mnistt")
    with pytest.raises(ConfigError, match="twice"):
        resolve("outlier_percentiles", "smoke", datasets="mnist5k, mnist5k")
    with pytest.raises(ConfigError, match="larger than the mnist5k pool of 1000"):
        resolve("outlier_percentiles", "smoke", window_size=2000)
    with pytest.raises(ConfigError, match="too many"):
        resolve("outlier_percentiles", "smoke", n_train=200, window_size=100, n_windows=15)
    with pytest.raises(ConfigError, match="multiple of 3"):
        resolve("outlier_percentiles", "smoke", n_windows=5)
    with pytest.raises(ConfigError, match="multiple of 10"):
        resolve("outlier_percentiles", "smoke", window_size=105)
    with pytest.raises(ConfigError, match="without BatchNorm"):
        resolve("outlier_percentiles", "smoke", model="resnet9", trainer="stacked")
    assert resolve("outlier_percentiles", "smoke", datasets=" mnist5k ,synthetic").datasets == "mnist5k,synthetic"


@pytest.fixture
def tiny():
    return resolve("outlier_percentiles", "smoke", datasets="synthetic", width=16, n_train=200, n_test=100,
                   window_size=50, n_windows=3, seeds=2, metric_models=2, epochs=2, metric_epochs=2, strip_size=4,
                   attack_steps=5)


def test_experiment_is_reproducible_and_cached(tiny, store, tmp_path):
    from memlib.store import Store

    r1 = exp.run(tiny, store)
    curve = r1.tables["curve"]
    assert len(curve) == 6 and sorted(curve.seed.unique()) == [0, 1] and curve.window.max() == 2
    assert (curve["size"] == 50).all() and (curve.max_class_frac == 0.1).all()  # 5 of each of 10 classes
    assert curve.region.tolist() == ["low", "middle", "high"] * 2
    assert set(r1.tables["strips"].group) == {"lowest", "highest"} and len(r1.tables["strips"]) == 8
    sc = r1.tables["scores"]
    assert sorted(sc["rank"]) == list(range(200)) and (sc.adv >= 0).all()
    low = r1.tables["strips"].query("group == 'lowest'").adv
    assert (low <= sc.adv.median()).all()
    images = r1.arrays[exp.strips_array("synthetic")]
    assert images.dtype == np.uint8 and images.shape == (8, 1, 28, 28)
    data = exp._pool(tiny, "synthetic")  # row i of the strips table is image i: the pool image at that rank
    pos = torch.tensor(sc.set_index("rank").position[r1.tables["strips"]["rank"]].to_numpy())
    np.testing.assert_array_equal(images[r1.tables["strips"].image], data.pixels(data.train.x[pos]))
    from memlib.plots import outlier_percentiles as plots

    fig = plots.strip(r1, "synthetic", "highest")
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    highest = r1.tables["strips"].query("group == 'highest'").sort_values("order").image
    np.testing.assert_allclose(shown[0], images[highest.iloc[0], 0] / 255)
    cached = exp.run(tiny, store)
    assert cached.cached
    np.testing.assert_array_equal(cached.arrays[exp.strips_array("synthetic")], images)
    scale = claim.check(r1, tiny).scale  # the verdict's scale from a Config with several datasets, clean labels
    assert (scale.dataset, scale.noise_rate, scale.n_train, scale.seeds) == ("synthetic data", 0.0, 200, 2)
    r2 = exp.run(tiny, Store(tmp_path / "other"))  # computed again from scratch: same numbers
    assert not r2.cached
    pd.testing.assert_frame_equal(r1.tables["curve"], r2.tables["curve"])
    np.testing.assert_array_equal(r1.tables["scores"]["rank"], r2.tables["scores"]["rank"])


def test_sequential_trainer_gives_the_stacked_result(tiny, store):
    a = exp.run(tiny.replace(seeds=1), store).tables["curve"]
    b = exp.run(tiny.replace(seeds=1, trainer="sequential"), store).tables["curve"]
    np.testing.assert_allclose(a.test_acc, b.test_acc, atol=0.021)  # float rounding may flip an example or two
