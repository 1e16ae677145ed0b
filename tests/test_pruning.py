import pytest
import torch
from torch import nn

from memlib.data import load
from memlib.dropout import make_factory
from memlib.models import build_model
from memlib.probes.channels import channel_stats, pruned_share
from memlib.pruning import (Arm, CaptureAt, LotteryTicket, MaskCallback, RewindPoints, apply_masks, full_masks,
                            magnitude_prune, one_shot_prune, prunable, random_masks, reinit, retrain, rewind, snapshot,
                            sparsity, start)
from memlib.train import TrainSpec, fit


def _mlp(width=16, etd=False, n=60):
    torch.manual_seed(0)
    f = make_factory("example_tied", p_gen=0.5, p_mem=0.5, n_examples=n) if etd else None
    return build_model("mlp", width, (1, 28, 28), 10, f)


def test_prunable_weights_are_conv_and_linear_weights_only():
    m = build_model("resnet9", 4, (1, 28, 28), 10)
    names = set(prunable(m))
    assert "conv1.0.weight" in names and "fc.weight" in names
    assert not any("bias" in n or ".1.weight" in n for n in names)  # no BatchNorm (index 1 of conv_bn)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruned_fraction_per_round_is_as_asked(scope):
    m = _mlp(32)
    masks = full_masks(m)
    total = sum(x.numel() for x in masks.values())
    for r in range(1, 4):
        kept_before = sum(int(x.sum()) for x in masks.values())
        new = magnitude_prune(m, masks, 0.3, scope)
        kept = sum(int(x.sum()) for x in new.values())
        assert abs((kept_before - kept) - 0.3 * kept_before) <= (len(masks) if scope == "layer" else 1)
        assert not (new["fc1.weight"] & ~masks["fc1.weight"]).any()  # pruned weights stay pruned
        masks = new
        apply_masks(m, masks)
    assert sparsity(masks) == pytest.approx(1 - 0.7 ** 3, abs=0.01)
    assert 1 - sum(int(x.sum()) for x in masks.values()) / total == pytest.approx(sparsity(masks))
    if scope == "layer":
        for x in masks.values():
            assert 1 - x.float().mean().item() == pytest.approx(1 - 0.7 ** 3, abs=0.01)


def test_one_shot_pruning_hits_the_target_sparsity_ranking_all_layers_together():
    m = _mlp(16)
    with torch.no_grad():
        m.fc2.weight.mul_(100.0)  # fc2's weights now outrank all of fc1's
    n = {k: v.numel() for k, v in prunable(m).items()}
    masks = one_shot_prune(m, 0.8)  # global by default
    assert sparsity(masks) == round(0.8 * sum(n.values())) / sum(n.values())
    assert masks["fc2.weight"].all() and 1 - masks["fc1.weight"].float().mean() > 0.8
    per_layer = one_shot_prune(m, 0.8, "layer")
    assert all(int((~per_layer[k]).sum()) == round(0.8 * n[k]) for k in n)
    assert all(x.all() for x in one_shot_prune(m, 0.0).values())
    with pytest.raises(ValueError, match="target sparsity"):
        one_shot_prune(m, 1.0)


def test_magnitude_pruning_removes_the_smallest_weights_by_hand():
    lin = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, -0.1, 2.0, -0.3]]))
    m = nn.Sequential(lin)
    masks = magnitude_prune(m, None, 0.5, "layer")
    assert masks["0.weight"].tolist() == [[True, False, True, False]]


def test_global_scope_ranks_across_layers():
    m = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        m[1].weight.copy_(torch.tensor([[10.0, 20.0], [30.0, 40.0]]))
    g = magnitude_prune(m, None, 0.5, "global")
    assert not g["0.weight"].any() and g["1.weight"].all()
    per_layer = magnitude_prune(m, None, 0.5, "layer")
    assert int(per_layer["0.weight"].sum()) == 2 and int(per_layer["1.weight"].sum()) == 2


def test_bad_rate_and_scope_are_rejected():
    m = _mlp()
    with pytest.raises(ValueError, match="rate"):
        magnitude_prune(m, None, 1.0)
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune(m, None, 0.2, "per-channel")


def test_random_masks_match_per_layer_counts():
    m = _mlp(32)
    masks = magnitude_prune(m, None, 0.6, "global")
    r = random_masks(masks, seed=3)
    for n in masks:
        assert int(r[n].sum()) == int(masks[n].sum())
    assert any((r[n] != masks[n]).any() for n in masks)
    assert all(torch.equal(r[n], random_masks(masks, seed=3)[n]) for n in masks)


def test_masks_keep_pruned_weights_at_zero_through_sgd_momentum_and_weight_decay():
    d = load("synthetic", n_train=120, n_test=40, noise_rate=0.1, seed=0)
    m = _mlp(16)
    masks = magnitude_prune(m, None, 0.5, "layer")
    seen = []

    class Check:
        def on_step_end(self, run):
            for n, p in prunable(run.model).items():
                seen.append(bool((p.detach()[~masks[n]] == 0).all()))
                buf = run.optimizer.state[p].get("momentum_buffer")
                seen.append(bool((buf[~masks[n]] == 0).all()))

    before = {n: p.detach().clone() for n, p in prunable(m).items()}
    fit(m, d, TrainSpec(epochs=3, batch_size=20, lr=0.2, momentum=0.9, weight_decay=5e-3, progress=False),
        callbacks=[MaskCallback(masks), Check()])
    assert seen and all(seen)
    for n, p in prunable(m).items():
        assert (p.detach()[~masks[n]] == 0).all()
        assert not torch.equal(p.detach()[masks[n]], before[n][masks[n]])  # kept weights did train
    # hooks are removed after training: a later unmasked backward gives pruned weights a gradient
    x = d.train.x[:8]
    m.zero_grad()
    m(x).sum().backward()
    assert m.fc1.weight.grad[~masks["fc1.weight"]].abs().sum() > 0


def test_rewinding_restores_saved_weights_exactly():
    d = load("synthetic", n_train=100, n_test=20, noise_rate=0.0, seed=0)
    m = _mlp(16, etd=True, n=100)
    cap = CaptureAt([0, 3])
    fit(m, d, TrainSpec(epochs=2, batch_size=25, lr=0.1, progress=False), callbacks=[cap])
    assert set(cap.saved) == {0, 3}
    assert not torch.equal(cap.saved[0]["fc1.weight"], cap.saved[3]["fc1.weight"])
    assert not torch.equal(m.fc1.weight.detach(), cap.saved[3]["fc1.weight"])
    rewind(m, cap.saved[3])
    for k, v in m.state_dict().items():
        assert torch.equal(v, cap.saved[3][k])
    # into the same architecture without dropout, with a mask
    plain = _mlp(16)
    masks = magnitude_prune(plain, None, 0.5)
    rewind(plain, cap.saved[0], masks)
    w = plain.fc1.weight.detach()
    keep = masks["fc1.weight"]
    assert torch.equal(w[keep], cap.saved[0]["fc1.weight"][keep]) and (w[~keep] == 0).all()
    with pytest.raises(ValueError, match="architecture"):
        rewind(build_model("mlp", 8, (1, 28, 28), 10), {"fc1.weight": torch.zeros(1)})


def test_rewinding_to_any_k_of_the_captured_grid_restores_its_weights_under_the_mask():
    d = load("synthetic", n_train=100, n_test=20, noise_rate=0.0, seed=0)
    m = _mlp(16)
    cap = CaptureAt([0, 1, 3, 5])
    fit(m, d, TrainSpec(epochs=2, batch_size=25, lr=0.1, progress=False), callbacks=[cap])
    masks = one_shot_prune(m, 0.5)
    for k in (0, 1, 3, 5):
        pts = cap.points(k)
        assert pts.k == k and pts.init is cap.saved[0] and pts.at_k is cap.saved[k]
        net = _mlp(16)
        start(Arm.MAGNITUDE_K, net, masks, pts, seed=0)
        for name, w in prunable(net).items():
            keep = masks[name]
            assert torch.equal(w.detach()[keep], cap.saved[k][name][keep]) and (w.detach()[~keep] == 0).all()
        assert torch.equal(net.fc1.bias.detach(), cap.saved[k]["fc1.bias"])
    assert not torch.equal(cap.saved[1]["fc1.weight"], cap.saved[3]["fc1.weight"])
    with pytest.raises(ValueError, match="capture grid"):
        cap.points(2)
    late = CaptureAt([0, 100])
    fit(_mlp(16), d, TrainSpec(epochs=1, batch_size=25, progress=False), callbacks=[late])
    with pytest.raises(ValueError, match="beyond the end"):
        late.points(100)


def test_reinit_is_seeded_and_masked_without_touching_the_global_rng():
    a, b = _mlp(16), _mlp(16)
    with torch.no_grad():
        a.fc1.weight.zero_()
    masks = magnitude_prune(_mlp(16), None, 0.5)
    state = torch.random.get_rng_state()
    reinit(a, 5, masks)
    assert torch.equal(state, torch.random.get_rng_state())
    reinit(b, 5, masks)
    assert torch.equal(a.fc1.weight, b.fc1.weight)
    assert (a.fc1.weight[~masks["fc1.weight"]] == 0).all() and a.fc1.weight.abs().sum() > 0
    assert torch.equal(snapshot(a)["fc2.weight"], b.fc2.weight.detach())


def test_channel_stats_and_pruned_share_by_hand():
    m = _mlp(4, etd=True, n=10)  # 2 generalization + 2 memorization hidden units
    with torch.no_grad():
        m.fc1.weight.copy_(torch.tensor([3.0, 2.0, 0.5, 0.1]).view(4, 1).expand(4, 784))
    st = channel_stats(m)
    assert list(st.group) == ["generalization"] * 2 + ["memorization"] * 2
    assert st.mean_abs.tolist() == pytest.approx([3.0, 2.0, 0.5, 0.1])
    before = full_masks(m)
    after = magnitude_prune(m, before, 0.25, "layer")  # removes 784 weights of fc1: all of unit 3
    sh = pruned_share(m, before, after).iloc[0]
    assert sh.layer == "fc1" and sh.removed == 784 and sh.removed_mem == 784
    assert sh.share_mem == 1.0 and sh.chance_mem == 0.5
    assert sh.pruned_frac_mem == 0.5 and sh.pruned_frac_gen == 0.0


def test_etd_sites_of_resnet9_are_the_layers_before_each_site():
    f = make_factory("example_tied", p_gen=0.5, p_mem=0.5, n_examples=4)
    m = build_model("resnet9", 4, (1, 28, 28), 10, f)
    st = channel_stats(m)
    assert list(dict.fromkeys(st.layer)) == ["conv1.0", "conv2.0", "res1.b.0", "conv3.0.0", "res2.b.0", "conv4.0"]


# ----------------------------------------------------------------------------- the procedure and its branches

def _points(m):
    """RewindPoints whose iteration-0 and iteration-k weights differ in a known way."""
    init = snapshot(m)
    at_k = {k: v + 1.0 if v.is_floating_point() else v for k, v in init.items()}
    return RewindPoints(init, at_k, 5)


def test_every_branch_starts_where_its_name_says():
    m = _mlp(16)
    pts = _points(m)
    masks = magnitude_prune(m, None, 0.5, "global")
    keep = masks["fc1.weight"]
    started = {}
    for arm in Arm:
        net = _mlp(16)
        used = start(arm, net, masks, pts, seed=0, level=1)
        started[arm] = (net.fc1.weight.detach().clone(), used)
    w, used = started[Arm.DENSE]
    assert torch.equal(w, pts.init["fc1.weight"]) and all(u.all() for u in used.values())
    w, used = started[Arm.MAGNITUDE_K]
    assert torch.equal(w[keep], pts.at_k["fc1.weight"][keep]) and (w[~keep] == 0).all() and used is masks
    w, _ = started[Arm.MAGNITUDE_0]
    assert torch.equal(w[keep], pts.init["fc1.weight"][keep]) and (w[~keep] == 0).all()
    w, _ = started[Arm.REINIT]
    assert (w[~keep] == 0).all() and not torch.equal(w[keep], pts.init["fc1.weight"][keep])
    w, used = started[Arm.RANDOM_K]
    assert all(int(used[n].sum()) == int(masks[n].sum()) for n in masks)  # same per-layer counts
    assert not torch.equal(used["fc1.weight"], keep)
    assert torch.equal(w[used["fc1.weight"]], pts.at_k["fc1.weight"][used["fc1.weight"]])
    # random choices are derived from (seed, branch, level): reproducible, and different at another level
    again = start(Arm.RANDOM_K, _mlp(16), masks, pts, seed=0, level=1)
    other = start(Arm.RANDOM_K, _mlp(16), masks, pts, seed=0, level=2)
    assert torch.equal(again["fc1.weight"], used["fc1.weight"]) and not torch.equal(other["fc1.weight"],
                                                                                    used["fc1.weight"])
    assert Arm("magnitude / rewind to k") is Arm.MAGNITUDE_K and str(Arm.RANDOM_K) == "random mask / rewind to k"


def test_lottery_ticket_levels_prune_iteratively_and_rewind_to_k():
    d = load("synthetic", n_train=90, n_test=30, noise_rate=0.0, seed=0)
    starts = []

    def build():
        return _mlp(16)

    def train(model, callbacks, desc, start_step):
        starts.append((desc, model.fc1.weight.detach().clone(), start_step))
        return fit(model, d, TrainSpec(epochs=2, batch_size=30, lr=0.1, progress=False, eval_every=2),
                   callbacks=callbacks, start_step=start_step)

    ticket = LotteryTicket(build, train, rate=0.5, scope="global", rewind_step=2)
    levels = list(ticket.levels(3, train_last=False))
    assert [lv.round for lv in levels] == [0, 1, 2, 3]
    assert [round(lv.sparsity, 2) for lv in levels] == [0.0, 0.5, 0.75, 0.88]
    assert levels[-1].model is None and levels[-1].ranked_by is levels[-2].model  # last level pruned, not trained
    for prev, lv in zip(levels, levels[1:]):
        assert all(not (lv.masks[n] & ~prev.masks[n]).any() for n in lv.masks)  # pruned weights stay pruned
        assert lv.previous is prev.masks
    # levels 1 and 2 started from the weights of iteration k = 2, masked, and resumed the training at iteration 2
    assert len(starts) == 3 and ticket.points.k == 2
    assert [s for _, _, s in starts] == [0, 2, 2]
    assert [len(lv.history) for lv in levels[:3]] == [3, 3, 3]  # epochs 0-2 of the dense, 0 (at k = 2)-2 of tickets
    for (desc, w, _), lv in zip(starts[1:], levels[1:3]):
        keep = lv.masks["fc1.weight"]
        assert "level" in desc and torch.equal(w[keep], ticket.points.at_k["fc1.weight"][keep])
        assert (w[~keep] == 0).all()
    with pytest.raises(ValueError, match="rate"):
        LotteryTicket(build, train, rate=1.0)
    with pytest.raises(ValueError, match="beyond the end"):
        list(LotteryTicket(build, train, rate=0.5, rewind_step=10_000).levels(1))


def test_retrain_trains_under_the_branch_mask():
    d = load("synthetic", n_train=60, n_test=20, noise_rate=0.0, seed=0)
    m = _mlp(16)
    pts = _points(m)
    masks = magnitude_prune(m, None, 0.6, "layer")

    def train(model, callbacks, desc, start_step):
        return fit(model, d, TrainSpec(epochs=3, batch_size=30, lr=0.1, progress=False), callbacks=callbacks,
                   start_step=start_step)

    model, hist, used = retrain(Arm.RANDOM_K, lambda: _mlp(16), train, masks, pts, seed=3, level=1)
    assert hist.epoch.tolist() == [2, 3]  # resumed at iteration k = 5 of 3 epochs x 2
    for n, p in prunable(model).items():
        assert (p.detach()[~used[n]] == 0).all() and int(used[n].sum()) == int(masks[n].sum())


def test_channel_stats_distance_moved_from_initialisation():
    m = _mlp(4, etd=True, n=10)
    init = snapshot(m)
    with torch.no_grad():
        m.fc1.weight.add_(torch.tensor([0.4, 0.3, 0.0, 0.1]).view(4, 1))
    st = channel_stats(m, init)
    assert st.moved.tolist() == pytest.approx([0.4, 0.3, 0.0, 0.1], abs=1e-6)
    assert "moved" not in channel_stats(m).columns


def test_each_branch_resumes_the_training_where_its_weights_come_from():
    m = _mlp(16)
    pts = _points(m)  # k = 5
    masks = magnitude_prune(m, None, 0.5, "global")
    got = {}

    def train(model, callbacks, desc, start_step):
        got[desc] = start_step
        return None

    for arm in Arm:
        retrain(arm, lambda: _mlp(16), train, masks, pts, seed=0, level=1)
    # weights of iteration k: trained from k (open_lth's lottery and randomly_prune branches); the others from 0
    assert got == {f"level 1: {Arm.DENSE}": 0, f"level 1: {Arm.MAGNITUDE_K}": 5, f"level 1: {Arm.MAGNITUDE_0}": 0,
                   f"level 1: {Arm.REINIT}": 0, f"level 1: {Arm.RANDOM_K}": 5}
    # rewinding to k = 0 is the full training
    got.clear()
    retrain(Arm.MAGNITUDE_K, lambda: _mlp(16), train, masks, RewindPoints(pts.init, pts.init, 0), seed=0)
    assert list(got.values()) == [0]
