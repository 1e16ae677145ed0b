import pytest

from memlib.config import ConfigError, parse_overrides, resolve


def test_profiles_resolve_and_differ():
    smoke = resolve("gradient_similarity", "smoke")
    quick = resolve("gradient_similarity", "quick")
    paper = resolve("gradient_similarity", "paper")
    assert smoke.profile == "smoke" and quick.epochs > smoke.epochs
    assert paper.dataset == "cifar10" and paper.width == 64 and paper.noise_rate == 0.1


def test_notebook_name_and_module_name_are_the_same_experiment():
    assert resolve("01_gradient_similarity", "smoke") == resolve("gradient_similarity", "smoke")


def test_overrides_are_applied_and_none_means_profile_default():
    cfg = resolve("gradient_similarity", "smoke", {"epochs": 7, "width": None})
    assert cfg.epochs == 7
    assert cfg.width == resolve("gradient_similarity", "smoke").width


def test_string_overrides_are_converted_like_the_cli():
    cfg = resolve("gradient_similarity", "smoke", parse_overrides(["epochs=5", "noise_rate=0.2", "augment=true"]))
    assert (cfg.epochs, cfg.noise_rate, cfg.augment) == (5, 0.2, True)


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("MEMLIB_PROFILE", "paper")
    assert resolve("gradient_similarity").profile == "paper"


def test_config_is_frozen_and_hash_ignores_progress():
    a = resolve("gradient_similarity", "smoke")
    with pytest.raises(Exception):
        a.epochs = 3
    assert a.key() == resolve("gradient_similarity", "smoke", progress=True).key()
    assert a.key() != resolve("gradient_similarity", "smoke", epochs=a.epochs + 1).key()


@pytest.mark.parametrize("kw, message", [
    ({"epochz": 3}, "unknown parameter 'epochz'.*did you mean 'epochs'"),
    ({"noise_rate": 1.0}, r"noise_rate must be in \[0, 1\)"),
    ({"noise_rate": -0.1}, r"noise_rate must be in \[0, 1\)"),
    ({"epochs": "ten"}, "expects int"),
    ({"epochs": 2.5}, "expects an integer"),
    ({"epochs": 0}, "epochs must be > 0"),
    ({"dataset": "imagenet"}, "unknown dataset 'imagenet'; choose one of"),
    ({"model": "vgg"}, "unknown model 'vgg'"),
    ({"augment": "maybe"}, "expects true/false"),
    ({"lr": True}, "expects a number"),
])
def test_bad_values_are_clear_errors(kw, message):
    with pytest.raises(ConfigError, match=message):
        resolve("gradient_similarity", "smoke", kw)


def test_unknown_profile_and_experiment():
    with pytest.raises(ConfigError, match="unknown profile 'quik'.*did you mean 'quick'"):
        resolve("gradient_similarity", "quik")
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        resolve("nope", "smoke")


def test_parse_overrides_rejects_missing_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["epochs"])


@pytest.mark.parametrize("experiment", ["gradient_similarity", "dropout_comparison", "outlier_percentiles",
                                        "early_learning", "lth_vs_dropout"])
def test_every_profile_of_every_experiment_passes_its_own_validation(experiment):
    from memlib.experiments import REGISTRY

    assert experiment in REGISTRY.values()
    cfgs = {p: resolve(experiment, p) for p in ("smoke", "quick", "paper")}
    assert {c.profile for c in cfgs.values()} == {"smoke", "quick", "paper"}
    # the profiles grow: the paper profile trains on the full dataset (0 = all) or on more examples than quick
    n = {p: c.values.get("n_train", 0) for p, c in cfgs.items()}
    assert n["paper"] == 0 or n["paper"] > n["quick"] > 0
    assert 0 < n["smoke"] <= n["quick"]
