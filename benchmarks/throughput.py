"""Training throughput of memlib's loop against the plain fp32 eager loop, in the same run.

    .venv/bin/python benchmarks/throughput.py [--model resnet9] [--width 16] [--batch-size 128] [--steps 30]

Both loops train the same model (same seed, same initial weights) on the same batches of the quick profile's
Fashion-MNIST data (28×28×1) with the same SGD optimizer:

* ``baseline``: the textbook loop — fp32, eager, default memory format, ``torch.no_grad`` untouched;
* ``memlib``: :func:`memlib.train.fit`'s per-step path — channels_last for conv nets, bf16 autocast where
  ``precision=auto`` resolves to bf16 (CUDA, or a CPU where memlib's timed probe found bf16 faster; fp32
  elsewhere; see :mod:`memlib.device`), memlib's thread policy.

Variants are interleaved (A B A B …) over ``--repeats`` repetitions after a warm-up, and the medians compared,
so a machine that gets busier during the run affects both alike.  Printed last: one JSON line with
``memlib_img_s``, ``baseline_img_s`` and ``ratio`` (memlib / baseline), plus the resolved precision and CPU facts.

Run it with ``--precision auto``, ``fp32`` and ``bf16`` to check that ``auto`` picks the faster one on this
machine (the JSON line carries the probe's own timings as ``precision_probe``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import memlib  # noqa: F401  (sets the OpenMP wait policy before torch starts its threads)
from memlib.data import load
from memlib.device import (autocast, configure_threads, cpu_has_amx, cpu_model, pick_device, precision_provenance,
                           resolve_precision)
from memlib.models import build_model
from memlib.train import channels_last_ok


def make(model: str, width: int, shape, classes: int, device, fast: bool):
    torch.manual_seed(0)
    m = build_model(model, width, shape, classes).to(device)
    if fast and len(shape) == 3:
        m = m.to(memory_format=torch.channels_last)
    return m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


def steps(model, opt, x, y, batches, device, fast: bool, precision: str) -> float:
    """Images per second over ``batches`` (lists of index tensors)."""
    model.train()
    cl = fast and channels_last_ok(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = 0
    for ib in batches:
        xb, yb = x[ib], y[ib]
        if cl:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision if fast else "fp32"):
            out = model(xb)
        loss = F.cross_entropy(out.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(ib)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet9")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30, help="training steps per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    args = p.parse_args()
    device = pick_device(args.device)
    threads = configure_threads() if device.type == "cpu" else torch.get_num_threads()
    data = load(args.dataset, n_train=args.n_train, n_test=100, noise_rate=0.0, seed=0, device=device)
    x, y = data.train.x, data.train.y
    prec = resolve_precision(args.precision, device)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, len(x), (args.batch_size,), generator=g).to(device) for _ in range(args.steps)]
    warm = batches[:3]
    res: dict[str, list[float]] = {"baseline": [], "memlib": []}
    for rep in range(args.repeats + 1):  # repetition 0 warms up (allocator, oneDNN primitives) and is dropped
        for name in ("baseline", "memlib"):
            fast = name == "memlib"
            m, opt = make(args.model, args.width, data.image_shape, data.num_classes, device, fast)
            steps(m, opt, x, y, warm, device, fast, prec)
            r = steps(m, opt, x, y, batches, device, fast, prec)
            if rep:
                res[name].append(r)
                print(f"repeat {rep}: {name:8s} {r:9.0f} img/s", flush=True)
    base, ours = statistics.median(res["baseline"]), statistics.median(res["memlib"])
    print(json.dumps({"memlib_img_s": round(ours, 1), "baseline_img_s": round(base, 1), "ratio": round(ours / base, 3),
                      "model": args.model, "width": args.width, "batch_size": args.batch_size,
                      "precision": prec, "precision_asked": args.precision, "precision_probe": precision_provenance(),
                      "device": str(device), "cpu": cpu_model(), "threads": threads, "cpu_amx": cpu_has_amx(),
                      "repeats": args.repeats}))


if __name__ == "__main__":
    main()
