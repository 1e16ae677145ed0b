import pytest

from memlib.config import ConfigError, parse_overrides
from memlib.experiments import resolve


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


@pytest.mark.parametrize("kw, message", [
    ({"lr": "nan"}, "parameter 'lr' must be a finite number, got nan"),
    ({"lr": float("inf")}, "parameter 'lr' must be a finite number, got inf"),
    ({"momentum": "-inf"}, "parameter 'momentum' must be a finite number"),
    ({"seed": "99999999999999999999"}, r"seed must be in \[0, 2\*\*32\)"),
    ({"seed": -1}, r"seed must be in \[0, 2\*\*32\)"),
    ({"seed": 2 ** 32 - 1, "seeds": 2}, "seed \\+ seeds must stay below 2\\*\\*32"),
    ({"noise_rate": 0.0}, "gradient_similarity needs mislabeled examples: set noise_rate > 0"),
    ({"noise_rate": 0.001, "n_train": 500}, "noise_rate=0.001 flips no label of n_train=500"),
])
def test_inputs_that_used_to_fail_late_fail_at_resolve(kw, message):
    with pytest.raises(ConfigError, match=message):
        resolve("gradient_similarity", "smoke", kw)


def test_seed_range_edges_are_accepted():
    assert resolve("gradient_similarity", "smoke", {"seed": 2 ** 32 - 1, "seeds": 1}).seed == 2 ** 32 - 1
    assert resolve("gradient_similarity", "smoke", {"seed": 0}).seed == 0


def test_noise_rate_check_uses_the_whole_set_when_n_train_is_zero():
    # 0.0001 of mnist5k's 4,000 training digits flips nothing; 0.001 flips 4
    with pytest.raises(ConfigError, match="flips no label of n_train=4000"):
        resolve("gradient_similarity", "smoke", {"noise_rate": 0.0001, "n_train": 0})
    assert resolve("gradient_similarity", "smoke", {"noise_rate": 0.001, "n_train": 0}).noise_rate == 0.001


@pytest.mark.parametrize("experiment", ["dropout_comparison", "early_learning", "lth_vs_dropout"])
def test_claims_about_mislabeled_examples_reject_zero_noise(experiment):
    with pytest.raises(ConfigError, match="needs mislabeled examples"):
        resolve(experiment, "smoke", {"noise_rate": 0})


def test_unavailable_device_is_a_config_error_naming_the_parameter(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device='cuda' but no CUDA GPU is visible"):
        resolve("gradient_similarity", "smoke", {"device": "cuda"})
    assert resolve("gradient_similarity", "smoke", {"device": "cpu"}).device == "cpu"


def test_injected_notebook_parameters_are_applied_or_rejected_by_name():
    """papermill -p injects any name as a global; nb.config(..., namespace=globals()) sees them."""
    import types

    from memlib import notebook as nb

    ns = {"profile": "smoke", "overrides": {}, "epochs": None, "_i1": "x", "nb": nb,  # no In: a script
          "Markdown": type("Markdown", (), {}), "display": print, "plots": types.ModuleType("plots")}
    cfg = nb.config("01_gradient_similarity", "smoke", {}, namespace={**ns, "lr": 0.02}, epochs=None)
    assert cfg.lr == 0.02  # a schema parameter the parameters cell does not declare is not ignored
    with pytest.raises(ConfigError, match="lr must be > 0, got -1.0"):
        nb.config("01_gradient_similarity", "smoke", {}, namespace={**ns, "lr": -1}, epochs=None)
    with pytest.raises(ConfigError, match="batch_size must be > 0"):
        nb.config("01_gradient_similarity", "smoke", {}, namespace={**ns, "batch_size": 0}, epochs=None)
    with pytest.raises(ConfigError, match="unknown parameter 'epochz'.*did you mean 'epochs'"):
        nb.config("01_gradient_similarity", "smoke", {}, namespace={**ns, "epochz": 3}, epochs=None)
    assert nb.config("01_gradient_similarity", "smoke", {}, namespace=ns, epochs=None) == \
        resolve("gradient_similarity", "smoke")


def test_injected_names_come_from_papermills_cell_in_a_kernel():
    """In a kernel, only the names papermill's injected cell assigned count: a list a later cell made does not."""
    from memlib import notebook as nb

    history = ["", "# Parameters (papermill / ...)\nprofile = None\nepochs = None\n",
               '# Parameters\nprofile = "smoke"\nlr = -1\n', "layer_names = ['a']"]
    ns = {"In": history, "profile": "smoke", "overrides": {}, "epochs": None, "lr": -1, "layer_names": ["a"]}
    with pytest.raises(ConfigError, match="lr must be > 0"):
        nb.config("01_gradient_similarity", "smoke", {}, namespace=ns, epochs=None)
    ns["In"] = history[:2] + ['# Parameters\nprofile = "smoke"\n']  # nothing injected beyond the declared
    assert nb.config("01_gradient_similarity", "smoke", {}, namespace=ns, epochs=None) == \
        resolve("gradient_similarity", "smoke")
    ns["In"] = history[:2] + ["# Parameters\nepochz = 3\n"]
    with pytest.raises(ConfigError, match="unknown parameter 'epochz'"):
        nb.config("01_gradient_similarity", "smoke", {}, namespace=ns, epochs=None)


def test_whole_dataset_sizes_come_from_the_catalog_so_validation_needs_no_data():
    # n_train = 0 means the whole training set: its size is known before any data is loaded, so iteration limits
    # are checked when the configuration is resolved (CIFAR-10: ceil(50,000 / 512) x 50 = 4,900 iterations)
    from memlib.config import train_size

    assert train_size({"dataset": "cifar10", "n_train": 0}) == 50000
    assert train_size({"dataset": "mnist5k", "n_train": 10**6}) == 4000
    assert train_size({"dataset": "mnist5k", "n_train": 300}) == 300
    resolve("lth_vs_dropout", "paper", rewind_step=4899)
    with pytest.raises(ConfigError, match=r"rewind_step \(4900\) must be below .* \(4900 = 50 epochs x 98 steps\)"):
        resolve("lth_vs_dropout", "paper", rewind_step=4900)
    with pytest.raises(ConfigError, match="beyond the end of training"):
        resolve("early_learning", "paper", rewind_steps="0,1000,70000")


# ----------------------------------------------------------------------------- seeds of the parts of a run

@pytest.mark.parametrize("experiment", ["gradient_similarity", "dropout_comparison", "early_learning",
                                        "lth_vs_dropout"])
def test_each_part_of_a_multi_seed_run_draws_its_data_from_its_own_seed(experiment, store, monkeypatch):
    """Every part of a run loads its data (subset and label noise) from its key's seed: no two seeds' parts share
    one, whatever the part (arm, method, chain) -- the run's own keys, each computed until it loads data."""
    import importlib

    from memlib.experiments import setup

    mod = importlib.import_module(f"memlib.experiments.{experiment}")

    class Loaded(Exception):
        pass

    class Done(Exception):
        pass

    def load(name, seed, **kw):
        raise Loaded(seed)

    seen = []

    def run_parts(cfg, store, part, keys, compute, **kw):
        for key in keys:
            with pytest.raises(Loaded) as e:
                compute(cfg, key)
            seen.append((key["seed"], e.value.args[0]))
        raise Done

    monkeypatch.setattr(setup, "load", load)
    monkeypatch.setattr(mod, "run_parts", run_parts)
    with pytest.raises(Done):
        mod.run(resolve(experiment, "smoke", {"seed": 7, "seeds": 3}), store)
    assert {k for k, _ in seen} == {7, 8, 9} and len(seen) >= 3
    assert all(loaded == key for key, loaded in seen)


def test_the_setup_functions_cannot_be_called_without_a_seed():
    from memlib.experiments import setup

    cfg = resolve("early_learning", "smoke")
    for call in (lambda: setup.load_data(cfg), lambda: setup.make_model(cfg, None),
                 lambda: setup.make_model_and_data(cfg), lambda: setup.train_spec(cfg, epochs=1)):
        with pytest.raises(TypeError, match="seed"):
            call()
    part = setup.part_config(cfg.replace(seeds=3), 5)
    assert part.seed == 5 and part.seeds == 1 and part.epochs == cfg.epochs
