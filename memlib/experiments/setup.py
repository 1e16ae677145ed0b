"""From a Config to the objects a training needs: the one place where a Config becomes data, a model and a
:class:`~memlib.specs.TrainSpec` (the training loop, :mod:`memlib.train`, never sees a Config).

Every experiment's schema holds the common groups (:func:`memlib.config.common`), so these read the groups'
parameters directly; a missing one is a programming error, not a user's.

Every function that draws something at random takes its ``seed`` explicitly, with no default: a part of a
multi-seed run works on its own Config (:func:`part_config`, whose ``seed`` is the part's), and a forgotten
argument is a TypeError, never a silent fall-back to the run's first seed.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import Config
from ..data import DataBundle, load
from ..device import pick_device
from ..models import build_model
from ..specs import DATA, MODEL, TRAINING, DataSpec, ModelSpec, TrainSpec
from ..train import seed_everything


def data_spec(cfg: Config) -> DataSpec:
    return DataSpec(**{n: cfg[n] for n in DATA})


def model_spec(cfg: Config) -> ModelSpec:
    return ModelSpec(**{n: cfg[n] for n in MODEL})


def part_config(cfg: Config, seed: int) -> Config:
    """The Config of one seed's part of a multi-seed run: ``seed`` is the part's, ``seeds`` is 1."""
    return cfg.replace(seed=seed, seeds=1)


def train_spec(cfg: Config, *, seed: int, **changes) -> TrainSpec:
    """The Config's training group and progress setting with the batch-order seed ``seed``, then ``changes`` (e.g.
    ``desc``, ``eval_every``)."""
    return TrainSpec(**{n: cfg[n] for n in TRAINING}, seed=seed, progress=cfg.progress).replace(**changes)


def load_data(cfg: Config, seed: int, device: torch.device | str | None = None,
              spec: DataSpec | None = None) -> DataBundle:
    """The Config's data (or ``spec``'s), subset and label noise drawn from ``seed``, on ``device`` (default: the
    Config's device)."""
    spec = spec or data_spec(cfg)
    return load(spec.dataset, n_train=spec.n_train, n_test=spec.n_test, noise_rate=spec.noise_rate, seed=seed,
                device=device if device is not None else pick_device(cfg.device))


def make_model(cfg: Config, data: DataBundle, seed: int, channel_dropout=None) -> nn.Module:
    """A fresh model of the Config's kind and width for ``data``, on the data's device, initialised from ``seed``
    (the random state is reset first, so the same seed gives the same initialisation whatever the dropout
    module)."""
    spec = model_spec(cfg)
    seed_everything(seed)
    model = build_model(spec.model, spec.width, data.image_shape, data.num_classes, channel_dropout)
    return model.to(data.train.x.device)


def make_model_and_data(cfg: Config, seed: int, channel_dropout=None):
    """Data (noise of ``seed``), a fresh model (initialised from ``seed``) and their device."""
    data = load_data(cfg, seed)
    return make_model(cfg, data, seed, channel_dropout), data, data.train.x.device
