"""The AUC of claim 2's atypicality criterion (:func:`memlib.measure.auc`, counts in a sorted sample) against the
rank formula it replaced (scipy's ``rankdata``: the Mann-Whitney U over n·m), in the same run, on the same bootstrap.

    .venv/bin/python benchmarks/auc.py [--kept 4000] [--forgotten 300] [--levels 17] [--n-boot 2000]

The samples are the size of claim 2's pooled clean examples (five seeds of 1,000 training images: about 4,000 kept,
a few hundred forgotten) with tied values as a held-out consistency score has them (``--levels`` distinct values).
``rank`` and ``counts`` alternate over ``--repeats`` repetitions of one bootstrap interval (``--n-boot``
resamples, as :func:`memlib.measure.bootstrap_two_sample` draws them); medians compared.  One JSON line: seconds per
interval, ``ratio`` (rank / counts) and whether every resampled AUC was equal to the last bit.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from scipy.stats import rankdata

from memlib.device import cpu_model
from memlib.measure import auc


def rank_auc(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    r = rankdata(np.concatenate([a, b]))[: len(a)]
    return float((r.sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(b)))


def resampled(a, b, statistic, n_boot: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.array([statistic(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
                     for _ in range(n_boot)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kept", type=int, default=4000)
    p.add_argument("--forgotten", type=int, default=300)
    p.add_argument("--levels", type=int, default=17)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    rng = np.random.default_rng(1)
    kept = rng.integers(0, args.levels, args.kept) / (args.levels - 1)
    forgotten = rng.binomial(args.levels - 1, 0.4, args.forgotten) / (args.levels - 1)
    variants = {"rank": lambda u, v: rank_auc(v, u), "counts": lambda u, v: auc(v, u)}  # as claim 2 calls it
    times = {k: [] for k in variants}
    out = {}
    for _ in range(args.repeats):
        for name, f in variants.items():
            t0 = time.perf_counter()
            out[name] = resampled(forgotten, kept, f, args.n_boot)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"benchmark": "auc", "cpu": cpu_model(), "kept": args.kept, "forgotten": args.forgotten,
                      "n_boot": args.n_boot, "rank_seconds": round(med["rank"], 3),
                      "counts_seconds": round(med["counts"], 3), "ratio": round(med["rank"] / med["counts"], 2),
                      "identical": bool(np.array_equal(out["rank"], out["counts"]))}))


if __name__ == "__main__":
    main()
