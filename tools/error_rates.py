"""Measure the verdicts' false rates by simulation (the fakes of tests/test_error_rates.py), with the family-wise
rule (after) and with every criterion decided alone on its 95% interval (before).

    PYTHONPATH=$PWD python tools/error_rates.py [n]
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import memlib.claims as C  # noqa: E402
from memlib.claims import (dropout_comparison, early_learning, gradient_similarity, lth_vs_dropout,  # noqa: E402
                           outlier_percentiles)
import test_error_rates as T  # noqa: E402
from test_lth_vs_dropout import made_result  # noqa: E402


def cases(n):
    r = lambda s: np.random.default_rng(s)  # noqa: E731
    at = dict(moved_ratio=0.95, enrichment=1.05, etd_gap=0.02, ord_gap=0.02, clean_gap=0.02, noise=0.03)
    g1, g3, g4, g5, g6 = r(10), r(30), r(40), r(50), r(51)
    return {
        "claim 1 (cosines without sign)": lambda: gradient_similarity.check(T._claim1(g1)).status,
        "claim 2 (at the thresholds)": (lambda it=iter(range(10**6)): dropout_comparison.check(T._claim2(next(it))).status),
        "claim 3 (flat curve)": lambda: outlier_percentiles.check(T._claim3(g3)).status,
        "claim 4 (at the thresholds)": lambda: early_learning.check(T._claim4(g4)).status,
        "claim 5 (no effect)": lambda: lth_vs_dropout.check(made_result(g5, noise=0.05)).status,
        "claim 5 (at the margins)": lambda: lth_vs_dropout.check(made_result(g6, **at)).status,
    }


def rates(n):
    out = {}
    for name, f in cases(n).items():
        s = pd.Series([f() for _ in range(n)])
        out[name] = {"against": s.isin(T.AGAINST).mean(), "contradicted": (s == C.CONTRADICTED).mean(),
                     "for": s.isin(T.FOR_CLAIM).mean(), "not testable": (s == C.NOT_TESTABLE).mean()}
    return pd.DataFrame(out).T


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    after = rates(n)
    level = C.family_level
    C.family_level = lambda m: C.LEVEL  # before: every criterion decided alone on its 95% interval
    before = rates(n)
    C.family_level = level
    print(f"n = {n} per case\n\nbefore (each criterion alone, 95%):\n{before.round(3)}\n\nafter (1 - 5%/m):\n"
          f"{after.round(3)}")
