"""torch.compile against eager training at each chapter's training shape, compile time counted and amortised.

    .venv/bin/python benchmarks/compile.py                 # every chapter's quick shape, 1 thread (the book's)
    .venv/bin/python benchmarks/compile.py --only 02 --repeats 5

For each chapter, its model as it trains it (claim 2: each dropout method's own network; claim 3: its MLP), its
batch size, training-set size and epochs at ``--profile`` (default quick), trained with :func:`memlib.train.fit`'s
per-step path (channels_last for conv nets, ``--precision``, SGD) one *epoch* at a time, so that the last, smaller
batch of an epoch is part of what is timed and compiled, as in the chapter:

* ``eager``: the step as memlib runs it;
* ``compiled``: the same step with the model's forward (and so its backward) under ``torch.compile`` (inductor,
  ``dynamic=False``: one static graph per batch size, ``fallback_random=True`` so that dropout draws the same
  random numbers as eager).

Each shape runs in a fresh child process with an empty inductor cache: its first compiled epoch minus a steady
compiled epoch is the *cold* compile time.  A second child with the same, now filled, cache measures the *warm*
compile time (what a later worker or build pays).  Then eager and compiled epochs alternate (E C E C ...) for
``--repeats`` repetitions; medians compared.

Printed: one JSON line per shape with ``eager_s_per_epoch``, ``compiled_s_per_epoch``, ``compile_s_cold``,
``compile_s_warm``, the chapter's ``steps`` of one training (epochs x steps per epoch), ``speedup`` (eager /
compiled, compile excluded), ``ratio`` = eager time / (compiled time + cold compile time) over one training of the
chapter, and ``ratio_warm`` the same with the warm compile time; plus the thread count and CPU.  memlib uses
compile in training only where ``ratio`` >= 1.1 (see the README's Performance section).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHAPTERS = {  # claim -> the networks it trains with fit() (claim 2: one per dropout method)
    "01": [None], "02": ["dropout", "sparse", "example_tied"], "03": [None], "04": [None], "05": [None],
}


def build(nb: str, method: str | None, profile: str, precision: str):
    """The chapter's config, data, a fresh model (and its dropout), and the per-epoch batches."""
    import torch

    from memlib.data import load
    from memlib.experiments import REGISTRY, resolve
    from memlib.experiments.setup import load_data, make_model
    full = next(n for n in REGISTRY if n.startswith(nb))
    cfg = resolve(full, profile, progress=False, device="cpu")
    if "dataset" in cfg.values:
        data = load_data(cfg, 0)
    else:  # claim 3: its ranked pool of the first dataset
        data = load(str(cfg.datasets).split(",")[0], n_train=cfg.n_train, n_test=100, seed=0, device="cpu")
    factory = None
    if method is not None:
        from memlib.experiments.dropout_comparison import factory as claim2_factory
        factory = claim2_factory(cfg, method, len(data.train), 0)
    model = make_model(cfg, data, 0, factory)
    n, b = len(data.train), cfg.batch_size
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(n, generator=g)
    epoch = [perm[i:i + b] for i in range(0, n, b)]
    return cfg, data, model, epoch


def child(args) -> None:
    """One shape in this process: compile times and interleaved epochs, one JSON line on stdout."""
    import copy

    import torch
    import torch.nn.functional as F

    import memlib  # noqa: F401
    from memlib.device import autocast, configure_threads
    from memlib.train import channels_last_ok
    configure_threads(args.threads)
    import torch._inductor.config as ic
    ic.fallback_random = True
    cfg, data, model, epoch = build(args.only, args.method, args.profile, args.precision)
    x, y = data.train.x, data.train.y
    cl = channels_last_ok(x)
    dev = torch.device("cpu")
    if cl:
        model = model.to(memory_format=torch.channels_last)

    def trainer(m):
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def run_epoch(fwd) -> float:
            m.train()
            t0 = time.perf_counter()
            for ib in epoch:
                xb, yb = x[ib], y[ib]
                if cl:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with autocast(dev, args.precision):
                    out = fwd(xb, idx=ib)
                loss = F.cross_entropy(out.float(), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            return time.perf_counter() - t0
        return run_epoch

    m_eager, m_comp = copy.deepcopy(model), copy.deepcopy(model)
    run_eager, run_comp = trainer(m_eager), trainer(m_comp)
    compiled = torch.compile(m_comp, dynamic=False)
    first = run_comp(compiled)  # compiles every graph one epoch needs
    steady = run_comp(compiled)
    out = {"compile_s": round(first - steady, 2)}
    if not args.warm_only:
        run_eager(m_eager)  # warm-up
        res = {"eager": [], "compiled": []}
        reps = max(1, math.ceil(args.seconds / max(steady, 1e-3)))  # epochs per measurement
        for _ in range(args.repeats):
            res["eager"].append(sum(run_eager(m_eager) for _ in range(reps)) / reps)
            res["compiled"].append(sum(run_comp(compiled) for _ in range(reps)) / reps)
        out.update({k: statistics.median(v) for k, v in res.items()})
        out.update({"steps_per_epoch": len(epoch), "epochs": cfg.epochs, "model": cfg.model, "width": cfg.width,
                    "batch_size": cfg.batch_size, "n_train": len(x), "epochs_per_measurement": reps})
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--only", default=None, help="one chapter (01..05)")
    p.add_argument("--method", default=None, help=argparse.SUPPRESS)
    p.add_argument("--warm-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the book's parts)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="training arithmetic (default fp32: what the quick book trains in on a CPU)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.5, help="seconds of one measurement (whole epochs)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    from memlib.device import cpu_model
    for nb, methods in CHAPTERS.items():
        if args.only and nb != args.only:
            continue
        for method in methods:
            with tempfile.TemporaryDirectory(prefix="memlib-inductor-") as cache:
                env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_CACHE_DIR": cache}
                cmd = [sys.executable, __file__, "--child", "--only", nb, "--profile", args.profile,
                       "--threads", str(args.threads), "--precision", args.precision, "--repeats", str(args.repeats),
                       "--seconds", str(args.seconds)] + (["--method", method] if method else [])
                got = {}
                for extra in ([], ["--warm-only"]):
                    r = subprocess.run(cmd + extra, env=env, capture_output=True, text=True)
                    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
                    if r.returncode or not lines:
                        got["error"] = (r.stderr.strip().splitlines() or ["no output"])[-1]
                        break
                    got["warm" if extra else "cold"] = json.loads(lines[-1][len("RESULT "):])
            row = {"chapter": nb, "method": method, "profile": args.profile, "precision": args.precision}
            if "error" in got:
                print(json.dumps({**row, "error": got["error"]}), flush=True)
                continue
            c, w = got["cold"], got["warm"]
            steps_total = c["steps_per_epoch"] * c["epochs"]
            eager_t, comp_t = c["eager"] * c["epochs"], c["compiled"] * c["epochs"]
            print(json.dumps({**row, "model": c["model"], "width": c["width"], "batch_size": c["batch_size"],
                              "n_train": c["n_train"], "epochs": c["epochs"], "steps": steps_total,
                              "eager_s_per_epoch": round(c["eager"], 3), "compiled_s_per_epoch": round(c["compiled"], 3),
                              "speedup": round(c["eager"] / c["compiled"], 3),
                              "compile_s_cold": c["compile_s"], "compile_s_warm": w["compile_s"],
                              "ratio": round(eager_t / (comp_t + c["compile_s"]), 3),
                              "ratio_warm": round(eager_t / (comp_t + max(0.0, w["compile_s"])), 3),
                              "repeats": args.repeats, "epochs_per_measurement": c["epochs_per_measurement"],
                              "threads": args.threads, "cpu": cpu_model()}), flush=True)


if __name__ == "__main__":
    main()
