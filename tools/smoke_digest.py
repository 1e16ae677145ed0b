"""Print a digest of every claim at a profile (default: smoke): verdict, criteria estimates, table and array checksums.

Used to check that a refactor leaves numbers unchanged: run it before and after, in a fresh store each time, and
compare the two JSON files (``python tools/smoke_digest.py > before.json``; ``diff before.json after.json``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile

import re

import numpy as np

TIMING = re.compile(r"second|time|per_s", re.I)  # wall-clock columns differ between runs


def digest_table(df) -> dict:
    num = df.select_dtypes("number")
    num = num[[c for c in num.columns if not TIMING.search(str(c))]]
    return {"shape": list(df.shape), "columns": list(map(str, df.columns)),
            "sums": {str(c): round(float(np.nansum(num[c].to_numpy(dtype=float))), 6) for c in num.columns}}


def digest_array(a) -> dict:
    return {"shape": list(a.shape), "dtype": str(a.dtype), "sum": round(float(np.sum(a, dtype=np.float64)), 6)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("claims", nargs="*", help="claims to run (default: all)")
    args = ap.parse_args()
    from memlib.claims import get_claim
    from memlib.experiments import REGISTRY, get_experiment, resolve
    from memlib.store import Store

    out = {}
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        for nb, mod in REGISTRY.items():
            if args.claims and mod not in args.claims and nb not in args.claims:
                continue
            cfg = resolve(nb, args.profile, progress=False)
            result = get_experiment(nb).run(cfg, store=store)
            v = get_claim(mod).check(result, cfg)
            out[mod] = {"status": v.status,
                        "criteria": [[c.text, c.outcome, None if c.interval is None else
                                      round(float(c.interval.estimate), 6)] for c in v.criteria],
                        "tables": {k: digest_table(t) for k, t in sorted(result.tables.items())}}
            if result.arrays:
                out[mod]["arrays"] = {k: digest_array(a) for k, a in sorted(result.arrays.items())}
            print(f"{mod}: {v.status}", file=sys.stderr)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
