"""From a Config to the objects a training needs: the one place where a Config becomes data, a model and a
:class:`~memlib.specs.TrainSpec` (the training loop, :mod:`memlib.train`, never sees a Config).

Every experiment's schema holds the common groups (:func:`memlib.config.common`), so these read the groups'
parameters directly; a missing one is a programming error, not a user's.
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


def train_spec(cfg: Config, **changes) -> TrainSpec:
    """The Config's training group plus its seed and progress setting, then ``changes`` (e.g. ``seed``, ``desc``,
    ``eval_every``)."""
    return TrainSpec(**{n: cfg[n] for n in TRAINING}, seed=cfg.seed, progress=cfg.progress).replace(**changes)


def load_data(cfg: Config, seed: int | None = None, device: torch.device | str | None = None,
              spec: DataSpec | None = None) -> DataBundle:
    """The Config's data (or ``spec``'s) with the label noise of ``seed`` (default ``cfg.seed``), on ``device``
    (default: the Config's device)."""
    spec = spec or data_spec(cfg)
    return load(spec.dataset, n_train=spec.n_train, n_test=spec.n_test, noise_rate=spec.noise_rate,
                seed=cfg.seed if seed is None else seed,
                device=device if device is not None else pick_device(cfg.device))


def make_model(cfg: Config, data: DataBundle, seed: int | None = None, channel_dropout=None) -> nn.Module:
    """A fresh model of the Config's kind and width for ``data``, on the data's device.  With ``seed``, the random
    state is reset first, so the same seed gives the same initialisation whatever the dropout module."""
    spec = model_spec(cfg)
    if seed is not None:
        seed_everything(seed)
    model = build_model(spec.model, spec.width, data.image_shape, data.num_classes, channel_dropout)
    return model.to(data.train.x.device)


def make_model_and_data(cfg: Config, channel_dropout=None, seed: int | None = None):
    """Data (noise of ``seed``), a fresh model (initialised from ``seed``) and their device."""
    seed = cfg.seed if seed is None else seed
    data = load_data(cfg, seed)
    return make_model(cfg, data, seed, channel_dropout), data, data.train.x.device
