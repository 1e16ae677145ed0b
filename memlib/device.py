"""Device, numeric precision and CPU threads, each chosen once.

* Device: ``cuda`` > ``mps`` > ``cpu`` unless a device is named.
* Precision (``auto`` / ``fp32`` / ``bf16``): training and evaluation forward passes run under bfloat16 autocast
  where that is faster on *this* machine for *this* training.  On CUDA that is always so (no probe).  On a CPU it
  depends on the chip in ways its feature flags do not tell (bf16 ran 2.2-2.8x faster than fp32 with AMX or
  AVX-512 BF16 at 2 threads, 4x slower on an AVX-512 Xeon without either, 11-16x slower with AVX2 only), and on
  the thread count and the shape (on one AVX-512 BF16 Xeon bf16 was 1.78x faster at 2 threads and 0.74x at 1).
  So ``auto`` times SGD steps of the training's own shape (:class:`Workload`: model, width, input, batch size) in
  both precisions at the thread count the training runs at (:func:`cpu_precision_probe`, a second or three) and
  takes bf16 only when it is at least :data:`BF16_MIN_SPEEDUP` times faster.  The verdict is cached per CPU
  model, CPU flags, torch version, thread count and shape in ``precision.json`` under :func:`cache_dir`, and the
  verdicts a process used go into every result's provenance (:func:`precision_provenance`).
  ``$MEMLIB_PRECISION`` (``auto``, ``fp32`` or ``bf16``) replaces that choice for every ``auto`` in the process
  (a config's explicit ``fp32``/``bf16`` is kept); any other value is one error (:class:`PrecisionError`).
  Weights, optimizer state, losses and every measurement that is not a forward pass for training or accuracy
  (gradient similarity, attacks, pruning statistics) stay in fp32; claim 1, whose verdict reads the gradients of
  the training forward pass itself, trains in fp32 under ``auto``.
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
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .catalog import dataset as catalog_dataset

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
# bf16 must beat fp32 by this factor in the probe: a margin over timing noise that still keeps auto's pick within
# 0.95x of the faster precision (1 / 1.05 = 0.952) where the probe measures right.
BF16_MIN_SPEEDUP = 1.05
_probes: dict[str, dict] = {}  # this process's probe verdicts, once read or measured, by cache key
_used: dict[str, dict] = {}  # the verdicts this process's ``auto`` resolutions used (its provenance)


def cache_dir() -> Path:
    """Where memlib keeps small per-machine facts: ``$MEMLIB_CACHE``, else ``~/.cache/memlib``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "memlib").expanduser()


@functools.lru_cache(maxsize=None)
def machine_key() -> str:
    """What the precision verdict depends on: CPU model, a hash of the CPU flags, torch version."""
    flags = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    return f"{cpu_model()} | flags {flags} | torch {torch.__version__}"


@dataclass(frozen=True)
class Workload:
    """A training shape, what the precision probe measures: model (``resnet9``, ``smallcnn``, ``mlp``), width,
    input image shape (C, H, W), classes and batch size."""

    model: str
    width: int
    image_shape: tuple[int, int, int]
    classes: int
    batch: int

    @property
    def key(self) -> str:
        c, h, w = self.image_shape
        return f"{self.model} w{self.width} {c}x{h}x{w} c{self.classes} b{self.batch}"


# Where no workload is named: a width-16 ResNet-9 on 28x28x1 at batch 32 (claim 2's quick shape).
DEFAULT_WORKLOAD = Workload("resnet9", 16, (1, 28, 28), 10, 32)


def workload_of_params(params) -> Workload | None:
    """The training shape a configuration's values name (``model``, ``width``, ``batch_size``, ``dataset``), or
    None where they do not name one (a value missing or unknown)."""
    try:
        info = catalog_dataset(str(params["dataset"]))
        return Workload(str(params["model"]), int(params["width"]), tuple(info.image_shape), info.num_classes,
                        int(params["batch_size"]))
    except (KeyError, TypeError, ValueError):
        return None


def _probe_net(wl: Workload) -> nn.Module:
    """The layer shapes of :mod:`memlib.models`' network ``wl.model`` at ``wl.width`` (without dropout sites and
    without the ``idx`` argument): what the probe times.  An unknown model name times a ResNet-9."""
    c, h, w = wl.image_shape
    k = wl.width

    def cbr(c_in, c_out, ks=3, stride=1, pad=None):
        return [nn.Conv2d(c_in, c_out, ks, stride, ks // 2 if pad is None else pad, bias=False),
                nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    class Res(nn.Module):
        def __init__(self, ch):
            super().__init__()
            self.f = nn.Sequential(*cbr(ch, ch), *cbr(ch, ch))

        def forward(self, x):
            return x + self.f(x)

    if wl.model == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, k), nn.ReLU(), nn.Linear(k, wl.classes))
    if wl.model == "smallcnn":
        return nn.Sequential(nn.Conv2d(c, k, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                             nn.Conv2d(k, 2 * k, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(4),
                             nn.Flatten(), nn.Linear(2 * k * 16, wl.classes))
    return nn.Sequential(*cbr(c, k), *cbr(k, 2 * k, 5, 2, 2), Res(2 * k), *cbr(2 * k, 4 * k), nn.MaxPool2d(2),
                         Res(4 * k), *cbr(4 * k, 2 * k, pad=0), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(2 * k, wl.classes, bias=False))


def measure_cpu_precision(workload: Workload | None = None, threads: int | None = None, budget_s: float = 3.0,
                          rounds: int = 8, round_s: float = 0.1) -> dict:
    """Time fp32 against bf16 autocast on this CPU: SGD steps (forward, backward, update) of ``workload``'s network
    (default :data:`DEFAULT_WORKLOAD`) at its batch size, channels_last for conv nets, on ``threads`` torch threads
    (default: the current count; set for the measurement only).

    After a warm-up, rounds of ``steps`` steps (enough for about ``round_s`` seconds) of each precision alternate
    (fp32, bf16, fp32, ...) for up to ``rounds`` rounds; the fastest round of each counts (the least disturbed by
    other work on the machine).  It stops early once the verdict is clear (one precision at least twice as fast as
    the threshold asks, after two rounds) or, after three rounds, once ``budget_s`` is spent.  Global random state
    is left untouched.
    """
    wl = workload or DEFAULT_WORKLOAD
    before = torch.get_num_threads()
    threads = int(threads or before)
    cpu = torch.device("cpu")
    conv = wl.model != "mlp"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = _probe_net(wl)
        if conv:
            net = net.to(memory_format=torch.channels_last)
        x = torch.randn(wl.batch, *wl.image_shape)
        if conv:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, wl.classes, (wl.batch,))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def run(prec: str, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            with autocast(cpu, prec):
                out = net(x)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(out.float(), y).backward()
            opt.step()
        return (time.perf_counter() - t0) / n

    if threads != before:
        torch.set_num_threads(threads)
    try:
        t_start = time.perf_counter()
        run("fp32", 1), run("bf16", 1)
        first = min(run("fp32", 1), run("bf16", 1))
        steps = max(1, min(200, round(round_s / max(first, 1e-6))))
        best = {"fp32": float("inf"), "bf16": float("inf")}
        for r in range(rounds):
            for prec in best:
                best[prec] = min(best[prec], run(prec, steps))
            speedup = best["fp32"] / best["bf16"]
            decisive = r >= 1 and (speedup < BF16_MIN_SPEEDUP / 2 or speedup > 2 * BF16_MIN_SPEEDUP)
            if decisive or (r >= 2 and time.perf_counter() - t_start > budget_s):
                break
    finally:
        if threads != before:
            torch.set_num_threads(before)
    return {"choice": "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32", "bf16_speedup": round(speedup, 3),
            "fp32_ms_per_step": round(1e3 * best["fp32"], 3), "bf16_ms_per_step": round(1e3 * best["bf16"], 3),
            "workload": wl.key, "threads": threads, "steps_per_round": steps, "rounds": r + 1,
            "probe_seconds": round(time.perf_counter() - t_start, 2), "machine": machine_key(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # missing or unreadable: measure again (and rewrite it)


def probe_key(workload: Workload | None = None, threads: int | None = None) -> str:
    """The cache key of a precision verdict: :func:`machine_key`, thread count (default: torch's current one) and
    the workload's shape."""
    wl = workload or DEFAULT_WORKLOAD
    return f"{machine_key()} | threads {int(threads or torch.get_num_threads())} | {wl.key}"


def cpu_precision_probe(workload: Workload | None = None, threads: int | None = None, refresh: bool = False) -> dict:
    """This CPU's precision verdict for ``workload`` (default :data:`DEFAULT_WORKLOAD`) at ``threads`` torch
    threads (default: the current count, which the executors set per part): measured once per machine key, thread
    count and shape (:func:`measure_cpu_precision`, a second or three) and cached in ``precision.json`` under
    :func:`cache_dir`; within a process, read once.  ``refresh`` measures again."""
    wl = workload if isinstance(workload, Workload) else DEFAULT_WORKLOAD
    threads = int(threads or torch.get_num_threads())
    key = probe_key(wl, threads)
    if key in _probes and not refresh:
        return _probes[key]
    path = cache_dir() / "precision.json"
    found = None if refresh else _read_cache(path).get(key)
    if isinstance(found, dict) and found.get("choice") in ("fp32", "bf16"):
        _probes[key] = {**found, "cached": True}
        return _probes[key]
    _probes[key] = {**measure_cpu_precision(wl, threads), "cached": False}
    try:  # a cache we cannot write costs one probe per process, nothing else
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache(path)
        data[key] = {k: v for k, v in _probes[key].items() if k != "cached"}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            json.dump(data, f, indent=1)
        os.replace(f.name, path)
    except OSError:
        pass
    return _probes[key]


def precision_provenance() -> dict | None:
    """What this process's ``auto`` resolutions on a CPU used, by workload: each probe's timings and verdict (or
    the ``$MEMLIB_PRECISION`` that replaced it); None if none."""
    return {k: dict(v) for k, v in _used.items()} or None


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


def resolve_precision(precision: str, device: torch.device | str, workload: Workload | None = None,
                      threads: int | None = None) -> str:
    """``fp32`` or ``bf16``: what ``precision`` means for training ``workload`` on ``device``.

    An explicit ``fp32``/``bf16`` is itself.  ``auto`` is ``$MEMLIB_PRECISION`` where that names a precision
    (:func:`precision_override`), else bf16 on CUDA, on a CPU whatever :func:`cpu_precision_probe` measured to be
    faster for ``workload`` (default :data:`DEFAULT_WORKLOAD`) at ``threads`` (default: torch's current count),
    and fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    dev = torch.device(device)
    if precision != "auto":
        return precision
    forced = precision_override()
    if forced is not None:
        if dev.type == "cpu":
            _used[PRECISION_ENV] = {"choice": forced}
        return forced
    if dev.type == "cuda":
        return "bf16"
    if dev.type == "cpu":
        wl = workload if isinstance(workload, Workload) else DEFAULT_WORKLOAD
        probe = cpu_precision_probe(wl) if threads is None else cpu_precision_probe(wl, threads)
        _used[wl.key] = dict(probe)
        return probe["choice"]
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
