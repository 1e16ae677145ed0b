"""What running an experiment's parts on Ray costs against the local executor, on this machine.

    .venv/bin/python benchmarks/ray_overhead.py [--experiment early_learning] [--seeds 2] [--trivial 200]

1. A multi-part smoke experiment (default: claim 4 at the smoke profile with 2 seeds = 4 parts, ce and elr per
   seed) into fresh stores: the local executor (this process, torch's default threads), then Ray on a local
   cluster of 2 CPUs, 1 CPU per part, twice: with cold workers (the first tasks start worker processes that
   import torch and memlib) and with warm ones.  Reported: wall seconds and ray / local ratios; the cluster's
   start-up is timed apart.  The stored tables must agree (up to float rounding of a different thread count).
2. The overhead per part: ``--trivial`` parts that do nothing but return a one-row table, through
   :func:`memlib.experiments.base.run_parts` with each executor (store writes included on both sides), and bare
   Ray no-op tasks; (ray - local) / n is what Ray adds to each part.

Numbers on a shared 2-core machine are noisy (other jobs compete for the cores); read the ratios, not the
seconds, and rerun for a second opinion.  The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import pandas as pd
import torch

from memlib import executor as ex
from memlib.experiments import resolve
from memlib.experiments import get_experiment
from memlib.experiments.base import run_parts
from memlib.result import Result
from memlib.store import Store


def trivial_part(cfg, key):
    return Result({"t": pd.DataFrame({"i": [key["i"]]})}, {"i": key["i"]})


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def max_table_diff(a: Result, b: Result) -> float:
    worst = 0.0
    for name, da in a.tables.items():
        db = b.tables[name]
        num = [c for c in da.select_dtypes("number").columns if "second" not in c]
        if num:
            d = np.nanmax(np.abs(da[num].to_numpy(float) - db[num].to_numpy(float))) if len(da) else 0.0
            worst = max(worst, float(np.nan_to_num(d)))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiment", default="early_learning")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--trivial", type=int, default=200, help="trivial parts for the per-part overhead")
    args = ap.parse_args()
    import ray

    exp = get_experiment(args.experiment)
    cfg = resolve(args.experiment, "smoke", {"seeds": args.seeds, "progress": False})
    tmp = tempfile.mkdtemp(prefix="ray-bench-")
    n_parts = sum(1 for _ in exp.LOSSES) * args.seeds if hasattr(exp, "LOSSES") else None

    with ex.use("local"):
        local_res, local_s = timed(lambda: exp.run(cfg, Store(f"{tmp}/local")))
    print(f"{args.experiment} smoke, {args.seeds} seeds ({n_parts or '?'} parts): local executor "
          f"({torch.get_num_threads()} torch threads) {local_s:.1f} s")

    _, init_s = timed(lambda: ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False))
    rx = ex.RayExecutor(num_cpus=1)
    with ex.use(rx):
        cold_res, cold_s = timed(lambda: exp.run(cfg, Store(f"{tmp}/ray-cold")))
        warm_res, warm_s = timed(lambda: exp.run(cfg, Store(f"{tmp}/ray-warm")))
    diff = max(max_table_diff(local_res, cold_res), max_table_diff(local_res, warm_res))
    print(f"ray (2 workers x 1 CPU): start-up {init_s:.1f} s; cold workers {cold_s:.1f} s "
          f"(ratio {cold_s / local_s:.2f}); warm workers {warm_s:.1f} s (ratio {warm_s / local_s:.2f}); "
          f"largest table difference from local {diff:.2g}")

    n = args.trivial
    tcfg = resolve("gradient_similarity", "smoke")
    keys = [{"i": i} for i in range(n)]
    _, local_triv = timed(lambda: run_parts(tcfg, Store(f"{tmp}/triv-local"), "trivial", keys, trivial_part,
                                            executor=ex.LocalExecutor()))
    _, ray_triv = timed(lambda: run_parts(tcfg, Store(f"{tmp}/triv-ray"), "trivial", keys, trivial_part,
                                          executor=rx))
    noop = ray.remote(num_cpus=1)(lambda: None)
    ray.get([noop.remote() for _ in range(20)])  # warm
    _, bare = timed(lambda: ray.get([noop.remote() for _ in range(n)]))
    per_part_ms = 1000 * (ray_triv - local_triv) / n
    print(f"{n} trivial parts through run_parts: local {local_triv:.2f} s, ray {ray_triv:.2f} s -> Ray adds "
          f"{per_part_ms:.1f} ms per part; bare Ray no-op task {1000 * bare / n:.2f} ms each")
    ray.shutdown()
    print("note: shared 2-core machine, other jobs running; timings are noisy")
    print(json.dumps({
        "experiment": args.experiment, "profile": "smoke", "seeds": args.seeds, "parts": n_parts,
        "local_s": round(local_s, 2), "ray_init_s": round(init_s, 2), "ray_cold_s": round(cold_s, 2),
        "ray_warm_s": round(warm_s, 2), "ratio_ray_cold_over_local": round(cold_s / local_s, 3),
        "ratio_ray_warm_over_local": round(warm_s / local_s, 3), "max_table_diff": diff,
        "trivial_parts": n, "trivial_local_s": round(local_triv, 3), "trivial_ray_s": round(ray_triv, 3),
        "ray_overhead_ms_per_part": round(per_part_ms, 2), "bare_ray_task_ms": round(1000 * bare / n, 3),
        "local_torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
