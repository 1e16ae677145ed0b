"""Grouped specifications, each with its defaults: which data, which model, how to train (a leaf module).

In the style of open_lth's hyperparameter dataclasses: a :class:`DataSpec`, a :class:`ModelSpec` and a
:class:`TrainSpec` say everything a training needs, and nothing else does.  The training loop
(:func:`memlib.train.fit`) takes a :class:`TrainSpec`, never a Config; the experiments turn a Config into these
specs (:mod:`memlib.experiments.setup`), and :mod:`memlib.config` names its common parameter groups after their
fields.

The papers' training settings are written here once, as :class:`TrainSpec` values with their sources; the
experiments' ``paper`` profiles start from them (:func:`memlib.config.paper_values`).  Units: ``epochs`` are passes over
the training set; ``batch_size`` is examples per SGD step; ``lr`` is the peak learning rate per step (reached
after the warm-up); ``warmup_frac`` is a fraction of all iterations; ``weight_decay`` is the L2 coefficient
added to the gradient; ``momentum`` is the heavy-ball coefficient.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class DataSpec:
    """Which examples: a dataset, subset sizes (0 = the whole split) and the fraction of training labels flipped."""

    dataset: str
    n_train: int = 0
    n_test: int = 0
    noise_rate: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    """Which network: an architecture of :mod:`memlib.catalog` and its base width (64 = the papers' ResNet-9)."""

    model: str = "resnet9"
    width: int = 64


@dataclass(frozen=True)
class TrainSpec:
    """How to train: SGD (plain momentum), a linear warm-up then cosine decay to 0 stepped per iteration.

    ``precision`` is ``auto`` (bf16 autocast where it is measured faster, see :mod:`memlib.device`), ``fp32`` or
    ``bf16``; ``schedule`` is ``cosine`` or ``constant``; ``eval_every`` evaluates every n-th epoch (and the last),
    ``eval_at_start`` also the model before training (epoch 0; off where nothing reads that record);
    ``seed`` fixes the batch order and augmentation (:func:`memlib.seeds.derive`).
    """

    epochs: int
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_frac: float = 0.1
    augment: bool = False
    precision: str = "auto"
    nesterov: bool = False  # the three papers use plain (heavy-ball) momentum
    schedule: str = "cosine"
    seed: int = 0
    eval_every: int = 1
    eval_at_start: bool = True
    progress: bool = True
    desc: str = "train"

    def replace(self, **changes) -> "TrainSpec":
        return dataclasses.replace(self, **changes)


# The groups of common parameters, named after the specs' fields (the training group is the part of a TrainSpec
# that a configuration sets; seed, progress and the rest are set per run).
DATA = tuple(f.name for f in dataclasses.fields(DataSpec))
MODEL = tuple(f.name for f in dataclasses.fields(ModelSpec))
TRAINING = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "warmup_frac", "augment", "precision")


# ----------------------------------------------------------------------------- the papers' training settings

# Maini et al. 2023's ResNet-9 / CIFAR-10 scripts (claims 1, 2 and 5): SGD momentum 0.9, weight decay 5e-4,
# peak lr 0.01 after a linear warm-up over 10% of the iterations, cosine decay to 0, batch 512, 50 epochs, no
# augmentation.
MAINI_2023 = TrainSpec(epochs=50, batch_size=512, lr=0.01, momentum=0.9, weight_decay=5e-4, warmup_frac=0.1,
                       augment=False)

# Claim 4: ELR's CIFAR-10 optimiser (Liu et al. 2020: lr 0.02, plain momentum 0.9, weight decay 1e-3, batch 128,
# crop + flip, no warm-up) over Frankle et al. 2020's 160 epochs.
ELR_2020 = TrainSpec(epochs=160, batch_size=128, lr=0.02, momentum=0.9, weight_decay=1e-3, warmup_frac=0.0,
                     augment=True)

# Claim 3: Carlini et al. 2019 do not state their training; this is memlib's own (30 epochs, batch 128, peak lr
# 0.05, 10% warm-up, cosine), written beside the others so the chapter can say so.
CARLINI_2019_MEMLIB = TrainSpec(epochs=30, batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4,
                                warmup_frac=0.1, augment=False)
