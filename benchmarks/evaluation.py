"""Evaluation passes with BatchNorm folded into the convolutions (:func:`memlib.train.folded_batchnorm`, what
:func:`memlib.train.predict` does) against the same pass without folding, in the same run.

    .venv/bin/python benchmarks/evaluation.py [--widths 8,16] [--n 3000] [--threads 1]

ResNet-9 of each width on 28x28x1 inputs (claims 1, 4, 5: width 8; claim 2: width 16), in evaluation mode with
non-trivial BatchNorm running statistics, predicting ``--n`` images (claim 1 evaluates 3,000 a pass: its training
and test sets) in memlib's evaluation batches.  ``plain`` and ``folded`` alternate over ``--repeats`` repetitions
after a warm-up; medians compared.  One JSON line per width: seconds per pass, ``ratio`` (plain / folded), the
largest logit difference and how many predicted classes differ (float rounding: expected 0).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext

import torch

import memlib  # noqa: F401
import memlib.train as T
from memlib.device import configure_threads, cpu_model
from memlib.models import build_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="8,16")
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    threads = configure_threads(args.threads)
    folded = T.folded_batchnorm
    for w in map(int, args.widths.split(",")):
        torch.manual_seed(0)
        m = build_model("resnet9", w, (1, 28, 28), 10).to(memory_format=torch.channels_last)
        with torch.no_grad():  # running statistics other than the initial 0 / 1
            for _ in range(3):
                m(torch.randn(256, 1, 28, 28).contiguous(memory_format=torch.channels_last))
        x = torch.randn(args.n, 1, 28, 28)
        res: dict[str, list[float]] = {"plain": [], "folded": []}
        for rep in range(args.repeats + 1):  # repetition 0 warms up
            for name in res:
                T.folded_batchnorm = folded if name == "folded" else (lambda model: nullcontext(model))
                t0 = time.perf_counter()
                out = T.predict(m, x)
                if rep:
                    res[name].append(time.perf_counter() - t0)
                if name == "plain":
                    a = out
                else:
                    b = out
        T.folded_batchnorm = folded
        med = {k: statistics.median(v) for k, v in res.items()}
        print(json.dumps({"model": "resnet9", "width": w, "images": args.n, "plain_s": round(med["plain"], 4),
                          "folded_s": round(med["folded"], 4), "ratio": round(med["plain"] / med["folded"], 3),
                          "max_logit_diff": float((a - b).abs().max()), "argmax_differs": int((a.argmax(1) != b.argmax(1)).sum()),
                          "threads": threads, "cpu": cpu_model(), "repeats": args.repeats}), flush=True)


if __name__ == "__main__":
    main()
