"""Device, numeric precision and CPU threads, each chosen once.

* Device: ``cuda`` > ``mps`` > ``cpu`` unless a device is named.
* Precision (``auto`` / ``fp32`` / ``bf16``): training and evaluation forward passes run under bfloat16 autocast
  where the hardware makes that fast — CUDA GPUs, and CPUs with AMX tiles (oneDNN runs bf16 convolutions and
  matrix products on them; measured 1.7–2.4× over fp32 for ResNet-9 on this project's 2-core machines, and 2.5–3.2×
  with channels_last).  CPUs with only AVX-512 BF16 are *slower* in bf16 than in fp32, so ``auto`` stays fp32
  there.  Weights, optimizer state, losses and every measurement that is not a forward pass for training or
  accuracy (gradient similarity, attacks, pruning statistics) stay in fp32.
* Threads: one intra-op thread per core available to this process, and OpenMP threads that sleep instead of
  spinning while they wait, so another busy process on the machine slows training down by about its share of the
  cores instead of 3–7× (spinning threads oversubscribe).  ``OMP_WAIT_POLICY`` must be set before the OpenMP
  runtime starts, so :mod:`memlib` sets it on import when the user has not (see ``memlib/__init__.py``).
"""
from __future__ import annotations

import functools
import os
from contextlib import nullcontext

import torch

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
    """Whether the CPU has AMX bf16 tiles (the instructions that make CPU bf16 fast)."""
    f = cpu_flags()
    return "amx_bf16" in f and "amx_tile" in f


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``fp32`` or ``bf16``: what ``precision`` means on ``device`` (``auto``: bf16 on CUDA and AMX CPUs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    dev = torch.device(device)
    if precision != "auto":
        return precision
    if dev.type == "cuda":
        return "bf16"
    if dev.type == "cpu" and cpu_has_amx():
        return "bf16"
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


class ThreadsError(ValueError):
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
    """Set torch's intra-op threads to ``threads`` (default: :func:`planned_threads`); returns the number set."""
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
