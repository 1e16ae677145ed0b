"""Where an experiment's parts run: in this process (``local``, the default) or on a Ray cluster (``ray``).

An experiment splits into independent parts (seeds, methods, windows, datasets); each part is computed by a
picklable function ``fn(cfg, key) -> Result`` of the resolved :class:`~memlib.config.Config` and the part's key
(a small dict such as ``{"seed": 1}``).  :func:`memlib.experiments.base.run_parts` looks every part up in the
results store, hands the missing ones to an executor, and the *driver* (this process) stores each result as it
arrives, so workers need no shared filesystem and an interrupted sweep resumes where it stopped.

Choosing the executor, most specific first: :func:`use` (a context manager, e.g. around ``exp.run(cfg)``), then
``$MEMLIB_EXECUTOR`` (``local`` | ``ray``; the CLI's ``--executor`` sets it so that notebook kernels inherit it).
The Ray executor connects to ``$MEMLIB_RAY_ADDRESS`` (the CLI's ``--address``), else Ray's own ``$RAY_ADDRESS``,
else starts a private local Ray instance (one CPU per core, no dashboard).  Resources per part:
``$MEMLIB_RAY_CPUS_PER_PART`` (default 1; a Ray worker runs torch on that many threads) and
``$MEMLIB_RAY_GPUS_PER_PART`` (fractional values let several small parts share a GPU; default 1 on a cluster
with GPUs unless the config says ``device='cpu'``, else 0).

Faults: a worker that dies (killed, out of memory, node lost) is retried up to ``$MEMLIB_RAY_MAX_RETRIES``
times (default 3); a part that raises is not retried, it is reported with its error while the other parts
still run and are stored, and then :class:`PartsFailed` lists every failed part.  Ctrl-C (or
:func:`cancel_all` from another thread) cancels the outstanding tasks.  The local executor stops at the first
error (parts finished before it are stored), which is what one wants while debugging in a notebook.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from tqdm.std import tqdm

from .config import Config, ConfigError
from .device import THREADS_ENV, configure_threads
from .result import Result

EXECUTORS = ("local", "ray")
EXECUTOR_ENV = "MEMLIB_EXECUTOR"
ADDRESS_ENV = "MEMLIB_RAY_ADDRESS"
CPUS_ENV = "MEMLIB_RAY_CPUS_PER_PART"
GPUS_ENV = "MEMLIB_RAY_GPUS_PER_PART"
RETRIES_ENV = "MEMLIB_RAY_MAX_RETRIES"
SHIP_CODE_ENV = "MEMLIB_RAY_SHIP_CODE"
CHECK_RESOURCES_ENV = "MEMLIB_RAY_CHECK_RESOURCES"

PartFn = Callable[[Config, dict], Result]
# on_done(index, produce): store the part ``index``; ``produce()`` returns its Result (computing it, for the
# local executor, so that the store times the computation).
OnDone = Callable[[int, Callable[[], Result]], None]


@dataclass(frozen=True)
class PartFailure:
    key: dict
    error: str          # one line: exception type and message
    details: str = ""   # the remote traceback, where there is one


class PartsFailed(RuntimeError):
    """Some parts failed for good; every other part has been stored (rerunning retries only the failed ones)."""

    def __init__(self, kind: str, failures: list[PartFailure], total: int):
        self.kind, self.failures, self.total = kind, failures, total
        lines = "\n".join(f"  {f.key}: {f.error}" for f in failures)
        super().__init__(f"{len(failures)} of {total} parts of {kind} failed (the other parts are stored; rerun to "
                         f"retry only the failed ones):\n{lines}")


class Cancelled(KeyboardInterrupt):
    """Raised in a thread running parts when :func:`cancel_all` was called (e.g. Ctrl-C in a sweep)."""


def _float_env(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"${name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"${name} must be >= 0, got {raw!r}")
    return value


# ----------------------------------------------------------------------------- local

class LocalExecutor:
    """Today's loop: the parts one after another in this process."""

    name = "local"

    def run(self, fn: PartFn, cfg: Config, keys: list[dict], on_done: OnDone, kind: str,
            bar: tqdm) -> list[PartFailure]:
        for i, key in enumerate(keys):
            configure_threads()  # memlib's one thread policy, set once per part (memlib.device)
            on_done(i, lambda key=key: fn(cfg, key))
            bar.update()
        return []


# ----------------------------------------------------------------------------- ray

_cancel = threading.Event()
_connect_lock = threading.Lock()
_remote_fn = None
_worker_fingerprint: str | None = None


def cancel_all() -> None:
    """Ask every running :class:`RayExecutor` loop (in any thread) to cancel its outstanding tasks."""
    _cancel.set()


def reset_cancel() -> None:
    _cancel.clear()


def _fingerprint() -> str:
    global _worker_fingerprint
    if _worker_fingerprint is None:
        from .keys import source_fingerprint

        _worker_fingerprint = source_fingerprint()
    return _worker_fingerprint


def _run_part(fn: PartFn, cfg: Config, key: dict) -> tuple[Result, str]:
    """What a Ray worker runs: one part, on as many torch threads as CPUs were given to the task."""
    import ray

    from .store import provenance

    ctx = ray.get_runtime_context()
    cpus = ctx.get_assigned_resources().get("CPU")
    if cpus:
        os.environ[THREADS_ENV] = str(max(1, int(cpus)))  # memlib's thread policy (memlib.device) reads it
    configure_threads()
    t0 = time.perf_counter()
    result = fn(cfg, key)
    result.provenance = {**provenance(), **result.provenance, "executor": "ray",
                         "compute_seconds": round(time.perf_counter() - t0, 3), "ray_node_id": ctx.get_node_id()}
    return result, _fingerprint()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("the 'ray' executor needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.9')") from None
    return ray


class RayExecutor:
    """Parts as Ray tasks; results come back to the driver, which stores them."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float | None = None, num_gpus: float | None = None,
                 max_retries: int | None = None):
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        # Parts run on as many torch threads as CPUs per task; the results store keys on that count
        # (memlib.device.planned_threads), so the driver's lookups must name the same number as the workers.
        cpus = num_cpus if num_cpus is not None else _float_env(CPUS_ENV, 1.0)
        os.environ.setdefault(THREADS_ENV, str(max(1, int(cpus))))

    # connection ---------------------------------------------------------------------------------------------
    def connect(self):
        ray = _import_ray()
        with _connect_lock:  # grid points run in threads: one ray.init per process
            if not ray.is_initialized():
                self._init(ray)
        return ray

    def _address(self) -> tuple[str | None, str]:
        """The cluster address and where it came from (for error messages)."""
        if self.address:
            return self.address, "--address"
        for env in (ADDRESS_ENV, "RAY_ADDRESS"):
            if os.environ.get(env):
                return os.environ[env], f"${env}"
        return None, ""

    def _init(self, ray) -> None:
        address, source = self._address()
        if address:
            kw: dict[str, Any] = {}
            if os.environ.get(SHIP_CODE_ENV, "1") != "0":
                # The workers import the driver's memlib, so that stored results match the driver's code.
                from .keys import PACKAGE_DIR

                kw["runtime_env"] = {"py_modules": [str(PACKAGE_DIR)]}
            if address.startswith("ray://"):
                _check_ray_client()
            check_reachable(address, source)  # a dead address fails in seconds, not after minutes of retries
            with _stderr_held() as held:  # Ray's C++ core logs a line per retry: shown only if the join works
                try:
                    ray.init(address=address, **kw)
                except Exception as e:  # noqa: BLE001 - each of Ray's connection errors becomes one actionable line
                    held.drop()
                    raise ConfigError(_connect_error(e, address, source, held.read())) from None
        else:
            # "local": a private instance, never another user's `ray start` on the same machine.
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False)
        self._check_fits(ray, self.num_cpus if self.num_cpus is not None else _float_env(CPUS_ENV, 1.0),
                         self.num_gpus if self.num_gpus is not None else _float_env(GPUS_ENV, None) or 0.0)

    def _check_fits(self, ray, cpus: float, gpus: float) -> None:
        """Raise ConfigError when no node of the cluster could ever run a part of ``cpus`` CPUs and ``gpus``
        GPUs (Ray would wait forever); ``$MEMLIB_RAY_CHECK_RESOURCES=0`` skips this (an autoscaling cluster that
        adds larger nodes on demand)."""
        if os.environ.get(CHECK_RESOURCES_ENV, "1") == "0":
            return
        largest = largest_node(ray.nodes())
        address = self._address()[0] or "the private local Ray instance"
        for what, asked, flag, env in (("CPU", cpus, "--cpus-per-part", CPUS_ENV),
                                       ("GPU", gpus, "--gpus-per-part", GPUS_ENV)):
            if asked and asked > largest[what]:
                has = f"has {largest[what]:g} {what}s" if largest[what] else f"has no {what}"
                raise ConfigError(f"a part asks for {asked:g} {what}s ({flag} or ${env}) but the largest node of "
                                  f"{address} {has}: ask for at most {largest[what]:g}, or set "
                                  f"${CHECK_RESOURCES_ENV}=0 if the cluster adds larger nodes on demand")

    def share_with_children(self) -> str:
        """Connect (starting the private local instance if there is no address) and put its address in the
        environment, so that child processes, e.g. the notebook kernel of ``memlib run``, join this instance
        instead of each starting (and, at exit, tearing down) their own."""
        ray = self.connect()
        address = ray.get_runtime_context().gcs_address
        if not (self.address or os.environ.get(ADDRESS_ENV) or os.environ.get("RAY_ADDRESS")):
            os.environ[SHIP_CODE_ENV] = "0"  # a local instance: the workers import the same files already
        os.environ[ADDRESS_ENV] = address
        return address

    def resources(self, ray, cfg: Config) -> dict:
        cpus = self.num_cpus if self.num_cpus is not None else _float_env(CPUS_ENV, 1.0)
        gpus = self.num_gpus if self.num_gpus is not None else _float_env(GPUS_ENV, None)
        if gpus is None:
            has_gpu = ray.cluster_resources().get("GPU", 0) > 0
            gpus = 1.0 if has_gpu and cfg.device != "cpu" else 0.0
        self._check_fits(ray, cpus, gpus)
        return {"num_cpus": cpus, "num_gpus": gpus}

    # running ------------------------------------------------------------------------------------------------
    def run(self, fn: PartFn, cfg: Config, keys: list[dict], on_done: OnDone, kind: str,
            bar: tqdm) -> list[PartFailure]:
        global _remote_fn
        ray = self.connect()
        from ray.exceptions import RayError, RayTaskError

        with _connect_lock:
            if _remote_fn is None:
                _remote_fn = ray.remote(_run_part)
        retries = self.max_retries if self.max_retries is not None else int(_float_env(RETRIES_ENV, 3))
        opts = dict(self.resources(ray, cfg), max_retries=retries, retry_exceptions=False)
        fn_ref, cfg_ref = ray.put(fn), ray.put(cfg)  # shipped once, shared by every task
        index = {_remote_fn.options(name=f"{kind} {k}", **opts).remote(fn_ref, cfg_ref, k): i
                 for i, k in enumerate(keys)}
        pending = list(index)
        failures: list[PartFailure] = []
        driver_fp = _fingerprint()
        try:
            while pending:
                if _cancel.is_set():
                    raise Cancelled()
                ready, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                for ref in ready:
                    i = index[ref]
                    failure = None
                    try:
                        result, worker_fp = ray.get(ref)
                    except RayTaskError as e:
                        cause = getattr(e, "cause", None)
                        msg = f"{type(cause).__name__}: {cause}" if cause is not None else str(e).splitlines()[-1]
                        failure = PartFailure(keys[i], msg, str(e))
                    except RayError as e:  # worker died more often than max_retries, cancelled, node lost, ...
                        failure = PartFailure(keys[i], f"{type(e).__name__}: {str(e).splitlines()[0]}", str(e))
                    else:
                        if worker_fp != driver_fp:
                            failure = PartFailure(keys[i], (
                                f"the worker runs other memlib code (source fingerprint {worker_fp}, the driver's "
                                f"is {driver_fp}); install the same memlib on every node, or leave "
                                f"${SHIP_CODE_ENV} unset so the driver ships its code"))
                        else:
                            on_done(i, lambda r=result: r)
                    if failure is not None:
                        failures.append(failure)
                        print(f"part {kind} {keys[i]} failed: {failure.error}", file=sys.stderr)
                    bar.update()
        except BaseException:  # Ctrl-C, cancel_all(), or a failure to store: stop the outstanding tasks
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return failures


# ----------------------------------------------------------------------------- connecting

def largest_node(nodes: list[dict]) -> dict[str, float]:
    """The most CPUs and GPUs any one alive node of ``ray.nodes()`` has."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    return {r: max((float(n.get(r, 0)) for n in alive), default=0.0) for r in ("CPU", "GPU")}


def _check_ray_client() -> None:
    try:
        from ray._private.utils import get_ray_client_dependency_error
    except ImportError:  # another Ray version: ray.init reports it
        return
    if get_ray_client_dependency_error() is not None:
        raise ConfigError("a ray:// address connects through Ray Client, which needs: pip install 'ray[client]' "
                          "(or give the head's GCS address host:6379 instead)")


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + empty SETTINGS


def check_reachable(address: str, source: str = "--address", timeout: float = 5.0) -> None:
    """Raise ConfigError (one line) unless ``host:port`` (or ``ray://host:port``) accepts a connection within
    ``timeout`` seconds and answers as a gRPC server does (Ray's head and Ray Client both speak gRPC); ``auto`` and
    ``local`` are left to Ray.  Without this check Ray retries a dead address for minutes."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, _, port_text = hostport.rstrip("/").rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"Ray address {address!r} (from {source}) must look like host:port, e.g. 10.0.0.5:6379 or "
                          "ray://host:10001") from None
    hint = (f"start the cluster (ray start --head --port={port}) or fix {source}; without an address memlib "
            "starts a private local Ray instance")
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=timeout) as sock:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return  # a TLS handshake is Ray's business
            sock.settimeout(timeout)
            sock.sendall(_HTTP2_PREFACE)
            reply = sock.recv(9)
    except socket.gaierror as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address} (from {source}): unknown host {host!r} "
                          f"({e.strerror or e}); {hint}") from None
    except OSError as e:
        why = "no answer within {:g} s".format(timeout) if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise ConfigError(f"cannot reach the Ray cluster at {address} (from {source}): {why}; {hint}") from None
    if len(reply) < 4 or reply[3] != 4:  # a gRPC server answers the HTTP/2 preface with a SETTINGS frame
        raise ConfigError(f"{address} (from {source}) answers, but not as a Ray cluster (no gRPC reply); check the "
                          "port: `ray start --head` prints the address to use (default port 6379; Ray Client: "
                          "ray://host:10001)")


class _stderr_held:
    """Hold what is written to file descriptor 2 (also by C++ code) inside the block; write it out at the end
    unless :meth:`drop` was called; :meth:`read` returns what was held so far."""

    def __enter__(self):
        import tempfile

        self.text, self._keep = "", True
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def drop(self) -> None:
        self._keep = False

    def read(self) -> str:
        """What was held so far."""
        sys.stderr.flush()
        self._file.seek(0)
        return self._file.read().decode(errors="replace")

    def __exit__(self, *exc):
        sys.stderr.flush()
        self.text = self.read()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.close()
        if self._keep and self.text:
            sys.stderr.write(self.text)
            sys.stderr.flush()
        return False


def _connect_error(e: Exception, address: str, source: str, log: str = "") -> str:
    """One line for each way ``ray.init(address=...)`` fails (``log``: what Ray printed while it tried)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    token = ("RAY_AUTH_TOKEN=... or the file ~/.ray/auth_token (`ray get-auth-token` on the head node prints it)")
    token_hint = f"if the cluster was started with token authentication, set RAY_AUTH_MODE=token and {token}"
    if type(e).__name__ == "AuthenticationError":
        return f"the Ray cluster at {address} needs its authentication token ({getattr(e, 'message', text)}): set {token}"
    if "Could not find any running Ray instance" in text:
        return (f"{source}={address}: no Ray cluster is running on this machine; start one (ray start --head) or "
                "unset it so that memlib starts a private local Ray instance")
    if "ray[client]" in text:
        return "a ray:// address connects through Ray Client, which needs: pip install 'ray[client]'"
    if "Unauthenticated" in log or "InvalidAuthToken" in log:
        mode = os.environ.get("RAY_AUTH_MODE")
        return (f"the Ray cluster at {address} (from {source}) refused this driver's authentication token "
                + ("(RAY_AUTH_MODE is not 'token' here): set RAY_AUTH_MODE=token and " if mode != "token"
                   else "(missing or not the cluster's): set ") + token)
    if isinstance(e, ConnectionError):
        return f"could not join the Ray cluster at {address} (from {source}): {text}; {token_hint}"
    return f"could not join the Ray cluster at {address} (from {source}): {type(e).__name__}: {text}"


# ----------------------------------------------------------------------------- choosing one

_override: contextvars.ContextVar = contextvars.ContextVar("memlib_executor", default=None)
_ray_executors: dict[str | None, RayExecutor] = {}


def get_executor(name: str | None = None, address: str | None = None):
    """The executor called ``name`` (default ``$MEMLIB_EXECUTOR``, else ``local``)."""
    name = (name or os.environ.get(EXECUTOR_ENV) or "local").strip().lower()
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r} (from --executor or ${EXECUTOR_ENV}); choose one of: "
                          f"{', '.join(EXECUTORS)}")
    if name == "local":
        return LocalExecutor()
    _import_ray()  # a clear error now rather than when the first part is due
    if address not in _ray_executors:
        _ray_executors[address] = RayExecutor(address)
    return _ray_executors[address]


def current():
    """The executor that :func:`memlib.experiments.base.run_parts` uses now."""
    return _override.get() or get_executor()


@contextlib.contextmanager
def use(executor) -> Iterator[Any]:
    """Run the parts of experiments inside the block with ``executor`` (an executor or its name)."""
    if isinstance(executor, str):
        executor = get_executor(executor)
    token = _override.set(executor)
    try:
        yield executor
    finally:
        _override.reset(token)
