"""Claim 4: early learning, then memorization (Liu et al. 2020), ELR, and the early phase (Frankle et al. 2020).

Per seed, two trainings from the same initialization, data, label noise and batch order:

* ``ce``: plain cross-entropy, with :class:`~memlib.probes.early_phase.EarlyPhaseProbe` recording per-iteration
  gradient norm, distance from initialization and sign changes over the first ``probe_steps`` iterations, and
  keeping the model state at each rewind iteration ``k``.  After training, the network is pruned by global
  weight magnitude (``rewind_sparsity``), the surviving weights are rewound to iteration ``k`` and the sparse
  network is retrained (a fresh warm-up + cosine schedule of ``rewind_epochs`` epochs) for each ``k``.
* ``elr``: cross-entropy + early-learning regularization (:class:`~memlib.losses.ELRLoss`).

Tables: ``history`` (per epoch, per seed and loss: the fit records, incl. ``train_noisy_acc`` = mislabeled
predicted as the given wrong label, ``train_noisy_true`` = predicted as the true label, ``test_acc``),
``early_phase`` (per iteration), ``rewind`` (one row per seed and rewind iteration).
"""
from __future__ import annotations

import copy
import math
import time

import pandas as pd

from ..config import COMMON, ConfigError, Param, check_flips_labels, check_nonneg, check_positive, check_rate
from ..device import describe
from ..losses import ELRLoss, LossTracker
from ..probes.early_phase import EarlyPhaseProbe, tracked_parameters
from ..pruning import MaskCallback, magnitude_prune, rewind, sparsity
from ..store import Result, Store
from ..train import TrainSpec, fit, make_model_and_data
from .base import concat, merge_scalars, run_parts, seed_list

NAME = "early_learning"
NOTEBOOK = "04_early_learning"
TITLE = "Early learning, then memorization; early-learning regularization"

LOSSES = ("ce", "elr")
REWIND_COLUMNS = ["seed", "k", "k_epoch", "sparsity", "epochs", "test_acc", "train_clean_acc", "train_noisy_acc",
                  "train_noisy_true", "seconds"]

PARAMS = [COMMON[n] for n in ("dataset", "model", "width", "noise_rate", "n_train", "n_test", "epochs",
                              "batch_size", "lr", "momentum", "weight_decay", "warmup_frac", "augment",
                              "seed", "seeds", "device", "precision", "progress")] + [
    Param("elr_beta", float, "ELR: momentum of the per-example running-average targets", check=check_rate),
    Param("elr_lambda", float, "ELR: weight of the regularization term", check=check_nonneg),
    Param("probe_steps", int, "early-phase probes: number of first iterations recorded (0 = none)",
          check=check_nonneg),
    Param("probe_every", int, "early-phase probes: record every n-th iteration", check=check_positive),
    Param("rewind_steps", str, "iterations k to rewind to, comma-separated (e.g. '0,50,200'; '' = no rewinding)"),
    Param("rewind_sparsity", float, "fraction of weights pruned by magnitude before rewinding (0 = dense)",
          check=check_rate),
    Param("rewind_epochs", int, "epochs of each retraining from a rewind point (0 = same as epochs)",
          check=check_nonneg),
]

_paper = dict(dataset="cifar10", model="resnet9", width=64, noise_rate=0.4, n_train=0, n_test=0, epochs=120,
              batch_size=128, lr=0.02, momentum=0.9, weight_decay=1e-3, warmup_frac=0.0, augment=True,
              seed=0, seeds=3, device="auto", precision="auto", progress=True, elr_beta=0.7, elr_lambda=3.0,
              probe_steps=4000, probe_every=4, rewind_steps="0,100,500,2000", rewind_sparsity=0.8,
              rewind_epochs=0)
PROFILES = {
    "smoke": {**_paper, "dataset": "mnist5k", "model": "smallcnn", "width": 8, "n_train": 300, "n_test": 200,
              "epochs": 3, "batch_size": 100, "lr": 0.05, "weight_decay": 5e-4, "warmup_frac": 0.1,
              "augment": False, "seeds": 1, "progress": False, "probe_steps": 6, "probe_every": 1,
              "rewind_steps": "0,3", "rewind_sparsity": 0.5, "rewind_epochs": 1},
    # No warm-up (as at the paper profile), so that a rising learning rate does not shape the probed early phase.
    # See the chapter for the choice: 40% noise as in Liu et al.'s Figure 1, a narrow ResNet-9 and a few
    # thousand Fashion-MNIST images so that both trainings and the rewinding fit in about three CPU minutes.
    "quick": {**_paper, "dataset": "fashion-mnist", "model": "resnet9", "width": 8, "n_train": 3000,
              "n_test": 2000, "epochs": 30, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4,
              "warmup_frac": 0.0, "augment": False, "seeds": 1, "probe_steps": 240, "probe_every": 1,
              "rewind_steps": "0,24,96", "rewind_sparsity": 0.8, "rewind_epochs": 10},
    "paper": _paper,
}


def rewind_list(spec: str) -> list[int]:
    """Parse ``rewind_steps`` ('0, 50,200' -> [0, 50, 200]); '' -> []."""
    spec = spec.strip()
    if not spec:
        return []
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


def validate(values: dict) -> None:
    ks = rewind_list(values["rewind_steps"])
    if values["n_train"] > 0 and ks:
        total = values["epochs"] * math.ceil(values["n_train"] / values["batch_size"])
        if ks[-1] > total:
            raise ConfigError(f"rewind_steps: iteration {ks[-1]} is beyond the end of training ({total} "
                              f"iterations = {values['epochs']} epochs x {math.ceil(values['n_train'] / values['batch_size'])})")
    check_flips_labels(values, NAME)


def _spec(cfg, seed: int, **kw) -> TrainSpec:
    return TrainSpec.from_config(cfg, seed=seed, **kw)


def _rewind(cfg, seed, model, data, probe) -> pd.DataFrame:
    """Prune the trained ``model`` by magnitude, rewind survivors to each kept iteration k, retrain."""
    masks = magnitude_prune(model, None, cfg.rewind_sparsity, scope="global")
    epochs = cfg.rewind_epochs or cfg.epochs
    rows = []
    for k in probe.keep_steps:
        m = rewind(copy.deepcopy(model), probe.states[k], masks)
        spec = _spec(cfg, seed, epochs=epochs, eval_every=epochs, desc=f"claim 4, rewind to {k}")
        t0 = time.perf_counter()
        h = fit(m, data, spec, callbacks=[MaskCallback(masks)])
        last = h.dropna(subset=["test_acc"]).iloc[-1]
        rows.append({"seed": seed, "k": k, "k_epoch": k / math.ceil(len(data.train) / cfg.batch_size),
                     "sparsity": sparsity(masks), "epochs": epochs, "test_acc": float(last.test_acc),
                     "train_clean_acc": float(last.train_clean_acc), "train_noisy_acc": float(last.train_noisy_acc),
                     "train_noisy_true": float(last.train_noisy_true), "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows, columns=REWIND_COLUMNS)


def _train(cfg, seed: int, loss: str) -> Result:
    model, data, device = make_model_and_data(cfg, seed=seed)
    t0 = time.perf_counter()
    tables = {}
    if loss == "ce":
        ks = rewind_list(cfg.rewind_steps)
        spe = math.ceil(len(data.train) / cfg.batch_size)
        if ks and ks[-1] > spe * cfg.epochs:
            raise ConfigError(f"rewind_steps: iteration {ks[-1]} is beyond the end of training "
                              f"({spe * cfg.epochs} iterations)")
        probe = EarlyPhaseProbe(cfg.probe_steps, cfg.probe_every, keep_steps=ks)
        hist = fit(model, data, _spec(cfg, seed, desc=f"claim 4, cross-entropy, seed {seed}"), callbacks=[probe])
        ep = pd.DataFrame(probe.rows)
        ep.insert(0, "seed", seed)
        tables["early_phase"] = ep
        train_seconds = time.perf_counter() - t0
        tables["rewind"] = _rewind(cfg, seed, model, data, probe) if ks else pd.DataFrame(columns=REWIND_COLUMNS)
    else:
        fn = ELRLoss(len(data.train), data.num_classes, cfg.elr_beta, cfg.elr_lambda, device=device)
        hist = fit(model, data, _spec(cfg, seed, desc=f"claim 4, ELR, seed {seed}"), callbacks=[LossTracker(fn)],
                   loss_fn=fn)
        train_seconds = time.perf_counter() - t0
    hist.insert(0, "loss", loss)
    hist.insert(0, "seed", seed)
    tables["history"] = hist
    return Result(tables, {"seed": seed, "loss": loss, "images_per_second": hist.attrs["images_per_second"],
                           "train_seconds": train_seconds, "seconds": time.perf_counter() - t0,
                           "n_train": len(data.train), "n_noisy": int(data.train.noisy.sum()),
                           "n_weights": sum(p.numel() for p in tracked_parameters(model).values()),
                           "steps_per_epoch": math.ceil(len(data.train) / cfg.batch_size),
                           "data_source": data.source, "device": describe(device)})


def _part(cfg, key: dict) -> Result:
    return _train(cfg, key["seed"], key["loss"])


def run(cfg, store: Store | None = None) -> Result:
    store = store or Store()

    def compute() -> Result:
        keys = [{"seed": s, "loss": loss} for s in seed_list(cfg) for loss in LOSSES]
        parts = run_parts(cfg, store, "part", keys, _part)
        ce = [p for p in parts if p.scalars["loss"] == "ce"]
        scalars = merge_scalars(parts, ("n_weights", "steps_per_epoch"), seconds="seconds")
        tables = {"history": concat(parts, "history"), "early_phase": concat(ce, "early_phase"),
                  "rewind": concat(ce, "rewind")}
        return Result(tables, scalars)

    return store.cached(NAME, cfg.hashed_dict(), compute)
