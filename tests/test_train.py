import pytest
import torch

from memlib.data import load
from memlib.models import ResNet9, build_model
from memlib.train import TrainSpec, evaluate, fit, lr_lambda


def test_resnet9_matches_the_paper_size_and_shapes():
    net = ResNet9(64, 3, 10)
    assert sum(p.numel() for p in net.parameters()) == 2_274_880  # ~2.27 M as in Maini et al.
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert ResNet9(8, 1, 10)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", ["resnet9", "smallcnn", "mlp"])
def test_models_build_for_grayscale_and_colour(name):
    for shape in [(1, 28, 28), (3, 32, 32)]:
        m = build_model(name, 8, shape, 10)
        assert m(torch.randn(3, *shape), idx=torch.arange(3)).shape == (3, 10)


def test_schedule_warms_up_then_decays_to_zero():
    spec = TrainSpec(epochs=1, warmup_frac=0.1)
    f = lr_lambda(spec, 100)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.0, abs=1e-9)
    assert all(f(i) >= f(i + 1) for i in range(10, 99))


def test_fit_learns_and_records_every_epoch():
    d = load("synthetic", n_train=300, n_test=100, noise_rate=0.0, seed=0)
    torch.manual_seed(0)
    m = build_model("mlp", 32, d.image_shape, 10)
    before = evaluate(m, d)["test_acc"]
    hist = fit(m, d, TrainSpec(epochs=4, batch_size=50, lr=0.1, progress=False))
    assert list(hist.epoch) == [0, 1, 2, 3, 4]
    assert hist.test_acc.iloc[-1] > max(0.9, before)
    assert {"train_clean_acc", "train_noisy_acc", "train_noisy_true", "test_acc", "lr"} <= set(hist.columns)


def test_fit_is_deterministic_for_a_seed():
    d = load("synthetic", n_train=120, n_test=40, noise_rate=0.2, seed=0)

    def once():
        torch.manual_seed(1)
        m = build_model("mlp", 16, d.image_shape, 10)
        return fit(m, d, TrainSpec(epochs=2, batch_size=40, seed=1, progress=False)).train_loss.tolist()[1:]

    assert once() == once()


def test_mislabeled_metrics_count_given_and_true_labels():
    from memlib.data import Split
    from memlib.train import split_metrics

    s = Split(x=torch.zeros(4, 1), y=torch.tensor([0, 1, 2, 3]), y_true=torch.tensor([0, 1, 5, 6]),
              noisy=torch.tensor([False, False, True, True]), index=torch.arange(4))
    m = split_metrics(torch.tensor([0, 9, 2, 6]), s)
    assert m == {"clean_acc": 0.5, "noisy_acc": 0.5, "noisy_true": 0.5}


def test_callbacks_see_steps_and_add_columns():
    class Counter:
        steps = 0

        def on_step_end(self, run):
            self.steps += 1

        def on_epoch_end(self, run):
            return {"steps_so_far": run.step}

    d = load("synthetic", n_train=100, n_test=20, seed=0)
    c = Counter()
    hist = fit(build_model("mlp", 8, d.image_shape, 10), d, TrainSpec(epochs=2, batch_size=30, progress=False),
               callbacks=[c])
    assert c.steps == 8 and hist.steps_so_far.iloc[-1] == 8


def test_non_finite_loss_is_reported():
    d = load("synthetic", n_train=60, n_test=20, seed=0)
    m = build_model("mlp", 8, d.image_shape, 10)
    with pytest.raises(FloatingPointError, match="lower lr"):
        fit(m, d, TrainSpec(epochs=1, progress=False), loss_fn=lambda logits, y, idx: logits.sum() * float("inf"))


# ----------------------------------------------------------------------------- resuming at an iteration (rewinding)

class _StepLog:
    """Records, for every optimizer step of a fit, its iteration number, its batch and the learning rate it used."""

    def __init__(self):
        self.steps, self.batches, self.lrs = [], [], []

    def on_fit_start(self, run):
        self._lr = run.optimizer.param_groups[0]["lr"]  # the rate the first step will use

    def on_step_end(self, run):
        self.steps.append(run.step)
        self.batches.append(run.batch_idx.clone())
        self.lrs.append(self._lr)
        self._lr = run.optimizer.param_groups[0]["lr"]  # already scheduled for the next step


def _resume_setup(momentum=0.9):
    d = load("synthetic", n_train=100, n_test=20, noise_rate=0.0, seed=0)
    spec = TrainSpec(epochs=3, batch_size=30, lr=0.1, momentum=momentum, warmup_frac=0.2, seed=4, progress=False,
                     eval_every=3)  # 4 iterations an epoch (the last batch has 10), T = 12

    def net():
        torch.manual_seed(0)
        return build_model("mlp", 16, d.image_shape, 10)

    return d, spec, net


@pytest.mark.parametrize("k", [1, 4, 6, 11])
def test_a_fit_resumed_at_k_trains_the_last_t_minus_k_iterations_of_the_full_schedule_and_batch_order(k):
    d, spec, net = _resume_setup()
    full, resumed = _StepLog(), _StepLog()
    fit(net(), d, spec, callbacks=[full])
    hist = fit(net(), d, spec, callbacks=[resumed], start_step=k)
    assert full.steps == list(range(1, 13))
    assert resumed.steps == list(range(k + 1, 13))  # exactly T - k iterations, numbered as in the full run
    assert resumed.lrs == pytest.approx(full.lrs[k:]) and resumed.lrs[0] == pytest.approx(full.lrs[k])
    assert torch.equal(resumed.batches[0], full.batches[k])
    assert all(torch.equal(a, b) for a, b in zip(resumed.batches, full.batches[k:]))
    assert hist.epoch.tolist() == list(range(k // 4, 4))  # the first record is the model as given


def test_resuming_at_0_is_the_full_training():
    d, spec, net = _resume_setup()
    a, b = _StepLog(), _StepLog()
    fit(net(), d, spec, callbacks=[a])
    fit(net(), d, spec, callbacks=[b], start_step=0)
    assert b.steps == list(range(1, 13)) and b.lrs == a.lrs
    assert all(torch.equal(x, y) for x, y in zip(a.batches, b.batches))


def test_resuming_from_the_weights_of_iteration_k_continues_the_run_except_for_momentum():
    from memlib.pruning import CaptureAt, rewind

    for momentum in (0.0, 0.9):
        d, spec, net = _resume_setup(momentum)
        full, cap = net(), CaptureAt([0, 5])
        fit(full, d, spec, callbacks=[cap])
        resumed = rewind(net(), cap.saved[5])
        fit(resumed, d, spec, start_step=5)
        same = all(torch.allclose(p, q, atol=1e-6) for p, q in zip(full.parameters(), resumed.parameters()))
        # without momentum the resumed run is the original one; with it, the momentum buffers start empty (as in
        # open_lth, which does not restore the optimizer when it rewinds), so the weights end elsewhere
        assert same is (momentum == 0.0)


def test_a_start_step_outside_the_training_is_rejected():
    d, spec, net = _resume_setup()
    for bad in (-1, 12, 50):
        with pytest.raises(ValueError, match=r"start_step must be in \[0, 12\)"):
            fit(net(), d, spec, start_step=bad)


def test_fit_skips_the_start_evaluation_when_asked():
    d = load("synthetic", n_train=100, n_test=50, noise_rate=0.0, seed=0)
    torch.manual_seed(0)
    m = build_model("mlp", 16, d.image_shape, 10)
    hist = fit(m, d, TrainSpec(epochs=2, batch_size=50, eval_every=2, eval_at_start=False, progress=False))
    assert list(hist.epoch) == [0, 1, 2]
    assert hist.test_acc.isna().tolist() == [True, True, False]  # only the end is evaluated


def test_predict_folds_batchnorm_into_the_convolutions_without_changing_the_model():
    import memlib.train as T
    from memlib.dropout import make_factory

    torch.manual_seed(0)
    for m in (build_model("resnet9", 4, (1, 28, 28), 10),
              build_model("resnet9", 4, (1, 28, 28), 10, make_factory("dropout", p=0.3))):
        m.train()
        with torch.no_grad():  # running statistics other than 0 / 1
            for _ in range(3):
                m(torch.randn(64, 1, 28, 28) * 2 + 0.5)
        x = torch.randn(40, 1, 28, 28)
        state = {k: v.clone() for k, v in m.state_dict().items()}
        modules = list(m.modules())
        got = T.predict(m, x, batch_size=16)
        assert m.training  # the mode is restored
        assert list(m.modules()) == modules and all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())
        m.eval()
        with torch.inference_mode():  # the unfolded network
            want = m(x).float()
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5) and torch.equal(got.argmax(1), want.argmax(1))


def test_folding_leaves_training_mode_batchnorm_alone():
    import memlib.train as T

    m = build_model("resnet9", 4, (1, 28, 28), 10)
    m.train()
    with T.folded_batchnorm(m):
        assert sum(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules()) == 8
    m.eval()
    with T.folded_batchnorm(m):
        assert sum(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules()) == 0
    assert sum(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules()) == 8
