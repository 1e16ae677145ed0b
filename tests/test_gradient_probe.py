import math

import pytest
import torch
from torch import nn

from memlib.probes.gradients import GradientSimilarityProbe, group_similarity, mean_loss_gradient


class Linear(nn.Module):
    """logits = W x, no bias, W = 0: the softmax is uniform, so CE gradients are known in closed form."""

    LAYER_GROUPS = ("fc",)

    def __init__(self, k=2, d=2):
        super().__init__()
        self.fc = nn.Linear(d, k, bias=False)
        nn.init.zeros_(self.fc.weight)

    def forward(self, x, idx=None):
        return self.fc(x)


def test_mean_loss_gradient_matches_closed_form():
    # dCE/dW = (softmax - onehot) x^T; with W = 0, softmax = (1/2, 1/2).
    m = Linear()
    g = mean_loss_gradient(m, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    expected = 0.5 * (torch.tensor([[-0.5, 0.0], [0.5, 0.0]]) + torch.tensor([[0.0, 0.5], [0.0, -0.5]]))
    assert torch.allclose(g["fc.weight"], expected)


def test_mean_loss_gradient_is_independent_of_chunking():
    torch.manual_seed(0)
    m = Linear(3, 4)
    nn.init.normal_(m.fc.weight)
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    a = mean_loss_gradient(m, x, y, chunk=3)["fc.weight"]
    b = mean_loss_gradient(m, x, y, chunk=100)["fc.weight"]
    assert torch.allclose(a, b, atol=1e-6)


def test_opposite_labels_give_cosine_minus_one():
    m = Linear()
    x = torch.tensor([[1.0, 0.0]])
    rows = group_similarity(m, (x, torch.tensor([0])), (x, torch.tensor([1])))
    assert len(rows) == 1 and rows[0]["layer"] == "fc"
    assert rows[0]["cosine"] == pytest.approx(-1.0)
    assert rows[0]["norm_a"] == pytest.approx(math.sqrt(0.5)) and rows[0]["norm_b"] == pytest.approx(math.sqrt(0.5))


def test_hand_computed_partial_similarity():
    # clean mean gradient [[-.25, .25], [.25, -.25]] (norm .5); noisy [[.5, 0], [-.5, 0]] (norm sqrt(.5))
    m = Linear()
    clean = (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    noisy = (torch.tensor([[1.0, 0.0]]), torch.tensor([1]))
    r = group_similarity(m, clean, noisy)[0]
    assert r["cosine"] == pytest.approx(-0.25 / (0.5 * math.sqrt(0.5)))
    assert r["norm_a"] == pytest.approx(0.5)


def test_layer_cosine_is_the_mean_over_its_tensors():
    class Two(nn.Module):
        LAYER_GROUPS = ("fc",)

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2, bias=True)
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

        def forward(self, x, idx=None):
            return self.fc(x)

    x = torch.tensor([[1.0, 0.0]])
    r = group_similarity(Two(), (x, torch.tensor([0])), (x, torch.tensor([1])))[0]
    assert r["cosine"] == pytest.approx(-1.0)  # weight and bias both -1


def test_probe_records_every_epoch_and_layer(tiny_run):
    hist, probe, model = tiny_run
    epochs = sorted({r["epoch"] for r in probe.rows})
    assert epochs == list(range(0, int(hist.epoch.max()) + 1))
    layers = {r["layer"] for r in probe.rows}
    assert layers == set(model.LAYER_GROUPS)
    assert all(-1.0001 <= r["cosine"] <= 1.0001 for r in probe.rows)


def test_probe_needs_mislabeled_examples():
    from memlib.data import load
    from memlib.models import build_model
    from memlib.train import TrainSpec, fit

    d = load("synthetic", n_train=40, n_test=20, noise_rate=0.0)
    m = build_model("mlp", 8, d.image_shape, 10)
    with pytest.raises(ValueError, match="noise_rate > 0"):
        fit(m, d, TrainSpec(epochs=1, progress=False), callbacks=[GradientSimilarityProbe(10)])


@pytest.fixture
def tiny_run():
    from memlib.data import load
    from memlib.models import build_model
    from memlib.train import TrainSpec, fit

    d = load("synthetic", n_train=200, n_test=50, noise_rate=0.2, seed=0)
    torch.manual_seed(0)
    m = build_model("smallcnn", 4, d.image_shape, 10)
    probe = GradientSimilarityProbe(probe_size=20)
    hist = fit(m, d, TrainSpec(epochs=2, batch_size=50, progress=False), callbacks=[probe])
    return hist, probe, m


# ---- the training protocol (Maini et al.'s accounting during training) ----------------------------------------

def _tiny(n=60, noise=0.2, model="resnet9", width=4):
    from memlib.data import load
    from memlib.models import build_model

    d = load("synthetic", n_train=n, n_test=20, noise_rate=noise, seed=0)
    torch.manual_seed(0)
    return d, build_model(model, width, d.image_shape, 10)


@pytest.mark.parametrize("placebo_seed", [None, 3])
def test_training_accounting_leaves_training_unchanged(placebo_seed):
    """The surrogate loss has the batch gradient: the same weights (BatchNorm statistics too) as plain training,
    with or without the placebo's third gradient."""
    import copy

    from memlib.probes.gradients import TrainingGradientAccounting
    from memlib.train import TrainSpec, fit

    d, m = _tiny()
    m2 = copy.deepcopy(m)
    spec = TrainSpec(epochs=2, batch_size=16, progress=False, precision="fp32")
    acc = TrainingGradientAccounting(placebo_seed=placebo_seed)
    h1 = fit(m, d, spec, callbacks=[acc], loss_fn=acc)
    h2 = fit(m2, d, spec)
    for (n, a), b in zip(m.state_dict().items(), m2.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), n
    assert h1.train_loss[1:].tolist() == pytest.approx(h2.train_loss[1:].tolist(), rel=1e-5)
    assert sorted({r["epoch"] for r in acc.rows}) == [1, 2]
    assert [r["layer"] for r in acc.rows if r["epoch"] == 1] == list(m.LAYER_GROUPS)


def test_training_accounting_sums_the_two_parts_of_each_batch():
    """One batch per epoch, plain SGD with lr 0: the epoch sums are the parts of the batch loss at the initial
    weights, i.e. (n_group / n) x each group's mean-loss gradient, with BatchNorm in training mode."""
    from memlib.probes.gradients import TrainingGradientAccounting
    from memlib.train import TrainSpec, fit

    d, m = _tiny(n=40)
    m.train()
    tr = d.train
    n, noisy = len(tr), tr.noisy
    pos = torch.arange(n)
    clean_g = mean_loss_gradient_train(m, tr.x, tr.y, pos, ~noisy)
    noisy_g = mean_loss_gradient_train(m, tr.x, tr.y, pos, noisy)
    acc = TrainingGradientAccounting()
    fit(m, d, TrainSpec(epochs=1, batch_size=n, lr=1e-12, momentum=0.0, weight_decay=0.0, warmup_frac=0.0,
                        schedule="constant", progress=False, precision="fp32"), callbacks=[acc], loss_fn=acc)
    for name in clean_g:
        assert torch.allclose(acc_sum(acc, "clean", name), clean_g[name], atol=1e-5), name
        assert torch.allclose(acc_sum(acc, "noisy", name), noisy_g[name], atol=1e-5), name


def test_placebo_positions_are_a_fixed_random_clean_subset_of_the_mislabeled_groups_size():
    from memlib.probes.gradients import placebo_positions

    noisy = torch.zeros(100, dtype=torch.bool)
    noisy[torch.arange(0, 100, 7)] = True  # 15 mislabeled
    p = placebo_positions(noisy, seed=4)
    assert len(p) == 15 and len(set(p.tolist())) == 15 and not noisy[p].any()
    assert torch.equal(p, placebo_positions(noisy, seed=4)) and not torch.equal(p, placebo_positions(noisy, seed=5))
    many = torch.ones(10, dtype=torch.bool)
    many[:4] = False  # 6 mislabeled, 4 clean: at most half of the clean ones, so that a rest remains
    assert len(placebo_positions(many, seed=0)) == 2


def test_training_accounting_placebo_is_accounted_like_the_mislabeled_group():
    """One batch, lr ~ 0: the placebo's epoch sum is its part of the batch loss at the initial weights, and its
    cosine is taken against the rest of the clean examples (the clean sum minus the placebo's)."""
    from memlib.probes.gradients import TrainingGradientAccounting, layer_rows, placebo_positions
    from memlib.train import TrainSpec, fit

    d, m = _tiny(n=40)
    m.train()
    tr = d.train
    pos = torch.arange(len(tr))
    mask = torch.zeros(len(tr), dtype=torch.bool)
    mask[placebo_positions(tr.noisy, 7)] = True
    assert mask.sum() == tr.noisy.sum() and not (mask & tr.noisy).any()
    placebo_g = mean_loss_gradient_train(m, tr.x, tr.y, pos, mask)
    rest_g = mean_loss_gradient_train(m, tr.x, tr.y, pos, ~mask & ~tr.noisy)
    acc = TrainingGradientAccounting(placebo_seed=7)
    fit(m, d, TrainSpec(epochs=1, batch_size=len(tr), lr=1e-12, momentum=0.0, weight_decay=0.0, warmup_frac=0.0,
                        schedule="constant", progress=False, precision="fp32"), callbacks=[acc], loss_fn=acc)
    for name in placebo_g:
        assert torch.allclose(acc_sum(acc, "placebo", name), placebo_g[name], atol=1e-5), name
    expected = [r["cosine"] for r in layer_rows(m, placebo_g, rest_g)]
    got = [r["placebo_cosine"] for r in acc.rows]
    assert got == pytest.approx(expected, abs=1e-4) and len(got) == len(m.LAYER_GROUPS)


def test_probe_placebo_is_as_large_as_its_mislabeled_group_and_outside_its_clean_rest():
    from memlib.data import load
    from memlib.models import build_model
    from memlib.train import TrainSpec, fit

    d = load("synthetic", n_train=200, n_test=50, noise_rate=0.2, seed=0)
    torch.manual_seed(0)
    m = build_model("mlp", 8, d.image_shape, 10)
    probe = GradientSimilarityProbe(probe_size=20, placebo_seed=11)
    fit(m, d, TrainSpec(epochs=1, batch_size=50, progress=False), callbacks=[probe])
    assert len(probe.placebo_pos) == len(probe.noisy_pos) == 20
    assert not d.train.noisy[probe.placebo_pos].any()
    assert not set(probe.placebo_pos.tolist()) & set(probe.rest_pos.tolist())
    assert set(probe.rest_pos.tolist()) <= set(probe.clean_pos.tolist()) and len(probe.rest_pos) > 0
    assert all(-1.0001 <= r["placebo_cosine"] <= 1.0001 for r in probe.rows) and len(probe.rows) == 2 * 2


def mean_loss_gradient_train(model, x, y, idx, mask):
    """Gradient of sum over ``mask`` of the per-example loss / n on the whole batch (BatchNorm in training mode)."""
    import torch.nn.functional as F

    params = dict(model.named_parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    per = F.cross_entropy(model(x, idx=idx), y, reduction="none")
    gs = torch.autograd.grad((per * mask.float()).sum() / len(y), list(params.values()))
    model.load_state_dict(state)  # undo the BatchNorm running-statistics update of this forward pass
    return dict(zip(params, gs))


def acc_sum(acc, group, name):
    """The epoch sum of the last epoch (kept by the test through ``last_sums``)."""
    return acc.last_sums[group][name]


def test_training_accounting_needs_mislabeled_examples():
    from memlib.probes.gradients import TrainingGradientAccounting
    from memlib.train import TrainSpec, fit

    d, m = _tiny(noise=0.0, model="mlp", width=8)
    acc = TrainingGradientAccounting()
    with pytest.raises(ValueError, match="noise_rate > 0"):
        fit(m, d, TrainSpec(epochs=1, progress=False), callbacks=[acc], loss_fn=acc)


def test_probe_groups_from_disjoint_blocks_equal_one_pass_per_group():
    """The probe computes its four overlapping groups from one pass per example; the same as one pass per group."""
    from memlib.probes.gradients import disjoint_blocks, group_gradients, layer_rows

    d, m = _tiny(n=120, noise=0.2, model="resnet9", width=4)
    m.train()
    with torch.no_grad():  # non-trivial BatchNorm running statistics
        m(d.train.x[:64])
    tr = d.train
    groups = {"clean": torch.tensor([0, 1, 2, 5, 8, 9, 13]), "noisy": torch.tensor([3, 4, 6]),
              "placebo": torch.tensor([1, 2, 7, 11]), "rest": torch.tensor([0, 5, 8, 9, 13])}
    blocks, parts = disjoint_blocks(groups)
    assert sorted(sum((b.tolist() for b in blocks), [])) == sorted({p for g in groups.values() for p in g.tolist()})
    for name, pos in groups.items():
        assert sorted(sum((blocks[b].tolist() for b in parts[name]), [])) == sorted(pos.tolist())
    got = group_gradients(m, tr, groups)
    m.eval()
    for name, pos in groups.items():
        direct = mean_loss_gradient(m, tr.x[pos], tr.y[pos], pos)
        for p in direct:
            assert torch.allclose(got[name][p], direct[p], rtol=1e-5, atol=1e-7), (name, p)
    m.train()
    rows = layer_rows(m, got["clean"], got["noisy"])
    ref = group_similarity(m, (tr.x[groups["clean"]], tr.y[groups["clean"]], groups["clean"]),
                           (tr.x[groups["noisy"]], tr.y[groups["noisy"]], groups["noisy"]))
    for r, e in zip(rows, ref):
        assert r["cosine"] == pytest.approx(e["cosine"], abs=1e-5)
        assert r["norm_a"] == pytest.approx(e["norm_a"], rel=1e-5) and r["norm_b"] == pytest.approx(e["norm_b"], rel=1e-5)


# ---- the placebo can fail; the difficulty-matched clean group ---------------------------------------------------

def _opposing_run(n=40, n_noisy=4, placebo_seed=3):
    """A linear model that predicts class 0 for x = e1; every example is x = e1.  Clean examples are labelled 0,
    except the placebo's (``placebo_positions``) and the mislabeled ones, labelled 1: a small clean group whose
    per-example gradients oppose the rest's exactly as the mislabeled group's do (and whose loss is highest)."""
    from types import SimpleNamespace

    from memlib.probes.gradients import placebo_positions

    m = Linear()
    with torch.no_grad():
        m.fc.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    noisy = torch.zeros(n, dtype=torch.bool)
    noisy[:n_noisy] = True
    y = torch.zeros(n, dtype=torch.long)
    y[noisy] = 1
    small = placebo_positions(noisy, placebo_seed)
    y[small] = 1
    x = torch.tensor([[1.0, 0.0]]).repeat(n, 1)
    run = SimpleNamespace(model=m, data=SimpleNamespace(train=SimpleNamespace(x=x, y=y, noisy=noisy)), epoch=0,
                          spec=SimpleNamespace(precision="fp32", epochs=1))
    return run, small


def test_probe_placebo_group_whose_gradients_oppose_the_rest_gives_negative_cosines():
    """The placebo's cosine is not positive by construction: a small clean group whose per-example gradients oppose
    the rest's shows cosine -1 in the probe, like the mislabeled group; so its share of negative cells can reach
    the mislabeled group's, and the matched-null criterion can fail."""
    run, small = _opposing_run()
    probe = GradientSimilarityProbe(probe_size=100, placebo_seed=3, hard=True)
    probe.on_fit_start(run)
    assert sorted(probe.placebo_pos.tolist()) == sorted(small.tolist())
    row = probe.rows[0]
    assert row["cosine"] == pytest.approx(-1.0) and row["placebo_cosine"] == pytest.approx(-1.0)
    # the difficulty-matched group is the clean examples of highest loss: here the same opposing group
    assert sorted(probe.hard_pos.tolist()) == sorted(small.tolist())
    assert row["hard_cosine"] == pytest.approx(-1.0)


def test_probe_placebo_sharing_the_mean_gradient_gives_positive_cosines():
    """The other case: every clean example's gradient the same, so a random clean subset shares the rest's mean."""
    run, _ = _opposing_run()
    run.data.train.y[~run.data.train.noisy] = 0
    probe = GradientSimilarityProbe(probe_size=100, placebo_seed=3)
    probe.on_fit_start(run)
    assert probe.rows[0]["placebo_cosine"] == pytest.approx(1.0) and probe.rows[0]["cosine"] == pytest.approx(-1.0)


def test_hard_positions_are_the_clean_examples_of_highest_loss_of_the_placebos_size():
    from memlib.probes.gradients import hard_positions, placebo_positions

    noisy = torch.zeros(20, dtype=torch.bool)
    noisy[[0, 5, 9]] = True
    losses = torch.arange(20, dtype=torch.float32)
    losses[19] = -1.0  # a mislabeled position of high loss never counts
    noisy[18] = True
    losses[18] = 100.0
    h = hard_positions(losses, noisy)
    assert len(h) == len(placebo_positions(noisy, 0)) == 4
    assert h.tolist() == [14, 15, 16, 17]


def test_training_accounting_hard_group_is_chosen_at_each_epochs_start_and_accounted_like_the_placebo():
    """One batch, lr ~ 0: the hard group is the clean examples of highest eval-mode loss at the initial weights,
    its epoch sum is its part of the batch loss, its cosine taken against the rest of the clean examples."""
    from memlib.probes.gradients import TrainingGradientAccounting, eval_losses, hard_positions, layer_rows
    from memlib.train import TrainSpec, fit

    d, m = _tiny(n=40)
    tr = d.train
    pos = torch.arange(len(tr))
    hard = hard_positions(eval_losses(m, tr.x, tr.y, pos), tr.noisy)
    mask = torch.zeros(len(tr), dtype=torch.bool)
    mask[hard] = True
    assert mask.sum() == tr.noisy.sum() and not (mask & tr.noisy).any()
    m.train()
    hard_g = mean_loss_gradient_train(m, tr.x, tr.y, pos, mask)
    rest_g = mean_loss_gradient_train(m, tr.x, tr.y, pos, ~mask & ~tr.noisy)
    acc = TrainingGradientAccounting(placebo_seed=7, hard=True)
    fit(m, d, TrainSpec(epochs=1, batch_size=len(tr), lr=1e-12, momentum=0.0, weight_decay=0.0, warmup_frac=0.0,
                        schedule="constant", progress=False, precision="fp32"), callbacks=[acc], loss_fn=acc)
    assert torch.equal(acc.last_hard.cpu(), mask)
    for name in hard_g:
        assert torch.allclose(acc_sum(acc, "hard", name), hard_g[name], atol=1e-5), name
    expected = [r["cosine"] for r in layer_rows(m, hard_g, rest_g)]
    assert [r["hard_cosine"] for r in acc.rows] == pytest.approx(expected, abs=1e-4)
