import subprocess
import sys

import pytest
import torch

from memlib.data import DEBIAN_FASHION_MNIST, DatasetUnavailable, augment_batch, load, load_raw, symmetric_noise


def test_symmetric_noise_rate_mask_and_never_the_true_label():
    y = torch.arange(1000) % 10
    noisy, mask = symmetric_noise(y, 10, 0.3, seed=1)
    assert mask.sum().item() == 300  # exactly int(rate * N)
    assert torch.all(noisy[mask] != y[mask])  # a flipped label is never the true one
    assert torch.equal(noisy[~mask], y[~mask])  # the others are untouched
    # every wrong class is used (uniform over the 9 wrong classes, not 8)
    shifts = (noisy[mask] - y[mask]) % 10
    assert set(shifts.tolist()) == set(range(1, 10))


def test_symmetric_noise_is_deterministic_per_seed():
    y = torch.arange(500) % 10
    a = symmetric_noise(y, 10, 0.2, seed=3)
    b = symmetric_noise(y, 10, 0.2, seed=3)
    c = symmetric_noise(y, 10, 0.2, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_zero_noise_and_bad_rates():
    y = torch.arange(50) % 10
    noisy, mask = symmetric_noise(y, 10, 0.0, seed=0)
    assert torch.equal(noisy, y) and not mask.any()
    for bad in (1.0, -0.01, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            symmetric_noise(y, 10, bad, seed=0)


def test_load_mnist5k_subsets_noise_and_indices():
    d = load("mnist5k", n_train=300, n_test=100, noise_rate=0.1, seed=0)
    assert d.train.x.shape == (300, 1, 28, 28) and d.test.x.shape == (100, 1, 28, 28)
    assert d.train.noisy.sum().item() == 30
    assert torch.all(d.train.y[d.train.noisy] != d.train.y_true[d.train.noisy])
    assert not d.test.noisy.any() and torch.equal(d.test.y, d.test.y_true)
    # stable indices: sorted, unique, within the full 4,000-image training split
    idx = d.train.index
    assert torch.all(idx[1:] > idx[:-1]) and idx.max() < 4000
    # normalized with training statistics
    assert abs(d.train.x.mean().item()) < 1e-4 and abs(d.train.x.std().item() - 1) < 1e-2
    again = load("mnist5k", n_train=300, n_test=100, noise_rate=0.1, seed=0)
    assert torch.equal(again.train.index, idx) and torch.equal(again.train.y, d.train.y)


def test_mnist5k_split_is_class_balanced():
    raw = load_raw("mnist5k")
    assert len(raw.y_train) == 4000 and len(raw.y_test) == 1000
    assert torch.bincount(raw.y_test).tolist() == [100] * 10


def test_cifar10_loader_reads_torchvision_archive(cifar_archive):
    raw = load_raw("cifar10", root=cifar_archive, download=False)
    assert raw.x_train.shape == (100, 3, 32, 32) and raw.x_test.shape == (10, 3, 32, 32)
    assert raw.x_train.dtype == torch.uint8
    # image i has all pixels == i and label i % 10, in file order data_batch_1..5
    assert torch.equal(raw.x_train[:, 0, 0, 0], torch.arange(100, dtype=torch.uint8))
    assert torch.equal(raw.y_train, torch.arange(100) % 10)
    assert torch.all(raw.x_train[37] == 37)
    d = load("cifar10", n_train=50, noise_rate=0.2, seed=1, root=cifar_archive, download=False)
    assert d.train.x.shape == (50, 3, 32, 32) and d.train.noisy.sum().item() == 10


def test_missing_dataset_offline_is_one_clear_message(tmp_path):
    with pytest.raises(DatasetUnavailable, match="cifar10.*not available.*download it once"):
        load_raw("cifar10", root=tmp_path, download=False)
    with pytest.raises(DatasetUnavailable, match="mnist5k"):
        load_raw("mnist", root=tmp_path, download=False)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_raw("imagenet")


def test_augment_batch_shapes_and_identity_when_no_shift():
    x = torch.randn(8, 3, 12, 12)
    out = augment_batch(x, pad=2, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    same = augment_batch(x, pad=0, flip=False)
    assert torch.equal(same, x)


def _idx(path, dims, n_bytes=None):
    """An unsigned-byte IDX file with header ``dims``; ``n_bytes`` of data (default: all of it)."""
    import struct

    import numpy as np

    total = int(np.prod(dims))
    data = bytes(range(256)) * (total // 256 + 1)
    path.write_bytes(struct.pack(">HBB", 0, 8, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
                     + data[:total if n_bytes is None else n_bytes])


def _torchvision_folder(root, cls_name, truncate=None):
    raw = root / cls_name / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 20), ("t10k", 10)):
        _idx(raw / f"{split}-images-idx3-ubyte", (n, 28, 28),
             n_bytes=100 if truncate == f"{split}-images-idx3-ubyte" else None)
        _idx(raw / f"{split}-labels-idx1-ubyte", (n,))
    return raw


def test_good_torchvision_folder_reads(tmp_path):
    _torchvision_folder(tmp_path, "MNIST")
    raw = load_raw("mnist", root=tmp_path, download=False)
    assert raw.x_train.shape == (20, 1, 28, 28) and len(raw.y_test) == 10


def test_truncated_torchvision_download_names_the_file(tmp_path):
    folder = _torchvision_folder(tmp_path, "MNIST", truncate="train-images-idx3-ubyte")
    with pytest.raises(DatasetUnavailable, match=f"{folder / 'train-images-idx3-ubyte'} is damaged.*delete it"):
        load_raw("mnist", root=tmp_path, download=True)  # no download attempt over the damaged file


def test_truncated_fashion_mnist_falls_back_to_debian_naming_the_damaged_file(tmp_path, monkeypatch):
    import memlib.data as data_mod

    debian = tmp_path / "debian"
    debian.mkdir()
    for split, n in (("train", 30), ("t10k", 10)):  # a stand-in for /usr/share/datasets/fashion-mnist
        _idx(debian / f"{split}-images-idx3-ubyte", (n, 28, 28))
        _idx(debian / f"{split}-labels-idx1-ubyte", (n,))
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", debian)
    folder = _torchvision_folder(tmp_path / "data", "FashionMNIST", truncate="t10k-images-idx3-ubyte")
    with pytest.warns(data_mod.DataWarning, match=f"{folder / 't10k-images-idx3-ubyte'} is damaged.*Debian"):
        raw = load_raw("fashion-mnist", root=tmp_path / "data", download=False)
    assert raw.source == str(debian) and len(raw.y_train) == 30


def test_damaged_cifar_batch_names_the_file(cifar_archive):
    load_raw("cifar10", root=cifar_archive, download=False)  # extracts the archive
    bad = cifar_archive / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DatasetUnavailable, match=f"{bad} is damaged"):
        load_raw("cifar10", root=cifar_archive, download=False)


def test_damaged_cifar_archive_names_the_file(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DatasetUnavailable, match="cifar-10-python.tar.gz is damaged"):
        load_raw("cifar10", root=tmp_path, download=False)


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_does_not_import_torchvision(tmp_path):
    # torchvision costs ~2 s to import in every worker process; it is only needed when its folder has files.
    code = ("import sys; from memlib.data import load_raw; raw = load_raw('fashion-mnist', root=sys.argv[1], "
            "download=False); print(len(raw.y_train), 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["60000", "False"]
