"""Claim 5: do lottery tickets work by removing memorization?  (The talk's own hypothesis.)

Per seed:

1. *Ticket search network.*  Train the model with example-tied dropout (generalization channels active for
   every example, each memorization channel for its own fixed share ``p_mem`` of the examples), saving the
   weights at iteration 0 and at iteration ``rewind_step``.  Record per-channel weight statistics of the layer
   before every dropout site.
2. *Iterative magnitude pruning* (IMP with rewinding to iteration k, Frankle et al. 2020): in each of ``rounds``
   rounds remove ``prune_rate`` of the remaining weights by magnitude (per layer or globally), record how many
   of the removed weights fall in memorization channels against chance, then rewind the example-tied network
   to iteration k with the new mask and retrain it (with example-tied dropout) to get the next round's
   magnitudes.
3. *Evaluation.*  Every round's mask is retrained as an ordinary network (no example-tied dropout, so any
   channel may memorize) from four starts: magnitude mask + rewind to iteration 0, + rewind to iteration k,
   + random re-initialisation, and a random mask with the same per-layer sparsity + rewind to iteration k (the
   control).  The dense ordinary network from the same initialisation is the reference.  Each is measured on
   clean and mislabeled training examples and on the test set.
"""
from __future__ import annotations

import time

import pandas as pd

from ..config import COMMON, ConfigError, Param, check_flips_labels, check_positive
from ..device import describe
from ..dropout import make_factory
from ..pruning import (CaptureAt, MaskCallback, channel_stats, full_masks, magnitude_prune, pruned_share,
                       random_masks, reinit, rewind, sparsity)
from ..store import Result, Store
from ..train import TrainSpec, fit, load_data, make_model
from .base import concat, merge_scalars, run_parts, seed_list

NAME = "lth_vs_dropout"
NOTEBOOK = "05_lth_vs_dropout"
TITLE = "Lottery tickets vs example-tied dropout"


def _check_p_gen(name, v):
    if not 0.0 < v < 1.0:
        raise ConfigError(f"{name} must be in (0, 1) (some channels must be memorization channels), got {v!r}")


def _check_p_mem(name, v):
    if not 0.0 < v <= 1.0:
        raise ConfigError(f"{name} must be in (0, 1], got {v!r}")


def _check_prune_rate(name, v):
    if not 0.0 < v < 1.0:
        raise ConfigError(f"{name} must be in (0, 1): the fraction of remaining weights removed per round, "
                          f"got {v!r}")


PARAMS = [COMMON[n] for n in ("dataset", "model", "width", "noise_rate", "n_train", "n_test", "epochs",
                              "batch_size", "lr", "momentum", "weight_decay", "warmup_frac", "augment",
                              "seed", "seeds", "device", "precision", "progress")] + [
    Param("p_gen", float, "example-tied dropout: fraction of generalization channels", check=_check_p_gen),
    Param("p_mem", float, "example-tied dropout: fraction of memorization channels each example uses",
          check=_check_p_mem),
    Param("prune_rate", float, "fraction of the remaining weights removed per pruning round",
          check=_check_prune_rate),
    Param("rounds", int, "pruning rounds (sparsity after round r is 1 - (1 - prune_rate)^r)",
          check=check_positive),
    Param("scope", str, "magnitude ranking per layer ('layer') or over the whole network ('global')",
          choices=("layer", "global")),
    Param("rewind_step", int, "iteration k that 'rewind to iteration k' restores (k >= 1)", check=check_positive),
]

_paper = dict(dataset="cifar10", model="resnet9", width=64, noise_rate=0.1, n_train=0, n_test=0, epochs=50,
              batch_size=512, lr=0.01, momentum=0.9, weight_decay=5e-4, warmup_frac=0.1, augment=False,
              seed=0, seeds=3, device="auto", precision="auto", progress=True, p_gen=0.4, p_mem=0.2, prune_rate=0.2, rounds=5,
              scope="global", rewind_step=500)
PROFILES = {
    "smoke": {**_paper, "dataset": "mnist5k", "model": "mlp", "width": 64, "noise_rate": 0.2, "n_train": 400,
              "n_test": 200, "epochs": 3, "batch_size": 50, "lr": 0.1, "seeds": 1, "prune_rate": 0.5,
              "rounds": 2, "scope": "layer", "rewind_step": 4, "progress": False},
    # An MLP's hidden units are the "neurons" of the talk and it trains ~20x faster than a conv net on a CPU,
    # which the many retrainings (2 + 5 x rounds per seed) need.
    "quick": {**_paper, "dataset": "fashion-mnist", "model": "mlp", "width": 256, "noise_rate": 0.2,
              "n_train": 2000, "n_test": 2000, "epochs": 30, "batch_size": 32, "lr": 0.05, "seeds": 3,
              "prune_rate": 0.5, "rounds": 2, "scope": "layer", "rewind_step": 60},
    "paper": _paper,
}
ARMS = ("dense", "magnitude / rewind to 0", "magnitude / rewind to k", "magnitude / random re-init",
        "random mask / rewind to k")


def validate(v: dict) -> None:
    check_flips_labels(v, NAME)
    if v["model"] == "mlp" and v["dataset"] == "cifar10" and v["width"] < 16:
        raise ConfigError("width must be >= 16 for an MLP on CIFAR-10")
    if v["n_train"] > 0:
        steps = -(-v["n_train"] // v["batch_size"]) * v["epochs"]
        if v["rewind_step"] >= steps:
            raise ConfigError(f"rewind_step ({v['rewind_step']}) must be below the number of training iterations "
                              f"({steps} = {v['epochs']} epochs x {-(-v['n_train'] // v['batch_size'])} steps)")


def _final(hist: pd.DataFrame) -> dict:
    last = hist.iloc[-1]
    return {k: float(last[k]) for k in ("train_clean_acc", "train_noisy_acc", "train_noisy_true", "test_acc")}


def _one_seed(cfg, seed: int) -> Result:
    t_start = time.perf_counter()
    data = load_data(cfg, seed)
    device = data.train.x.device
    n = len(data.train)
    steps = -(-n // cfg.batch_size) * cfg.epochs
    if cfg.rewind_step >= steps:
        raise ConfigError(f"rewind_step ({cfg.rewind_step}) must be below the number of training iterations ({steps})")
    factory = make_factory("example_tied", p_gen=cfg.p_gen, p_mem=cfg.p_mem, n_examples=n, seed=seed)

    def etd_model():
        return make_model(cfg, data, channel_dropout=factory)

    def plain_model():
        return make_model(cfg, data)

    def spec(desc):
        return TrainSpec.from_config(cfg, seed=seed, desc=desc, eval_every=max(1, cfg.epochs // 6))

    histories, arms, channels, overlap = [], [], [], []

    def record(hist, arm, rnd, sp):
        h = hist.copy()
        h.insert(0, "seed", seed)
        h.insert(1, "arm", arm)
        h.insert(2, "round", rnd)
        histories.append(h)
        arms.append({"seed": seed, "round": rnd, "sparsity": sp, "arm": arm, **_final(hist)})

    # 1. the example-tied network, saving weights at iteration 0 and k
    net = make_model(cfg, data, seed, factory)
    cap = CaptureAt([0, cfg.rewind_step])
    hist = fit(net, data, spec(f"claim 5, seed {seed}: example-tied"), callbacks=[cap])
    record(hist, "example-tied (ticket search)", 0, 0.0)
    init, at_k = cap.saved[0], cap.saved[cfg.rewind_step]

    # dense ordinary network from the same initialisation
    dense = rewind(plain_model(), init)
    record(fit(dense, data, spec(f"claim 5, seed {seed}: dense")), "dense", 0, 0.0)

    masks = full_masks(net)
    for rnd in range(1, cfg.rounds + 1):
        st = channel_stats(net)
        st.insert(0, "seed", seed)
        st.insert(1, "round", rnd)
        channels.append(st)
        new = magnitude_prune(net, masks, cfg.prune_rate, cfg.scope)
        ov = pruned_share(net, masks, new)
        ov.insert(0, "seed", seed)
        ov.insert(1, "round", rnd)
        ov["sparsity"] = sparsity(new)
        overlap.append(ov)
        masks, sp = new, sparsity(new)
        starts = {
            "magnitude / rewind to 0": (masks, lambda m: rewind(m, init, masks)),
            "magnitude / rewind to k": (masks, lambda m: rewind(m, at_k, masks)),
            "magnitude / random re-init": (masks, lambda m: reinit(m, seed + 7919 * rnd, masks)),
        }
        rmasks = random_masks(masks, seed * 1000 + rnd)
        starts["random mask / rewind to k"] = (rmasks, lambda m: rewind(m, at_k, rmasks))
        for arm, (mk, start) in starts.items():
            m = start(plain_model())
            record(fit(m, data, spec(f"claim 5, seed {seed}, round {rnd}: {arm}"), callbacks=[MaskCallback(mk)]),
                   arm, rnd, sp)
        if rnd < cfg.rounds:  # the next round's magnitudes: the pruned example-tied network, rewound to k
            net = rewind(etd_model(), at_k, masks)
            hist = fit(net, data, spec(f"claim 5, seed {seed}, round {rnd}: example-tied"),
                       callbacks=[MaskCallback(masks)])
            record(hist, "example-tied (ticket search)", rnd, sp)

    return Result({"arms": pd.DataFrame(arms), "channels": pd.concat(channels, ignore_index=True),
                   "overlap": pd.concat(overlap, ignore_index=True),
                   "history": pd.concat(histories, ignore_index=True)},
                  {"seed": seed, "train_seconds": time.perf_counter() - t_start, "n_train": n,
                   "n_noisy": int(data.train.noisy.sum()), "data_source": data.source, "device": describe(device),
                   "total_steps": steps})


def _part(cfg, key: dict) -> Result:
    return _one_seed(cfg, key["seed"])


def run(cfg, store: Store | None = None) -> Result:
    store = store or Store()

    def compute() -> Result:
        parts = run_parts(cfg, store, "seed", [{"seed": s} for s in seed_list(cfg)], _part)
        return Result({t: concat(parts, t) for t in ("arms", "channels", "overlap", "history")},
                      merge_scalars(parts, ("total_steps",)))

    return store.cached(NAME, cfg.hashed_dict(), compute)
