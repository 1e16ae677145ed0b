"""Claim 4: the ELR loss, the early-phase probes and the experiment at a tiny scale."""
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memlib.config import ConfigError, resolve
from memlib.losses import ELRLoss
from memlib.probes.early_phase import (EarlyPhaseProbe, distance_from_init, gradient_norm, sign_change_fraction,
                                       tracked_parameters)
from memlib.pruning import MaskCallback, magnitude_prune
from memlib.store import Result


# ---------------------------------------------------------------- ELR

def test_elr_first_step_by_hand():
    # Two classes, logits 0 -> p = (1/2, 1/2); beta = 0.5, lambda = 2; targets start at zero.
    loss = ELRLoss(num_examples=3, num_classes=2, beta=0.5, lam=2.0)
    logits = torch.zeros(1, 2, requires_grad=True)
    y = torch.tensor([1])
    idx = torch.tensor([2])
    v = loss(logits, y, idx)
    # target after update: 0.5 * 0 + 0.5 * (1/2, 1/2) = (1/4, 1/4); <p, t> = 1/4
    assert torch.allclose(loss.target[2], torch.tensor([0.25, 0.25]))
    assert torch.equal(loss.target[:2], torch.zeros(2, 2))
    expected = math.log(2) + 2.0 * math.log(1 - 0.25)
    assert v.item() == pytest.approx(expected, abs=1e-6)


def test_elr_value_with_existing_target_and_gradient_direction():
    # p = softmax(log 3, 0) = (3/4, 1/4); existing target (0, 1); beta = 0.7
    # t <- 0.7 (0, 1) + 0.3 (3/4, 1/4) = (0.225, 0.775); <p, t> = 0.16875 + 0.19375 = 0.3625
    loss = ELRLoss(num_examples=1, num_classes=2, beta=0.7, lam=3.0)
    loss.target[0] = torch.tensor([0.0, 1.0])
    logits = torch.tensor([[math.log(3.0), 0.0]], requires_grad=True)
    v = loss(logits, torch.tensor([0]), torch.tensor([0]))
    assert torch.allclose(loss.target[0], torch.tensor([0.225, 0.775]), atol=1e-6)
    ce = -math.log(0.75)
    assert v.item() == pytest.approx(ce + 3.0 * math.log(1 - 0.3625), abs=1e-5)
    assert loss.last["reg"].item() == pytest.approx(math.log(1 - 0.3625), abs=1e-6)
    # The regularizer alone pulls the prediction towards the target (class 1).
    logits2 = torch.tensor([[math.log(3.0), 0.0]], requires_grad=True)
    reg = loss.regularizer(loss.probabilities(logits2), torch.tensor([0]))
    reg.backward()
    assert logits2.grad[0, 1] < 0 < logits2.grad[0, 0]


def test_elr_target_update_is_running_average_of_normalized_clamped_probs():
    loss = ELRLoss(num_examples=4, num_classes=3, beta=0.7, lam=3.0)
    idx = torch.tensor([1, 3])
    probs = torch.tensor([[0.2, 0.3, 0.5], [1.0, 1.0, 2.0]])  # second row unnormalized
    loss.update_targets(idx, probs)
    assert torch.allclose(loss.target[1], 0.3 * torch.tensor([0.2, 0.3, 0.5]))
    assert torch.allclose(loss.target[3], 0.3 * torch.tensor([0.25, 0.25, 0.5]))
    loss.update_targets(idx, probs)
    assert torch.allclose(loss.target[1], (0.7 * 0.3 + 0.3) * torch.tensor([0.2, 0.3, 0.5]))
    assert torch.equal(loss.target[0], torch.zeros(3))
    # extreme logits are clamped to [1e-4, 1 - 1e-4] so log(1 - <p, t>) stays finite
    p = loss.probabilities(torch.tensor([[100.0, -100.0, -100.0]]))
    assert p.min().item() == pytest.approx(1e-4) and p.max().item() == pytest.approx(1 - 1e-4)
    loss.target[0] = torch.tensor([1.0, 0.0, 0.0])
    assert torch.isfinite(loss(torch.tensor([[100.0, -100.0, -100.0]]), torch.tensor([0]), torch.tensor([0])))


def test_elr_lambda_zero_is_cross_entropy_and_bad_values_rejected():
    torch.manual_seed(0)
    logits, y = torch.randn(5, 4), torch.randint(0, 4, (5,))
    loss = ELRLoss(5, 4, beta=0.7, lam=0.0)
    assert loss(logits, y, torch.arange(5)).item() == pytest.approx(F.cross_entropy(logits, y).item(), abs=1e-6)
    with pytest.raises(ConfigError, match="beta"):
        ELRLoss(5, 4, beta=1.0)
    with pytest.raises(ConfigError, match="lambda"):
        ELRLoss(5, 4, lam=-1)
    with pytest.raises(ValueError, match="idx"):
        loss(logits, y, None)


# ---------------------------------------------------------------- early-phase probes

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2, bias=True)

    def forward(self, x, idx=None):
        return self.fc(x)


class Linear784(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    def forward(self, x, idx=None):
        return self.net(x)


def test_probe_statistics_on_hand_set_weights():
    m = Tiny()
    with torch.no_grad():
        m.fc.weight.copy_(torch.tensor([[1.0, -2.0], [2.0, 0.5]]))
        m.fc.bias.fill_(7.0)  # biases are not tracked
    params = tracked_parameters(m)
    assert list(params) == ["fc.weight"]
    init = {n: p.detach().clone() for n, p in params.items()}
    with torch.no_grad():
        m.fc.weight.copy_(torch.tensor([[-1.0, -2.0], [2.0, 0.5 + 3.0]]))  # one sign flip; moved by (-2, 0, 0, 3)
    d, rel = distance_from_init(params, init)
    assert d == pytest.approx(math.sqrt(4 + 9))
    assert rel == pytest.approx(math.sqrt(13) / math.sqrt(1 + 4 + 4 + 0.25))
    assert sign_change_fraction(params, init) == pytest.approx(0.25)
    m.fc.weight.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    assert gradient_norm(params) == pytest.approx(5.0)


def test_early_phase_probe_and_rewinding_in_fit():
    from memlib.data import load
    from memlib.train import TrainSpec, fit

    data = load("synthetic", n_train=64, n_test=32, noise_rate=0.25, seed=0)
    torch.manual_seed(0)
    model = Linear784()
    m = model.net
    probe = EarlyPhaseProbe(max_steps=5, every=2, keep_steps=[0, 3])
    init_w = m[1].weight.detach().clone()
    fit(model, data, TrainSpec(epochs=2, batch_size=16, progress=False), callbacks=[probe])
    rows = pd.DataFrame(probe.rows)
    assert list(rows.step) == [0, 2, 4]
    assert rows.dist_init.iloc[0] == 0 and rows.sign_changed.iloc[0] == 0 and math.isnan(rows.grad_norm.iloc[0])
    assert (rows.dist_init.iloc[1:] > 0).all() and (rows.grad_norm.iloc[1:] > 0).all()
    assert rows.epoch.tolist() == [0, 0.5, 1.0]
    assert sorted(probe.states) == [0, 3]
    assert torch.equal(probe.states[0]["net.1.weight"], init_w)
    # magnitude pruning keeps the largest weights; the mask callback keeps pruned ones at zero while training
    masks = magnitude_prune(model, None, 0.75, scope="global")
    w = m[1].weight.detach()
    kept = masks["net.1.weight"]
    assert kept.float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert w[kept].abs().min() >= w[~kept].abs().max()
    fit(model, data, TrainSpec(epochs=1, batch_size=16, progress=False), callbacks=[MaskCallback(masks)])
    assert (m[1].weight.detach()[~kept] == 0).all()


def test_magnitude_masks_by_hand():
    m = Tiny()
    with torch.no_grad():
        m.fc.weight.copy_(torch.tensor([[0.1, -3.0], [-0.2, 2.0]]))
    assert magnitude_prune(m, None, 0.5, scope="global")["fc.weight"].tolist() == [[False, True], [False, True]]
    assert magnitude_prune(m, None, 0.0, scope="global")["fc.weight"].all()


# ---------------------------------------------------------------- experiment, verdicts, plots

def test_config_validation():
    with pytest.raises(ConfigError, match="rewind_steps"):
        resolve("early_learning", "smoke", {"rewind_steps": "0,abc"})
    with pytest.raises(ConfigError, match="beyond the end"):
        resolve("early_learning", "smoke", {"rewind_steps": "0,1000"})
    with pytest.raises(ConfigError, match="noise_rate > 0"):
        resolve("early_learning", "smoke", {"noise_rate": 0.0})
    with pytest.raises(ConfigError, match="elr_beta"):
        resolve("early_learning", "smoke", {"elr_beta": 1.5})


def _fake_result():
    rows = []
    # CE: true-class fraction rises to 0.7 then falls; memorized rises to 0.95; test peaks at epoch 3 then falls
    ce_true = [0.1, 0.4, 0.6, 0.7, 0.5, 0.2, 0.05]
    ce_mem = [0.1, 0.05, 0.05, 0.1, 0.4, 0.8, 0.95]
    ce_test = [0.1, 0.5, 0.7, 0.8, 0.75, 0.7, 0.68]
    elr_true = [0.1, 0.4, 0.6, 0.7, 0.72, 0.74, 0.75]
    elr_mem = [0.1, 0.05, 0.05, 0.05, 0.06, 0.07, 0.08]
    elr_test = [0.1, 0.5, 0.7, 0.8, 0.81, 0.81, 0.82]
    for loss, t, mem, te in (("ce", ce_true, ce_mem, ce_test), ("elr", elr_true, elr_mem, elr_test)):
        for e in range(7):
            rows.append({"seed": 0, "loss": loss, "epoch": e, "train_clean_acc": 0.5 + e / 14,
                         "train_noisy_acc": mem[e], "train_noisy_true": t[e], "test_acc": te[e]})
    steps = range(0, 41)
    ep = pd.DataFrame({"seed": 0, "step": list(steps), "epoch": [s / 10 for s in steps],
                       "grad_norm": [float("nan")] + [5.0 / s for s in steps if s],
                       "dist_init": [math.sqrt(s) for s in steps], "rel_dist_init": [math.sqrt(s) / 10 for s in steps],
                       "sign_changed": [0.2 * math.sqrt(s / 40) for s in steps], "batch_loss": 1.0})
    rw = pd.DataFrame({"seed": 0, "k": [0, 10], "k_epoch": [0, 1], "sparsity": 0.8, "epochs": 3,
                       "test_acc": [0.70, 0.74], "train_clean_acc": 1.0, "train_noisy_acc": 0.9,
                       "train_noisy_true": 0.05, "seconds": 1.0})
    return Result({"history": pd.DataFrame(rows), "early_phase": ep, "rewind": rw}, {})


def test_verdicts_on_a_hand_made_result():
    from memlib.claims import REPRODUCED, early_learning as claim

    r = _fake_result()
    a = claim.check_early_learning(r)
    assert a.status == REPRODUCED
    assert a.measured["peak_true"] == pytest.approx(0.7) and a.measured["peak_true_epoch"] == 3
    assert a.measured["peak_test_epoch"] == 3 and a.measured["test_drop"] == pytest.approx(0.12)
    assert a.measured["crossover_epoch"] == 5
    b = claim.check_elr(r)
    assert b.status == REPRODUCED
    assert b.measured["elr_final_memorized"] == pytest.approx(0.08)
    c = claim.check_early_phase(r)
    assert c.status == REPRODUCED
    assert c.measured["half_dist_step"] == 10  # sqrt(s) >= sqrt(40) / 2  <=>  s >= 10
    assert claim.check(r).status == REPRODUCED
    # ELR that memorizes as much as CE: the ELR verdict fails, the combined one is partial
    h = r.tables["history"].copy()
    h.loc[h["loss"] == "elr", ["train_noisy_acc", "train_noisy_true", "test_acc"]] = \
        h.loc[h["loss"] == "ce", ["train_noisy_acc", "train_noisy_true", "test_acc"]].values
    r2 = Result({**r.tables, "history": h}, {})
    assert claim.check_elr(r2).status == "not reproduced"
    assert claim.check(r2).status == "partly reproduced"
    # the early phase is part of the chapter's verdict: a flat (not front-loaded) early phase makes it partial
    ep = r.tables["early_phase"].copy()
    for col in ("dist_init", "rel_dist_init", "sign_changed"):
        ep[col] = ep[col].iloc[-1] * ep["step"] / ep["step"].max()
    r3 = Result({**r.tables, "early_phase": ep}, {})
    assert claim.check_early_phase(r3).status != REPRODUCED
    assert claim.check(r3).status == "partly reproduced"


def test_plots_from_a_result():
    import matplotlib.pyplot as plt
    from memlib.plots import early_learning as plots

    r = _fake_result()
    for fig in (plots.fractions(r), plots.test_accuracy(r), plots.early_phase(r)):
        assert fig.axes
        plt.close(fig)


def test_smoke_experiment_runs_and_caches(store):
    from memlib.experiments import early_learning as exp

    cfg = resolve("early_learning", "smoke", {"epochs": 2, "n_train": 200, "n_test": 100, "rewind_steps": "0,2",
                                              "probe_steps": 3})
    r = exp.run(cfg, store)
    h = r.tables["history"]
    assert set(h["loss"]) == {"ce", "elr"}
    assert len(h) == 2 * 3  # epochs 0..2 per loss
    # same initialization for both losses
    e0 = h[h.epoch == 0].set_index("loss")
    assert e0.loc["ce", "test_acc"] == e0.loc["elr", "test_acc"]
    assert list(r.tables["early_phase"].step) == [0, 1, 2, 3]
    assert list(r.tables["rewind"].k) == [0, 2]
    assert r.scalars["n_noisy"] == int(0.4 * 200)
    again = exp.run(cfg, store)
    assert again.cached and again.tables["history"].shape == h.shape


def test_schedule_text_names_the_warmup_length():
    from memlib.claims.early_learning import schedule_text

    cfg = resolve("early_learning", "smoke", {"warmup_frac": 0.5, "epochs": 2})
    assert "first 3 iterations" in schedule_text(cfg, steps_per_epoch=3)
    assert "no warm-up" in schedule_text(resolve("early_learning", "smoke", {"warmup_frac": 0.0}), 3)
