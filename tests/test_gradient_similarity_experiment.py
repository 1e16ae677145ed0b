"""Claim 1 end to end at a tiny scale: experiment -> store -> verdict, and the CLI's validation."""
import subprocess
import sys

import pytest

from memlib.claims import REPRODUCED, PARTLY, NOT_REPRODUCED
from memlib.claims import gradient_similarity as claim
from memlib.config import resolve
from memlib.experiments import gradient_similarity as exp


@pytest.fixture
def tiny_cfg():
    return resolve("gradient_similarity", "smoke", dataset="synthetic", model="mlp", width=16, n_train=200,
                   n_test=50, epochs=3, probe_size=20, seeds=2)


def test_run_is_cached_per_seed_and_checked(tiny_cfg, store):
    r = exp.run(tiny_cfg, store)
    assert not r.cached and sorted(r.tables["history"].seed.unique()) == [0, 1]
    sim = r.tables["similarity"]
    assert set(sim.layer) == {"fc1", "fc2"} and sorted(sim.epoch.unique()) == [0, 1, 2, 3]
    assert exp.run(tiny_cfg, store).cached
    assert len(store.runs("gradient_similarity/seed")) == 2
    v = claim.check(r, tiny_cfg)
    assert v.status in (REPRODUCED, PARTLY, NOT_REPRODUCED) and len(v.criteria) == 4


def test_memorization_window_from_a_history():
    import pandas as pd

    h = pd.DataFrame({"seed": 0, "epoch": range(6), "train_noisy_acc": [0.1, 0.02, 0.05, 0.3, 0.95, 1.0]})
    assert claim.memorization_window(h) == (3, 4)  # epoch 0 (chance level at init) does not count
    h2 = h.assign(train_noisy_acc=[0.1, 0.0, 0.0, 0.0, 0.05, 0.5])
    assert claim.memorization_window(h2) == (5, None)


def test_cli_rejects_bad_parameters_before_training():
    for args, msg in [(["-p", "noise_rate=1.5"], "noise_rate must be in [0, 1)"),
                      (["-p", "epochz=3"], "unknown parameter 'epochz'")]:
        out = subprocess.run([sys.executable, "-m", "memlib", "run", "01_gradient_similarity", "--profile",
                              "smoke", *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and msg in out.stderr


def test_cli_list(store):
    out = subprocess.run([sys.executable, "-m", "memlib", "list", "--profile", "smoke"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "01_gradient_similarity" in out.stdout
