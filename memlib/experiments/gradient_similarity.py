"""Claim 1: per-layer gradient similarity of clean vs mislabeled examples, and the memorization window.

One training per seed records both gradient protocols (:mod:`memlib.probes.gradients`): ``training`` (Maini et
al.'s accounting over every training batch, the verdict's by default) through the loss function, and ``probe``
(fixed weights, a fixed probe subset, BatchNorm in evaluation mode) through a callback.  The ``protocol``
parameter says which one the verdict decides on; since both are always measured it does not enter the cache key.

Tables:

* ``history``: :func:`memlib.train.fit`'s per-epoch records (``seed`` column added);
* ``similarity``: one row per seed, protocol, epoch and layer group: ``cosine``, ``norm_clean``, ``norm_noisy``
  (the training protocol starts at epoch 1, the gradients summed over that epoch's batches; the probe at epoch 0,
  the untrained network, then after every epoch), and ``placebo_cosine``: the matched null, the cosine between a
  random clean subset of the mislabeled group's size (fixed per seed, seed ``derive(seed, "placebo group")``) and
  the rest of the clean examples, its gradient accounted by the same protocol as the mislabeled group's; and
  ``hard_cosine``: a described comparison that no criterion reads, the difficulty-matched clean group (the clean
  examples of highest loss, as many as the placebo, chosen anew every epoch: by the training protocol from the
  losses in evaluation mode at the epoch's start, by the probe at its own weights among its clean examples)
  against the rest of the clean examples, accounted the same way.
"""
from __future__ import annotations

import time

import pandas as pd

from ..config import CPU_BOOK, Param, check_flips_labels, check_positive, common, paper_values
from ..device import describe
from ..probes.gradients import GradientSimilarityProbe, TrainingGradientAccounting
from ..seeds import derive
from ..result import Result
from ..store import Store
from ..specs import MAINI_2023
from ..train import fit
from .base import concat, merge_scalars, run_parts, seed_list
from .setup import make_model_and_data, part_config, train_spec

NAME = "gradient_similarity"
NOTEBOOK = "01_gradient_similarity"
TITLE = "Gradient similarity and the memorization window"

TRAINING, PROBE = "training", "probe"
PROTOCOLS = (TRAINING, PROBE)
PROTOCOL_LABELS = {TRAINING: "during training (the paper's accounting)",
                   PROBE: "by the fixed-weights probe (evaluation mode)"}
SIMILARITY_COLUMNS = ("seed", "protocol", "epoch", "layer", "cosine", "norm_clean", "norm_noisy", "placebo_cosine",
                       "hard_cosine")

PARAMS = common("data", "model", "training", "run") + [
    Param("protocol", str, "gradient accounting the verdict uses: 'training' (summed over every training batch, "
          "as Maini et al.) or 'probe' (fixed weights, a probe subset, evaluation mode); both are recorded",
          choices=PROTOCOLS, hashed=False),
    Param("probe_size", int, "examples per group (clean / mislabeled) in the fixed-weights probe",
          check=check_positive),
]

_paper = paper_values(MAINI_2023, dataset="cifar10", model="resnet9", width=64, noise_rate=0.1, n_train=0, n_test=0,
                      seed=0, seeds=3, device="auto", progress=True, protocol=TRAINING, probe_size=1000)
PROFILES = {
    "smoke": {**_paper, **CPU_BOOK, "seed_stages": False, "dataset": "mnist5k", "width": 4, "n_train": 500,
              "n_test": 200, "epochs": 3, "batch_size": 100, "lr": 0.05, "seeds": 1, "probe_size": 50,
              "progress": False},
    # Memorization needs many passes over a small set: Fashion-MNIST, 10% flipped, a narrow ResNet-9, for the
    # paper's 50 epochs with its warm-up and cosine schedule (the verdict reads where the memorization window lies
    # as a share of training, so the length is the paper's, never swept).  Width and training images are the pick
    # of the calibration (calibration/01_gradient_similarity.*.json), the seeds the plan's seed rule (memlib.plans).
    "quick": {**_paper, **CPU_BOOK, "dataset": "fashion-mnist", "width": 8, "n_train": 1000, "n_test": 1000,
              "epochs": 50, "batch_size": 128, "lr": 0.05, "seeds": 3, "probe_size": 300},
    "paper": _paper,
}



def validate(values: dict) -> None:
    check_flips_labels(values, NAME)  # the probe compares clean with mislabeled examples


def _one_seed(cfg) -> Result:
    seed = cfg.seed  # the part's own Config: its seed is this part's
    model, data, device = make_model_and_data(cfg, seed)
    placebo_seed = derive(seed, "placebo group")
    accounting = TrainingGradientAccounting(placebo_seed=placebo_seed, hard=True)
    probe = GradientSimilarityProbe(cfg.probe_size, seed=seed, placebo_seed=placebo_seed, hard=True)
    # The verdict reads the training gradients themselves, and bf16 autocast moves them (per-layer cosines by up to
    # 0.07 at width 8 against fp32): 'auto' trains this claim in fp32; an explicit 'bf16' is honoured (and caveated).
    precision = "fp32" if cfg.precision == "auto" else cfg.precision
    spec = train_spec(cfg, seed=seed, precision=precision, desc=f"claim 1, seed {seed}")
    t0 = time.perf_counter()
    hist = fit(model, data, spec, callbacks=[accounting, probe], loss_fn=accounting)
    wall = time.perf_counter() - t0
    hist.insert(0, "seed", seed)
    sim = pd.concat([pd.DataFrame(accounting.rows).assign(protocol=TRAINING),
                     pd.DataFrame(probe.rows).assign(protocol=PROBE)], ignore_index=True)
    sim["seed"] = seed
    return Result({"history": hist, "similarity": sim[list(SIMILARITY_COLUMNS)]},
                  {"seed": seed, "images_per_second": hist.attrs["images_per_second"], "train_seconds": wall,
                   "n_train": len(data.train), "n_noisy": int(data.train.noisy.sum()),
                   "data_source": data.source, "device": describe(device, hist.attrs["precision"]),
                   "precision": hist.attrs["precision"]})


def _part(cfg, key: dict) -> Result:
    return _one_seed(part_config(cfg, key["seed"]))


def run(cfg, store: Store | None = None) -> Result:
    store = store or Store()

    def compute() -> Result:
        parts = run_parts(cfg, store, "seed", [{"seed": s} for s in seed_list(cfg)], _part)
        return Result({"history": concat(parts, "history"), "similarity": concat(parts, "similarity")},
                      merge_scalars(parts, ("precision",)))

    return store.cached(NAME, cfg.hashed_dict(), compute)
