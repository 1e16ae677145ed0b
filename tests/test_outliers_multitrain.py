"""Stacked training of K models (torch.func + vmap) ends where memlib.train.fit takes each model."""
import dataclasses

import pytest
import torch

from memlib.data import load
from memlib.models import build_model
from memlib.multitrain import Stack, accuracy_stacked, can_stack, fit_stacked
from memlib.train import TrainSpec, fit, seed_everything


def _model(name, seed, data):
    seed_everything(seed)
    return build_model(name, 8, data.image_shape, data.num_classes)


@pytest.mark.parametrize("name", ["mlp", "smallcnn"])
def test_stacked_equals_sequential_fit(name):
    data = load("synthetic", n_train=300, n_test=100, seed=0)
    # fp32 pinned: this compares two paths, which must not depend on what precision="auto" resolves to on this CPU
    # (bf16 where the probe found it faster; the stacked path trains in fp32)
    spec = TrainSpec(epochs=2, batch_size=32, lr=0.05, progress=False, eval_every=2, precision="fp32")
    g = torch.Generator().manual_seed(3)
    subsets = torch.randperm(300, generator=g)[:3 * 60].view(3, 60)
    seeds = [4, 5, 6]
    stack, info = fit_stacked([_model(name, s, data) for s in seeds], data.train.x, data.train.y, subsets, spec,
                              seeds)
    assert info["steps"] == 2 * 2
    acc = accuracy_stacked(stack, data.test.x, data.test.y)
    for k, s in enumerate(seeds):
        m = _model(name, s, data)
        d = dataclasses.replace(data, train=data.train.subset(subsets[k]))
        hist = fit(m, d, spec.replace(seed=s))
        for p, q in zip(m.parameters(), stack.models[k].parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
        assert acc[k].item() == pytest.approx(hist.test_acc.iloc[-1], abs=0.02)


def test_stack_rejects_batchnorm_and_bad_shapes():
    data = load("synthetic", n_train=50, n_test=10, seed=0)
    assert not can_stack(build_model("resnet9", 4, data.image_shape, 10))
    with pytest.raises(ValueError, match="BatchNorm"):
        Stack([build_model("resnet9", 4, data.image_shape, 10)])
    m = [_model("mlp", 0, data)]
    spec = TrainSpec(epochs=1, progress=False)
    with pytest.raises(ValueError, match="subsets must be"):
        fit_stacked(m, data.train.x, data.train.y, torch.arange(10), spec, [0])
    with pytest.raises(ValueError, match="one seed per model"):
        fit_stacked(m, data.train.x, data.train.y, torch.arange(10)[None], spec, [0, 1])


def test_non_finite_loss_of_a_stacked_model_is_reported():
    data = load("synthetic", n_train=60, n_test=20, seed=0)
    spec = TrainSpec(epochs=3, batch_size=20, lr=1e30, warmup_frac=0.0, schedule="constant", progress=False)
    with pytest.raises(FloatingPointError, match="lower lr"):
        fit_stacked([_model("mlp", s, data) for s in (0, 1)], data.train.x, data.train.y,
                    torch.arange(60).expand(2, 60), spec, [0, 1])
