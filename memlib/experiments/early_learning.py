"""Claim 4: early learning, then memorization (Liu et al. 2020), ELR, and the early phase (Frankle et al. 2020).

Per seed, three trainings from the same initialization and batch order, on the same examples (the arms):

* ``clean``: cross-entropy on *clean* labels, as Frankle et al. measure the early phase.
  :class:`~memlib.probes.early_phase.EarlyPhaseProbe` records per-iteration gradient norm, step length, distance
  from initialization and sign changes over the first ``probe_steps`` iterations, with a random walk of the same
  step lengths as a null; a :class:`~memlib.pruning.CaptureAt` keeps the model state at each rewind iteration
  ``k``.  After training, the network is pruned once by global weight magnitude (``rewind_sparsity``), and
  for each ``k`` of the grid ``rewind_steps`` the lottery ticket (:attr:`~memlib.pruning.Arm.MAGNITUDE_K`:
  the surviving weights rewound to ``k``) is retrained from iteration ``k`` to the end, as open_lth rewinds: the
  clean run's learning-rate schedule and batch order continue from ``k`` (``T - k`` iterations; ``k = 0``
  trains all ``T``); ``rewind_k`` is the one pre-registered ``k`` the verdict compares with ``k = 0``.
* ``ce``: cross-entropy on labels with noise (``noise_rate`` of them flipped, always to a *wrong* class:
  :func:`memlib.data.symmetric_noise`), with the same early-phase probes, so the page shows how noise changes them.
* ``elr``: cross-entropy + early-learning regularization (:class:`~memlib.losses.ELRLoss`) on the same noisy labels.

Tables: ``history`` (per epoch, seed and arm: the fit records, incl. ``train_noisy_acc`` = mislabeled predicted
as the given wrong label, ``train_noisy_true`` = predicted as the true label, ``test_acc``; evaluated every
``eval_every`` epochs), ``early_phase`` (per iteration, seed and probed arm), ``rewind`` (one row per seed and
rewind iteration).
"""
from __future__ import annotations

import dataclasses
import math
import time

import pandas as pd

from ..config import (CPU_BOOK, ConfigError, Param, check_flips_labels, check_nonneg, check_positive,
                      check_rate, common, paper_values, train_size)
from ..device import describe
from ..losses import ELRLoss, LossTracker
from ..probes.early_phase import EarlyPhaseProbe, tracked_parameters
from ..pruning import Arm, CaptureAt, one_shot_prune, retrain, sparsity
from ..seeds import derive
from ..specs import ELR_2020
from ..result import Result
from ..store import Store
from ..train import fit
from .base import concat, merge_scalars, run_parts, seed_list
from .setup import data_spec, load_data, make_model, part_config, train_spec

NAME = "early_learning"
NOTEBOOK = "04_early_learning"
TITLE = "Early learning, then memorization; early-learning regularization"

# The arms, and which of them the probes and the rewinding run on.
CLEAN, CE, ELR = "clean", "ce", "elr"
ARMS = (CLEAN, CE, ELR)
ARM_NAMES = {CLEAN: "cross-entropy, clean labels", CE: "cross-entropy, noisy labels",
             ELR: "cross-entropy + ELR, noisy labels"}
PROBED_ARMS = (CLEAN, CE)
REWOUND_ARM = CLEAN
NOISY_ARMS = (CE, ELR)

REWIND_COLUMNS = ["seed", "k", "k_frac", "sparsity", "steps", "test_acc", "train_acc", "seconds"]

PARAMS = common("data", "model", "training", "run") + [
    Param("eval_every", int, "evaluate the noisy-label arms every n-th epoch (and at the last); the clean arm "
          "only before training and at the end, the rewound retrainings only at the end", check=check_positive),
    Param("elr_beta", float, "ELR: momentum of the per-example running-average targets", check=check_rate),
    Param("elr_lambda", float, "ELR: weight of the regularization term", check=check_nonneg),
    Param("probe_steps", int, "early-phase probes: number of first iterations recorded (0 = none)",
          check=check_nonneg),
    Param("probe_every", int, "early-phase probes: record every n-th iteration", check=check_positive),
    Param("rewind_steps", str, "grid of iterations k to rewind to, comma-separated, including 0 (e.g. "
          "'0,50,200')"),
    Param("rewind_k", int, "the pre-registered rewind iteration (> 0, on the grid) that the verdict compares "
          "with k = 0", check=check_positive),
    Param("rewind_sparsity", float, "fraction of weights pruned by magnitude before rewinding", check=check_rate),
]

# Frankle et al.: ResNet-20 on CIFAR-10, 160 epochs of 391 iterations (62,560); rewinding to iterations
# ~500-2,000 (0.8%-3.2% of training) starts to work.  The grids below bracket that fraction of training.
# Noise: 36% of labels wrong = what ELR's code calls "40% symmetric" (it draws the new label from all 10 classes).
_paper = paper_values(ELR_2020, dataset="cifar10", model="resnet9", width=64, noise_rate=0.36, n_train=0, n_test=0,
                      seed=0, seeds=3, device="auto", progress=True, eval_every=1, elr_beta=0.7, elr_lambda=3.0,
                      probe_steps=4000, probe_every=4, rewind_steps="0,250,500,1000,2000,4000", rewind_k=1000,
                      rewind_sparsity=0.8)
# How the `paper` profile itself departs from the papers (shown on the verdict box beside the scale).
PAPER_DEVIATIONS = ("a ResNet-9 where Liu et al. train a ResNet-34 and Frankle et al. a ResNet-20",
                    "one cosine schedule for every arm (ELR's config: cosine annealing with warm restarts; Frankle "
                    "et al.: lr 0.1 divided by 10 at epochs 80 and 120)",
                    "one-shot magnitude pruning for the rewinding test where Frankle et al. prune iteratively")
PROFILES = {
    "smoke": {**_paper, **CPU_BOOK, "seed_stages": False,
              "dataset": "mnist5k", "model": "smallcnn", "width": 8, "n_train": 300, "n_test": 200,
              "epochs": 3, "batch_size": 100, "lr": 0.05, "weight_decay": 5e-4, "augment": False, "seeds": 2,
              "progress": False, "probe_steps": 6, "probe_every": 1, "rewind_steps": "0,3", "rewind_k": 3,
              "rewind_sparsity": 0.5},
    # A narrow ResNet-9 (width 8) on 1,000 Fashion-MNIST images for 24 epochs, the pick of the calibration of 2026-12-07
    # (the cheapest setting of its plan where both preconditions held with the margin in all three calibration seeds;
    # calibration/04_early_learning.2026-12-07.json): 8 iterations an epoch, 192 in all, so the grid 3-12 brackets
    # 1.6%-6.3% of training and k = 6 (3.1%; Frankle et al.: rewinding works from ~0.8%-3.2%) is pre-registered.
    # 3 seeds (the seed plan's budget; its rule asked for 9), 2 more at a second look, each x (3 trainings + 4 rewound
    # retrainings from k to the end), the clean arms (5 trainings each) first, evaluated every 3 epochs.
    "quick": {**_paper, **CPU_BOOK, "dataset": "fashion-mnist", "model": "resnet9", "width": 8, "n_train": 1000,
              "n_test": 2000, "epochs": 24, "lr": 0.05, "weight_decay": 5e-4, "augment": False, "eval_every": 3,
              "probe_steps": 96, "probe_every": 1, "rewind_steps": "0,3,6,12", "rewind_k": 6},
    "paper": _paper,
}


def rewind_list(spec: str) -> list[int]:
    """Parse ``rewind_steps`` ('0, 50,200' -> [0, 50, 200])."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        try:
            k = int(part)
        except ValueError:
            raise ConfigError(f"rewind_steps must be comma-separated iteration numbers like '0,50,200', "
                              f"got {spec!r}") from None
        if k < 0:
            raise ConfigError(f"rewind_steps must be >= 0, got {k} in {spec!r}")
        out.append(k)
    return sorted(set(out))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)



def validate(values: dict) -> None:
    ks = rewind_list(values["rewind_steps"])
    if 0 not in ks:
        raise ConfigError(f"rewind_steps must include 0 (the baseline the verdict compares with), got "
                          f"{values['rewind_steps']!r}")
    if values["rewind_k"] not in ks:
        raise ConfigError(f"rewind_k {values['rewind_k']} is not on the grid rewind_steps="
                          f"{values['rewind_steps']!r}")
    spe = steps_per_epoch(train_size(values), values["batch_size"])
    total = values["epochs"] * spe
    if ks[-1] >= total:
        raise ConfigError(f"rewind_steps: iteration {ks[-1]} is beyond the end of training (a ticket rewound to k "
                          f"retrains iterations k+1..{total}: k must be below {total} = {values['epochs']} epochs "
                          f"x {spe})")
    check_flips_labels(values, NAME)


def _rewind(cfg, model, data, spec, capture: CaptureAt) -> pd.DataFrame:
    """Prune the trained ``model`` once by global magnitude; per iteration k of the capture grid, retrain the
    lottery ticket rewound to k (pruning's one procedure, as in claim 5) from iteration k to the end of the clean
    run's training ``spec``: its learning-rate schedule and batch order continue from k, as in open_lth."""
    masks = one_shot_prune(model, cfg.rewind_sparsity, scope="global")
    total = steps_per_epoch(len(data.train), cfg.batch_size) * cfg.epochs
    seed = cfg.seed

    def train(m, callbacks, desc, start_step):
        # the rewind table reads the final evaluation only: no evaluation before the retraining
        return fit(m, data, spec.replace(progress=False, eval_at_start=False, desc=f"claim 4, {desc}"),
                   callbacks=callbacks, start_step=start_step)

    rows = []
    for k in capture.steps:
        _, hist, used = retrain(Arm.MAGNITUDE_K, lambda: make_model(cfg, data, seed), train, masks,
                                capture.points(k), seed, level=1)
        last = hist.iloc[-1]
        rows.append({"seed": seed, "k": k, "k_frac": k / total, "sparsity": sparsity(used), "steps": total - k,
                     "test_acc": float(last.test_acc), "train_acc": float(last.train_acc),
                     "seconds": float(hist.attrs["train_seconds"])})
    return pd.DataFrame(rows, columns=REWIND_COLUMNS)


def _train(cfg, arm: str) -> Result:
    seed = cfg.seed  # the part's own Config: its seed is this part's
    labels = data_spec(cfg)  # the clean arm trains on the same examples with their true labels
    data = load_data(cfg, seed, spec=dataclasses.replace(labels, noise_rate=0.0) if arm == CLEAN else labels)
    device = data.train.x.device
    model = make_model(cfg, data, seed)
    t0 = time.perf_counter()
    tables, callbacks, loss_fn = {}, [], None
    eval_every = cfg.epochs if arm == CLEAN else cfg.eval_every
    spec = train_spec(cfg, seed=seed, eval_every=eval_every, desc=f"claim 4, {ARM_NAMES[arm]}, seed {seed}")
    probe = capture = None
    if arm in PROBED_ARMS:
        probe = EarlyPhaseProbe(cfg.probe_steps, cfg.probe_every, null_seed=derive(seed, "random-walk null", arm))
        callbacks.append(probe)
    if arm == REWOUND_ARM:
        capture = CaptureAt(rewind_list(cfg.rewind_steps))
        callbacks.append(capture)
    if arm == ELR:
        loss_fn = ELRLoss(len(data.train), data.num_classes, cfg.elr_beta, cfg.elr_lambda, device=device)
        callbacks.append(LossTracker(loss_fn))
    hist = fit(model, data, spec, callbacks=callbacks, loss_fn=loss_fn)
    train_seconds = time.perf_counter() - t0
    if probe is not None:
        ep = pd.DataFrame(probe.rows)
        ep.insert(0, "arm", arm)
        ep.insert(0, "seed", seed)
        tables["early_phase"] = ep
    if arm == REWOUND_ARM:
        tables["rewind"] = _rewind(cfg, model, data, spec, capture)
    hist.insert(0, "arm", arm)
    hist.insert(0, "seed", seed)
    tables["history"] = hist
    return Result(tables, {"seed": seed, "arm": arm, "images_per_second": hist.attrs["images_per_second"],
                           "train_seconds": train_seconds, "seconds": time.perf_counter() - t0,
                           "n_train": len(data.train), "n_noisy": int(data.train.noisy.sum()),
                           "n_weights": sum(p.numel() for p in tracked_parameters(model).values()),
                           "steps_per_epoch": steps_per_epoch(len(data.train), cfg.batch_size),
                           "data_source": data.source, "device": describe(device)})


def _part(cfg, key: dict) -> Result:
    return _train(part_config(cfg, key["seed"]), key["arm"])


def run(cfg, store: Store | None = None) -> Result:
    store = store or Store()

    def compute() -> Result:
        keys = [{"seed": s, "arm": arm} for s in seed_list(cfg) for arm in ARMS]
        trainings = 1 + len(rewind_list(cfg.rewind_steps))  # the clean arm's, against one for the others
        parts = run_parts(cfg, store, "part", keys, _part, cost=lambda k: trainings if k["arm"] == CLEAN else 1)
        noisy = [p for p in parts if p.scalars["arm"] != CLEAN]
        scalars = merge_scalars(noisy, ("n_weights", "steps_per_epoch"), seconds="seconds")
        scalars["seconds"] = sum(p.scalars["seconds"] for p in parts)
        tables = {"history": concat(parts, "history"),
                  "early_phase": concat([p for p in parts if p.scalars["arm"] in PROBED_ARMS], "early_phase"),
                  "rewind": concat([p for p in parts if p.scalars["arm"] == REWOUND_ARM], "rewind")}
        return Result(tables, scalars)

    return store.cached(NAME, cfg.hashed_dict(), compute)
