import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

os.environ.setdefault("MEMLIB_PROFILE", "smoke")
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh results store in a temporary folder (also the default store for code under test)."""
    from memlib.store import Store

    monkeypatch.setenv("MEMLIB_STORE", str(tmp_path / "store"))
    return Store(tmp_path / "store")


@pytest.fixture
def cifar_archive(tmp_path):
    """A tiny CIFAR-10 archive in the exact layout torchvision downloads (cifar-10-python.tar.gz).

    20 training images per batch file (5 files) and 10 test images; image i of a split has all pixels equal to
    i (mod 256) and label i % 10, so a loader can be checked value by value.
    """
    src = tmp_path / "build" / "cifar-10-batches-py"
    src.mkdir(parents=True)

    def write(name, start, n):
        ids = np.arange(start, start + n)
        data = np.repeat((ids % 256).astype(np.uint8)[:, None], 3072, axis=1)
        with open(src / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": [int(i % 10) for i in ids], "data": data,
                         "filenames": [f"img{i}.png" for i in ids]}, f, protocol=2)

    for b in range(5):
        write(f"data_batch_{b + 1}", 20 * b, 20)
    write("test_batch", 0, 10)
    with open(src / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"], "num_cases_per_batch": 20, "num_vis": 3072}, f, protocol=2)
    root = tmp_path / "data"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(src, arcname="cifar-10-batches-py")
    return root


# Claim 1 at the smoke profile, smaller still: one training of a few seconds, for the bundle tests.
CLAIM1 = "gradient_similarity"
CLAIM1_SMALL = {"n_train": 200, "n_test": 100, "epochs": 2, "probe_size": 20}


@pytest.fixture(scope="module")
def claim1_small(tmp_path_factory):
    """A store holding claim 1's (small) smoke result, computed once per test module: ``(store, cfg, result)``."""
    from memlib.experiments import get_experiment, resolve
    from memlib.store import Store

    store = Store(tmp_path_factory.mktemp("claim1") / "store")
    cfg = resolve(CLAIM1, "smoke", CLAIM1_SMALL)
    return store, cfg, get_experiment(CLAIM1).run(cfg, store)
