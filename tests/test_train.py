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


def test_fit_skips_the_start_evaluation_when_asked():
    d = load("synthetic", n_train=100, n_test=50, noise_rate=0.0, seed=0)
    torch.manual_seed(0)
    m = build_model("mlp", 16, d.image_shape, 10)
    hist = fit(m, d, TrainSpec(epochs=2, batch_size=50, eval_every=2, eval_at_start=False, progress=False))
    assert list(hist.epoch) == [0, 1, 2]
    assert hist.test_acc.isna().tolist() == [True, True, False]  # only the end is evaluated
