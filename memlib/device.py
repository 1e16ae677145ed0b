"""Device, numeric precision and CPU threads, each chosen once.

* Device: ``cuda`` > ``mps`` > ``cpu`` unless a device is named.
* Precision (``auto`` / ``fp32`` / ``bf16``): training and evaluation forward passes run under bfloat16 autocast
  where that is faster on *this* machine.  On CUDA that is always so (no probe).  On a CPU it depends on the chip
  in ways its feature flags do not tell (bf16 ran 2.2-2.8x faster than fp32 with AMX or AVX-512 BF16, 4x slower
  on an AVX-512 Xeon without either, 11-16x slower with AVX2 only), so ``auto`` times a small ResNet-9-like
  convolutional net's forward and backward pass in both (:func:`cpu_precision_probe`, about a second) and takes
  bf16 only when it is at least :data:`BF16_MIN_SPEEDUP` times faster.  ``$MEMLIB_PRECISION`` (``auto``, ``fp32``
  or ``bf16``) replaces that choice for every ``auto`` in the process (a config's explicit ``fp32``/``bf16`` is
  kept); any other value is one error (:class:`PrecisionError`).  The verdict is cached per CPU model, CPU
  flags and torch version in ``precision.json`` under :func:`cache_dir`, and its numbers go into every result's
  provenance (:func:`precision_provenance`).  Weights, optimizer state, losses and every measurement that is not
  a forward pass for training or accuracy (gradient similarity, attacks, pruning statistics) stay in fp32; claim
  1, whose verdict reads the gradients of the training forward pass itself, trains in fp32 under ``auto``.
* Threads: one intra-op thread per core available to this process (or ``$MEMLIB_THREADS``), set once per part
  by the executors (:func:`configure_threads`), never by a training loop; and OpenMP threads that sleep instead of
  spinning while they wait, so another busy process on the machine slows training down by about its share of the
  cores instead of 3–7× (spinning threads oversubscribe).  ``OMP_WAIT_POLICY`` must be set before the OpenMP
  runtime starts, so :mod:`memlib` sets it on import when the user has not (see ``memlib/__init__.py``).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(name: str = "auto") -> torch.device:
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but no CUDA GPU is visible; use device='auto' or 'cpu'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device='mps' was asked for but MPS is not available; use device='auto' or 'cpu'")
    return torch.device(name)


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where it does not exist)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX bf16 tiles (reported, never used to choose the precision)."""
    f = cpu_flags()
    return "amx_bf16" in f and "amx_tile" in f


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


CACHE_ENV = "MEMLIB_CACHE"
BF16_MIN_SPEEDUP = 1.1  # bf16 must beat fp32 by this factor in the probe (a margin over timing noise)
_probe: dict | None = None  # this process's probe verdict, once read or measured


def cache_dir() -> Path:
    """Where memlib keeps small per-machine facts: ``$MEMLIB_CACHE``, else ``~/.cache/memlib``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "memlib").expanduser()


@functools.lru_cache(maxsize=None)
def machine_key() -> str:
    """What the precision verdict depends on: CPU model, a hash of the CPU flags, torch version."""
    flags = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    return f"{cpu_model()} | flags {flags} | torch {torch.__version__}"


def _probe_net() -> nn.Module:
    """A width-16 ResNet-9's layer shapes in miniature (28x28x1 input): conv-BN-ReLU stages, a strided conv,
    max pooling, a linear head."""
    def cbr(c_in, c_out, k=3, stride=1, pad=1):
        return [nn.Conv2d(c_in, c_out, k, stride, pad, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*cbr(1, 16), *cbr(16, 32, 5, 2, 2), *cbr(32, 32), *cbr(32, 64), nn.MaxPool2d(2),
                         *cbr(64, 32, pad=0), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def measure_cpu_precision(batch: int = 32, steps: int = 1, budget_s: float = 1.5, rounds: int = 6) -> dict:
    """Time fp32 against bf16 autocast on this CPU: forward + backward of :func:`_probe_net`, channels_last.

    After one warm-up step each, ``steps`` steps of each precision alternate (fp32, bf16, fp32, ...) for up to
    ``rounds`` rounds; the fastest round of each counts (the least disturbed by other work on the machine).  It
    stops early once the verdict is clear (one precision at least twice as fast as the threshold asks) or, after
    two rounds, once ``budget_s`` is spent.  Global random state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = _probe_net().to(memory_format=torch.channels_last)
        x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (batch,))

    def run(prec: str, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            with autocast(torch.device("cpu"), prec):
                out = net(x)
            net.zero_grad(set_to_none=True)
            F.cross_entropy(out.float(), y).backward()
        return (time.perf_counter() - t0) / n

    t_start = time.perf_counter()
    run("fp32", 1), run("bf16", 1)
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for r in range(rounds):
        for prec in best:
            best[prec] = min(best[prec], run(prec, steps))
        speedup = best["fp32"] / best["bf16"]
        decisive = speedup < BF16_MIN_SPEEDUP / 2 or speedup > 2 * BF16_MIN_SPEEDUP
        if decisive or (r >= 1 and time.perf_counter() - t_start > budget_s):
            break
    return {"choice": "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32", "bf16_speedup": round(speedup, 3),
            "fp32_ms_per_step": round(1e3 * best["fp32"], 2), "bf16_ms_per_step": round(1e3 * best["bf16"], 2),
            "batch": batch, "threads": torch.get_num_threads(), "rounds": r + 1,
            "probe_seconds": round(time.perf_counter() - t_start, 2), "machine": machine_key(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # missing or unreadable: measure again (and rewrite it)


def cpu_precision_probe(refresh: bool = False) -> dict:
    """This CPU's precision verdict: measured once per machine key (:func:`measure_cpu_precision`) and cached in
    ``precision.json`` under :func:`cache_dir`; within a process, read once.  ``refresh`` measures again."""
    global _probe
    key = machine_key()
    if _probe is not None and _probe.get("machine") == key and not refresh:
        return _probe
    path = cache_dir() / "precision.json"
    found = None if refresh else _read_cache(path).get(key)
    if isinstance(found, dict) and found.get("choice") in ("fp32", "bf16"):
        _probe = {**found, "cached": True}
        return _probe
    _probe = {**measure_cpu_precision(), "cached": False}
    try:  # a cache we cannot write costs one probe per process, nothing else
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache(path)
        data[key] = {k: v for k, v in _probe.items() if k != "cached"}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            json.dump(data, f, indent=1)
        os.replace(f.name, path)
    except OSError:
        pass
    return _probe


def precision_provenance() -> dict | None:
    """The CPU precision probe this process used (its timings and verdict), or None if it used none."""
    return dict(_probe) if _probe is not None else None


PRECISION_ENV = "MEMLIB_PRECISION"


class SettingError(ValueError):
    """A memlib environment variable (``$MEMLIB_THREADS``, ``$MEMLIB_PRECISION``) holds a value memlib cannot use."""


class PrecisionError(SettingError):
    """``$MEMLIB_PRECISION`` is not one of ``auto``, ``fp32``, ``bf16``."""


def precision_override() -> str | None:
    """``fp32`` or ``bf16`` when ``$MEMLIB_PRECISION`` names one (what every ``precision="auto"`` then means),
    None when it is unset, empty or ``auto``; any other value raises :class:`PrecisionError`."""
    env = os.environ.get(PRECISION_ENV, "").strip()
    if env in ("", "auto"):
        return None
    if env not in PRECISIONS:
        raise PrecisionError(f"${PRECISION_ENV} must be one of {', '.join(PRECISIONS)}, got {env!r} (unset it to let "
                             "precision='auto' measure this machine)")
    return env


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``fp32`` or ``bf16``: what ``precision`` means on ``device``.  An explicit ``fp32``/``bf16`` is itself;
    ``auto`` is ``$MEMLIB_PRECISION`` where that names a precision (:func:`precision_override`), else bf16 on
    CUDA, on a CPU whatever :func:`cpu_precision_probe` measured to be faster, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    dev = torch.device(device)
    if precision != "auto":
        return precision
    forced = precision_override()
    if forced is not None:
        return forced
    if dev.type == "cuda":
        return "bf16"
    if dev.type == "cpu":
        return cpu_precision_probe()["choice"]
    return "fp32"


def autocast(device: torch.device, precision: str = "fp32"):
    """bfloat16 autocast on ``device`` when ``precision`` (already resolved) is ``bf16``, else nothing."""
    if precision == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; cgroup quotas are not read)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


THREADS_ENV = "MEMLIB_THREADS"


class ThreadsError(SettingError):
    """``$MEMLIB_THREADS`` is not a positive whole number."""


def planned_threads() -> int:
    """The intra-op threads memlib's training will use: ``$MEMLIB_THREADS`` (set per worker by the Ray executor,
    or by a user running several processes side by side), else the cores available.  The results store keys on it:
    CPU results change with the thread count."""
    env = os.environ.get(THREADS_ENV)
    if not env:
        return available_cores()
    if not env.strip().isdigit() or int(env) < 1:
        raise ThreadsError(f"${THREADS_ENV} must be a whole number of threads, at least 1, got {env!r} (unset it to "
                           "use every core available)")
    return int(env)



def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (default: :func:`planned_threads`); returns the number set.

    memlib's one thread policy: the executors (:mod:`memlib.executor`) call this once before each part, so a
    part trains on the count the results store keys on; the training loops never set threads themselves.
    """
    threads = max(1, int(planned_threads() if threads is None else threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def describe(device: torch.device, precision: str | None = None) -> str:
    if device.type == "cuda":
        s = f"cuda ({torch.cuda.get_device_name(device)})"
    elif device.type == "cpu":
        s = f"cpu ({torch.get_num_threads()} threads{', AMX' if cpu_has_amx() else ''})"
    else:
        s = str(device)
    return f"{s}, {precision}" if precision else s
