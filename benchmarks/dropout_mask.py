"""Standard dropout's mask: memlib's StandardDropout against ``nn.Dropout``, in a whole training step, same run.

    MEMLIB_THREADS=1 .venv/bin/python benchmarks/dropout_mask.py [--width 16] [--batch-size 32] [--p 0.1]

Claim 2's standard-dropout arm at the quick profile: a ResNet-9 (``--width``) on 28x28x1 inputs with dropout at its
six sites, channels_last, fp32, SGD; one training step (forward, backward, update) on a fixed batch.  Three models
with the same initial weights: dropout sites that are ``nn.Dropout`` (``baseline``), memlib's
:class:`~memlib.dropout.StandardDropout` (``memlib``), and no dropout at all (``none``, what the mask costs on top).
Variants are interleaved over ``--repeats`` rounds after a warm-up and the medians compared.  Printed last: one JSON
line with each variant's ms per step and ``ratio`` = baseline / memlib (above 1: memlib's step is faster).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import memlib  # noqa: F401  (sets the OpenMP wait policy before torch starts its threads)
from memlib.device import configure_threads, cpu_model
from memlib.dropout import StandardDropout
from memlib.models import ResNet9


class _TorchDropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.drop = nn.Dropout(p)

    def forward(self, x, idx=None):
        return self.drop(x)


def make(kind: str, width: int, p: float):
    torch.manual_seed(0)
    site = {"baseline": lambda c, s: _TorchDropout(p), "memlib": lambda c, s: StandardDropout(p, c, s),
            "none": None}[kind]
    m = ResNet9(width, 1, 10, site).to(memory_format=torch.channels_last)
    return m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


def ms_per_step(model, opt, x, y, steps: int) -> float:
    model.train()
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - t) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    threads = configure_threads()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch_size, 1, 28, 28, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (a.batch_size,), generator=g)
    kinds = ("baseline", "memlib", "none")
    models = {k: make(k, a.width, a.p) for k in kinds}
    for k in kinds:
        ms_per_step(*models[k], x, y, 5)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(a.repeats):
        for k in kinds:
            times[k].append(ms_per_step(*models[k], x, y, a.steps))
        print(f"round {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.1f} ms" for k in kinds), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"ms_per_step": {k: round(v, 2) for k, v in med.items()},
                      "ratio": round(med["baseline"] / med["memlib"], 3),
                      "mask_ms": {"baseline": round(med["baseline"] - med["none"], 2),
                                  "memlib": round(med["memlib"] - med["none"], 2)},
                      "width": a.width, "batch_size": a.batch_size, "p": a.p, "threads": threads,
                      "cpu": cpu_model()}))


if __name__ == "__main__":
    main()
