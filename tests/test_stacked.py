import pytest
import torch

from memlib.data import load
from memlib.dropout import make_factory
from memlib.models import ResNet9
from memlib.stacked import StackedResNet9, fit_stacked, stack_state, unstack_state
from memlib.train import TrainSpec, fit, seed_everything

SEEDS = [3, 4, 5]


def _models(width=2, dropout="none", n=0):
    out = []
    for s in SEEDS:
        seed_everything(s)
        f = make_factory(dropout, p_gen=0.5, p_mem=0.5, n_examples=n, seed=s) if dropout != "none" else None
        out.append(ResNet9(width, 1, 10, channel_dropout=f))
    return out


def test_stack_and_unstack_are_inverse():
    models = _models()
    states = [m.state_dict() for m in models]
    back = unstack_state(stack_state(states), len(models))
    for a, b in zip(states, back):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("train_mode", [False, True])
def test_stacked_forward_is_each_models_forward(train_mode):
    models = _models(width=4)
    net = StackedResNet9.from_models(models)
    xs = [torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(i)) for i in range(len(models))]
    for m in models:
        m.train(train_mode)
    net.train(train_mode)
    out = net(torch.cat(xs, 1))
    assert out.shape == (6, len(models), 10)
    for j, (m, x) in enumerate(zip(models, xs)):
        torch.testing.assert_close(out[:, j], m(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dropout, augment", [("none", True), ("example_tied", False)])
def test_stacked_training_gives_each_model_its_own_training(dropout, augment):
    """Each model ends where fit takes it alone (same seed, batch order, labels, augmentation and masks)."""
    datas = [load("synthetic", n_train=80, n_test=40, noise_rate=0.25, seed=s) for s in SEEDS]
    spec = TrainSpec(epochs=2, batch_size=32, lr=0.05, augment=augment, precision="fp32", progress=False,
                     eval_every=1)
    alone = _models(dropout=dropout, n=80)
    hists = [fit(m, d, spec.replace(seed=s)) for m, d, s in zip(alone, datas, SEEDS)]
    together, stacked_hists = fit_stacked(_models(dropout=dropout, n=80), datas, spec, SEEDS)
    for a, b in zip(alone, together):
        sa, sb = a.state_dict(), b.state_dict()
        for k in sa:
            torch.testing.assert_close(sb[k], sa[k], atol=2e-4, rtol=1e-3, msg=f"parameter {k}")
    for h, g in zip(hists, stacked_hists):
        assert list(g.epoch) == list(h.epoch) and g.attrs["stacked"] == len(SEEDS)
        torch.testing.assert_close(torch.tensor(g.train_loss.to_numpy()[1:]),
                                   torch.tensor(h.train_loss.to_numpy()[1:]), atol=1e-4, rtol=1e-4)
        for col in ("train_acc", "train_clean_acc", "train_noisy_acc", "test_acc", "lr"):
            assert g[col].tolist() == pytest.approx(h[col].tolist(), abs=1e-6), col


def test_models_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="share width"):
        StackedResNet9.from_models([ResNet9(2, 1, 10), ResNet9(4, 1, 10)])
    d = load("synthetic", n_train=40, n_test=20, seed=0)
    e = load("synthetic", n_train=30, n_test=20, seed=0)
    with pytest.raises(ValueError, match="equal size"):
        fit_stacked(_models()[:2], [d, e], TrainSpec(epochs=1, progress=False), [0, 1])
