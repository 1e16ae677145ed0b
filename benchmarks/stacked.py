"""K narrow ResNet-9s trained side by side (one grouped network) against one after another, in the same run.

    .venv/bin/python benchmarks/stacked.py [--k 4] [--width 8] [--batch-size 128] [--steps 15] [--precision auto]

Both variants train K fresh ResNet-9s (seeds 0..K-1) on Fashion-MNIST (28×28×1; random tensors of that shape if
the dataset is not installed) with :func:`memlib.train.fit`'s per-step path — channels_last, the same precision,
memlib's thread policy, SGD with momentum and weight decay — each model on its own batches:

* ``sequential``: ``--steps`` steps of model 1, then of model 2, ... (what K calls of ``fit`` do);
* ``stacked``: ``--steps`` steps of :class:`memlib.stacked.StackedResNet9` holding the K models (what
  :func:`memlib.stacked.fit_stacked` does).

Variants alternate (A B A B …) over ``--repeats`` repetitions after a warm-up, and the medians are compared.
Printed last: one JSON line with ``stacked_img_s`` and ``sequential_img_s`` (training images of all K models per
second) and ``ratio`` (stacked / sequential), plus the precision and thread count.

Measured 2026-11-30 on a 2-core Intel Xeon @ 2.6 GHz (AVX-512, no AVX-512 BF16, no AMX; fp32): 1.31-1.32 with
2 threads and 0.99 with 1 thread on a lightly loaded machine (load ~1.3), 3.2-3.3 with 2 threads beside other
busy processes (load ~3.5-4), where fewer, larger kernels lose less to thread synchronisation.  Again at 23:25 the
same day (a slower hour on that machine): 1.26 with 2 threads (3,613 against 2,859 img/s) and 1.08 with 1 thread
(1,890 against 1,747).  On this CPU a width-8 convolution already runs near its single-core speed, so grouping four
adds little; two single-threaded processes (the book's Ray workers) get the same throughput as stacking, and the
chapters do not use the stacked trainer.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import memlib  # noqa: F401  (sets the OpenMP wait policy before torch starts its threads)
from memlib.data import DatasetUnavailable, load
from memlib.device import autocast, configure_threads, cpu_model, pick_device, precision_provenance, resolve_precision
from memlib.models import ResNet9
from memlib.stacked import StackedResNet9


def images(n: int, device) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        d = load("fashion-mnist", n_train=n, n_test=10, seed=0, device=device, download=False)
        return d.train.x, d.train.y, "fashion-mnist"
    except DatasetUnavailable:
        g = torch.Generator().manual_seed(0)
        return (torch.randn(n, 1, 28, 28, generator=g).to(device), torch.randint(0, 10, (n,), generator=g).to(device),
                "random tensors (Fashion-MNIST not installed)")


def fresh(k: int, width: int, device) -> list[ResNet9]:
    out = []
    for s in range(k):
        torch.manual_seed(s)
        out.append(ResNet9(width, 1, 10).to(device).to(memory_format=torch.channels_last))
    return out


def sgd(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)


def sequential(models, opts, x, y, batches, device, prec) -> float:
    """Images per second: each model's steps, one model after another."""
    t0 = time.perf_counter()
    for j, (m, opt) in enumerate(zip(models, opts)):
        m.train()
        for ib in batches:
            xb = x[ib[:, j]].contiguous(memory_format=torch.channels_last)
            with autocast(device, prec):
                out = m(xb)
            loss = F.cross_entropy(out.float(), y[ib[:, j]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return len(models) * sum(len(ib) for ib in batches) / (time.perf_counter() - t0)


def stacked(net, opt, x, y, batches, device, prec) -> float:
    """Images per second: all K models' steps at once."""
    net.train()
    t0 = time.perf_counter()
    for ib in batches:
        xb = torch.cat([x[ib[:, j]] for j in range(net.k)], 1).contiguous(memory_format=torch.channels_last)
        with autocast(device, prec):
            out = net(xb, ib)
        b = len(ib)
        loss = F.cross_entropy(out.float().reshape(b * net.k, -1), y[ib].reshape(-1), reduction="none")
        opt.zero_grad(set_to_none=True)
        loss.view(b, net.k).mean(0).sum().backward()
        opt.step()
    return net.k * sum(len(ib) for ib in batches) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=4, help="models trained side by side")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=15, help="training steps per model per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    args = p.parse_args()
    device = pick_device(args.device)
    threads = configure_threads() if device.type == "cpu" else torch.get_num_threads()
    x, y, source = images(args.n_train, device)
    prec = resolve_precision(args.precision, device)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, len(x), (args.batch_size, args.k), generator=g).to(device) for _ in range(args.steps)]
    warm = batches[:2]
    res: dict[str, list[float]] = {"sequential": [], "stacked": []}
    for rep in range(args.repeats + 1):  # repetition 0 warms up (allocator, oneDNN primitives) and is dropped
        for name in res:
            models = fresh(args.k, args.width, device)
            if name == "sequential":
                opts = [sgd(m.parameters()) for m in models]
                sequential(models, opts, x, y, warm, device, prec)
                r = sequential(models, opts, x, y, batches, device, prec)
            else:
                net = StackedResNet9.from_models(models).to(memory_format=torch.channels_last)
                opt = sgd(net.parameters())
                stacked(net, opt, x, y, warm, device, prec)
                r = stacked(net, opt, x, y, batches, device, prec)
            if rep:
                res[name].append(r)
                print(f"repeat {rep}: {name:10s} {r:9.0f} img/s", flush=True)
    seq, stk = statistics.median(res["sequential"]), statistics.median(res["stacked"])
    print(json.dumps({"stacked_img_s": round(stk, 1), "sequential_img_s": round(seq, 1), "ratio": round(stk / seq, 3),
                      "k": args.k, "width": args.width, "batch_size": args.batch_size, "steps": args.steps,
                      "precision": prec, "precision_probe": precision_provenance(), "device": str(device),
                      "cpu": cpu_model(), "threads": threads, "data": source, "repeats": args.repeats}))


if __name__ == "__main__":
    main()
