"""Training throughput at each chapter's training shape: memlib's step in fp32 and in bf16, against the plain fp32
loop, in the same run, at the book's thread count; and what ``precision="auto"`` picks there.

    .venv/bin/python benchmarks/throughput.py                      # every chapter's quick shape, 1 thread
    .venv/bin/python benchmarks/throughput.py --profile paper --threads 2
    .venv/bin/python benchmarks/throughput.py --width 16 --batch-size 128   # one shape of your own

A *shape* is what a chapter trains: model, width, batch size and input (its profile's values, read from
:mod:`memlib.experiments`; chapters with the same shape are measured once).  Every variant trains the same model
(same seed, same initial weights) on the same batches of the profile's data with the same SGD optimizer:

* ``baseline``: the textbook loop — fp32, eager, default memory format;
* ``fp32``: :func:`memlib.train.fit`'s per-step path in fp32 (channels_last for conv nets);
* ``bf16``: the same under bf16 autocast.

``auto`` is the precision :func:`memlib.device.resolve_precision` picks for the shape at this thread count (its
per-shape probe, cached; or ``$MEMLIB_PRECISION``); it runs the same code as the variant it picks, so it is not
timed again.  Variants are interleaved (baseline, fp32, bf16, baseline, ...) over ``--repeats`` repetitions after a
warm-up, and medians compared, so a machine that gets busier during the run affects all alike.

Printed: one JSON line per shape with images per second of each variant, ``ratio_fp32`` and ``ratio_bf16``
(against the baseline), ``auto``, ``ratio_auto`` and ``auto_vs_best`` (auto's speed over the faster precision's;
memlib asks for >= 0.95), the chapters it stands for, the thread count and CPU facts.

How much faster fp32 eager could go: ``gflop_per_image`` is one training step's floating-point work per image
(forward and backward, counted by :class:`torch.utils.flop_counter.FlopCounterMode`), ``fp32_gflop_s`` the rate
memlib's fp32 step reaches, ``gemm_fp32_gflop_s`` the rate of a large fp32 matrix product on the same threads (a
1,024 x 1,024 ``mm``, timed as one more interleaved variant: about the most this CPU does in fp32), and
``fp32_of_gemm`` their ratio.  A step far below 1 is bound by memory or overheads, not arithmetic.  The book runs one
single-threaded process per core, so ``--threads`` defaults to 1; ``0`` means memlib's own default (the cores
available, or ``$MEMLIB_THREADS``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import memlib  # noqa: F401  (sets the OpenMP wait policy before torch starts its threads)
from memlib.catalog import dataset as dataset_info
from memlib.data import load
from memlib.device import (Workload, autocast, configure_threads, cpu_has_amx, cpu_model, cpu_precision_probe,
                           pick_device, precision_override, resolve_precision)
from memlib.experiments import REGISTRY, resolve
from memlib.models import build_model
from memlib.train import channels_last_ok

VARIANTS = ("baseline", "fp32", "bf16")


def chapter_shapes(profile: str) -> dict[tuple, list[str]]:
    """(model, width, batch size, dataset) -> the chapters that train that shape at ``profile``."""
    shapes: dict[tuple, list[str]] = {}
    for nb in REGISTRY:
        cfg = resolve(nb, profile)
        ds = cfg.dataset if "dataset" in cfg.values else str(cfg.datasets).split(",")[0]
        shapes.setdefault((cfg.model, cfg.width, cfg.batch_size, ds), []).append(nb.split("_", 1)[0])
    return shapes


def make(model: str, width: int, shape, classes: int, device, channels_last: bool):
    torch.manual_seed(0)
    m = build_model(model, width, shape, classes).to(device)
    if channels_last and len(shape) == 3 and model != "mlp":
        m = m.to(memory_format=torch.channels_last)
    return m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


def steps(model, opt, x, y, batches, device, variant: str) -> float:
    """Images per second over ``batches`` (a list of index tensors)."""
    model.train()
    cl = variant != "baseline" and channels_last_ok(x)
    prec = "bf16" if variant == "bf16" else "fp32"
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = 0
    for ib in batches:
        xb, yb = x[ib], y[ib]
        if cl:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, prec):
            out = model(xb)
        loss = F.cross_entropy(out.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(ib)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def gemm_gflop_s(device, seconds: float = 0.3, n: int = 1024) -> float:
    """fp32 GFLOP/s of ``n x n`` matrix products on the current threads, over about ``seconds``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    k, t0 = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        k += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if dt >= seconds and k >= 3:
            return 2 * n ** 3 * k / dt / 1e9


def flops_per_image(model, opt, x, y, batch) -> float:
    """Floating-point operations of one training step (forward + backward) per image, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    ib = torch.arange(batch, device=x.device) % len(x)
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x[ib]).float(), y[ib]).backward()
    opt.zero_grad(set_to_none=True)
    return fc.get_total_flops() / batch


def device_probe(wl: Workload, device) -> float | None:
    """The bf16 speed-up the precision probe measured for ``wl`` (None where auto needs no probe)."""
    if device.type != "cpu" or precision_override() is not None:
        return None
    return cpu_precision_probe(wl).get("bf16_speedup")


def measure(model: str, width: int, batch: int, dataset: str, args, device) -> dict:
    data = load(dataset, n_train=args.n_train, n_test=100, noise_rate=0.0, seed=0, device=device)
    x, y = data.train.x, data.train.y
    g = torch.Generator().manual_seed(0)

    def draw(k):
        return [torch.randint(0, len(x), (batch,), generator=g).to(device) for _ in range(k)]

    warm = draw(3)
    # Steps per measurement: about --seconds of the baseline loop (at least 5), the same for every variant.
    m, opt = make(model, width, data.image_shape, data.num_classes, device, False)
    steps(m, opt, x, y, warm, device, "baseline")
    per_step = batch / steps(m, opt, x, y, warm, device, "baseline")
    n_steps = args.steps or max(5, round(args.seconds / per_step))
    batches = draw(n_steps)
    res: dict[str, list[float]] = {v: [] for v in VARIANTS}
    gemm: list[float] = []
    for rep in range(args.repeats + 1):  # repetition 0 warms up (allocator, oneDNN primitives) and is dropped
        for v in VARIANTS:
            m, opt = make(model, width, data.image_shape, data.num_classes, device, v != "baseline")
            steps(m, opt, x, y, warm, device, v)
            r = steps(m, opt, x, y, batches, device, v)
            if rep:
                res[v].append(r)
        g = gemm_gflop_s(device)
        if rep:
            gemm.append(g)
    med = {v: statistics.median(res[v]) for v in VARIANTS}
    m, opt = make(model, width, data.image_shape, data.num_classes, device, False)
    gflop = flops_per_image(m, opt, x, y, batch) / 1e9
    peak = statistics.median(gemm)
    info = dataset_info(dataset)
    wl = Workload(model, width, tuple(info.image_shape), info.num_classes, batch)
    auto = resolve_precision("auto", device, wl)
    best = max(med["fp32"], med["bf16"])
    probe = device_probe(wl, device)
    return {"model": model, "width": width, "batch_size": batch, "dataset": dataset,
            **{f"{v}_img_s": round(med[v], 1) for v in VARIANTS},
            "ratio_fp32": round(med["fp32"] / med["baseline"], 3), "ratio_bf16": round(med["bf16"] / med["baseline"], 3),
            "auto": auto, "ratio_auto": round(med[auto] / med["baseline"], 3),
            "auto_vs_best": round(med[auto] / best, 3),
            "auto_probe_bf16_speedup": probe,
            "gflop_per_image": round(gflop, 4), "fp32_gflop_s": round(med["fp32"] * gflop, 1),
            "bf16_gflop_s": round(med["bf16"] * gflop, 1), "gemm_fp32_gflop_s": round(peak, 1),
            "fp32_of_gemm": round(med["fp32"] * gflop / peak, 3),
            "steps": n_steps, "repeats": args.repeats}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick", help="whose chapters' shapes to measure (default: quick)")
    p.add_argument("--model", default=None, help="one shape of your own instead of the chapters' (with --width, "
                                                 "--batch-size)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--dataset", default="fashion-mnist", help="the data of a shape of your own")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the book's parts; 0: "
                                                          "memlib's default)")
    p.add_argument("--steps", type=int, default=0, help="training steps per measurement (default: about --seconds)")
    p.add_argument("--seconds", type=float, default=1.5, help="target seconds of one measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = pick_device(args.device)
    threads = configure_threads(args.threads or None) if device.type == "cpu" else torch.get_num_threads()
    if args.model or args.width or args.batch_size:
        shapes = {(args.model or "resnet9", args.width or 16, args.batch_size or 128, args.dataset): ["custom"]}
    else:
        shapes = chapter_shapes(args.profile)
    for (model, width, batch, ds), chapters in shapes.items():
        row = measure(model, width, batch, ds, args, device)
        print(json.dumps({**row, "chapters": chapters, "profile": args.profile if chapters != ["custom"] else None,
                          "device": str(device), "cpu": cpu_model(), "threads": threads, "cpu_amx": cpu_has_amx()}),
              flush=True)


if __name__ == "__main__":
    main()
