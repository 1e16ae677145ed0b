"""Stacked (torch.func + vmap) training of K small models against training the same models one after another.

    .venv/bin/python benchmarks/multitrain.py [--profile quick] [--dataset fashion-mnist] [--threads 1]

Both sides train the same K models (claim 3's percentile windows of one seed: same initialisations, same
windows, same batch order, same optimizer and schedule): the stacked side with
:func:`memlib.multitrain.fit_stacked`, the sequential side with :func:`memlib.train.fit` (the book's one loop,
evaluating only before and after training).  Printed: one JSON line with the wall seconds of each, ``ratio``
(sequential / stacked),
and the largest difference of the trained models' test accuracies (the two must agree up to float rounding).
Run each side ``--repeats`` times and keep the fastest, in the same process.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from memlib.data import load
from memlib.experiments import resolve
from memlib.experiments.setup import train_spec
from memlib.device import describe, pick_device
from memlib.experiments.outlier_percentiles import _fresh_models
from memlib.multitrain import accuracy_stacked, fit_stacked
from memlib.train import fit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (claim 3 uses 1 on CPU)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = resolve("outlier_percentiles", args.profile, datasets=args.dataset, device=args.device, progress=False)
    device = pick_device(cfg.device)
    data = load(args.dataset, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed, device=device)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data.train), generator=g)  # any ranking: the cost does not depend on it
    starts = np.rint(np.linspace(0, len(data.train) - cfg.window_size, cfg.n_windows)).astype(int)
    subsets = torch.stack([order[s:s + cfg.window_size] for s in starts]).to(device)
    seeds = list(range(cfg.n_windows))
    spec = train_spec(cfg, seed=0, eval_every=cfg.epochs, progress=False)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def stacked():
        models = _fresh_models(cfg, data, seeds)
        sync()
        t0 = time.perf_counter()
        stack, _ = fit_stacked(models, data.train.x, data.train.y, subsets, spec, seeds)
        acc = accuracy_stacked(stack, data.test.x, data.test.y)
        sync()
        return time.perf_counter() - t0, acc.cpu().numpy()

    def sequential():
        models = _fresh_models(cfg, data, seeds)
        sync()
        t0 = time.perf_counter()
        accs = []
        for m, s, sub in zip(models, seeds, subsets):
            d = dataclasses.replace(data, train=data.train.subset(sub))
            hist = fit(m, d, spec.replace(seed=s))
            accs.append(hist.test_acc.iloc[-1])
        sync()
        return time.perf_counter() - t0, np.asarray(accs)

    stacked()  # warm-up (vmap tracing, allocator)
    t_st, acc_st = min((stacked() for _ in range(args.repeats)), key=lambda r: r[0])
    t_seq, acc_seq = min((sequential() for _ in range(args.repeats)), key=lambda r: r[0])
    out = {"device": describe(device), "threads": torch.get_num_threads(), "dataset": args.dataset,
           "model": f"{cfg.model} width {cfg.width}", "models": cfg.n_windows, "window_size": cfg.window_size,
           "epochs": cfg.epochs, "batch_size": cfg.batch_size, "stacked_seconds": round(t_st, 3),
           "sequential_seconds": round(t_seq, 3), "ratio": round(t_seq / t_st, 3),
           "max_test_acc_difference": float(np.abs(acc_st - acc_seq).max())}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
