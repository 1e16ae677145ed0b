"""What a stored result is keyed by: ``key = sha256(kind, params, environment, source)[:20]``
(:func:`result_key`), where

* ``params``: the resolved config's hashed values (``Config.hashed_dict()``: every parameter except the
  ``hashed=False`` ones such as ``progress``), including ``precision`` when a config has it;
* ``environment``: the torch version, the device kind the run computes on (``cpu``, ``mps`` or ``cuda:<GPU
  name>``, from the config's ``device``), the thread count planned for it (:func:`memlib.device.planned_threads`:
  CPU results change with the thread count) and the precision it computes in (``auto`` resolved on this machine,
  bf16 or fp32: :func:`memlib.device.resolve_precision`), plus the store format :data:`FORMAT`;
* ``source``: a hash of memlib's *computing* modules only -- git-tracked ``*.py`` files when the package is a
  git checkout (else every real ``*.py`` file, skipping hidden folders such as ``.ipynb_checkpoints``),
  leaving out :data:`NOT_COMPUTING` (plots, notebook glue, command line, summary page, result bundles, sweeps,
  calibration records, the kernel log, verdicts in ``claims/`` and the statistics they decide with (``measure``) --
  verdicts are recomputed from stored results -- the store, :class:`~memlib.result.Result` and this module, whose
  format is :data:`FORMAT`), each hashed as its syntax tree without docstrings (:func:`code_of`).  Editing a plot, a
  verdict, a statistic, a comment or a docstring keeps every result; editing the code of a model, a probe or the
  training loop reruns.  Of the modules left out, a computing module imports only the storage (:data:`STORAGE`).

:class:`memlib.store.Store` computes the environment once per device and precision and the source hash once.
"""
from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import threading
from pathlib import Path
from typing import Any, Mapping

from .jsonio import jsonable

PACKAGE_DIR = Path(__file__).resolve().parent
FORMAT = 3  # bump when the layout or the serialization of stored results changes: every key changes with it
# Modules (relative to the package) that do not change computed numbers: outside the source fingerprint.
NOT_COMPUTING = ("plots/", "claims/", "notebook.py", "cli.py", "summary.py", "__main__.py", "store.py", "keys.py",
                 "result.py", "bundle.py", "evidence.py", "calibration.py", "sweep.py", "kernel.py", "jsonio.py",
                 "plan.py", "plans.py", "staged.py", "verdict_map.py", "measure.py")
# Of these, the only ones a computing module may import: storing a result does not change it.  Any other import would
# let an edit change what is computed without changing the key (tests/test_layers.py checks the import graph).
STORAGE = ("store.py", "result.py", "keys.py", "jsonio.py")


def result_key(kind: str, params: Mapping[str, Any], env: Mapping[str, Any], source: str) -> str:
    """The key of the result of ``kind`` at ``params`` computed in ``env`` (:func:`environment`) by the code of
    fingerprint ``source`` (:func:`source_fingerprint`): 20 hex digits."""
    blob = json.dumps({"kind": kind, "params": jsonable(dict(params)), "env": dict(env), "source": source},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _source_files(package_dir: Path) -> list[Path]:
    """The package's ``*.py`` files: git-tracked ones in a git checkout, else real files outside hidden dirs."""
    files: list[Path] | None = None
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "."], cwd=package_dir, capture_output=True,
                             timeout=10)
        if out.returncode == 0 and out.stdout:
            files = [package_dir / f for f in out.stdout.decode().split("\0") if f.endswith(".py")]
    except (OSError, subprocess.SubprocessError):
        pass
    if files is None:
        files = [p for p in package_dir.rglob("*.py")
                 if not any(part.startswith(".") or part == "__pycache__"
                            for part in p.relative_to(package_dir).parts[:-1])]
    return sorted(p for p in files if p.is_file())


def is_computing(rel: str) -> bool:
    """Whether the module at ``rel`` (relative to the package, e.g. 'claims/early_learning.py') is in the key."""
    return not any(rel == x or (x.endswith("/") and rel.startswith(x)) for x in NOT_COMPUTING)


_AST_LOCK = threading.Lock()  # CPython 3.11's parser is not safe to run in several threads at once (sweeps do)


def code_of(source: bytes) -> bytes:
    """What a module computes, without its comments, docstrings and layout: the dump of its syntax tree with the
    docstrings removed (a file that does not parse is taken as it is).  Editing documentation keeps results."""
    with _AST_LOCK:
        return _code_of(source)


def _code_of(source: bytes) -> bytes:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False).encode()


def _computing_code(package_dir: Path) -> list[tuple[str, bytes]]:
    """``(path relative to the package, code)`` of each computing module, in a fixed order."""
    out = []
    for p in _source_files(package_dir):
        rel = p.relative_to(package_dir).as_posix()
        if is_computing(rel):
            out.append((rel, code_of(p.read_bytes())))
    return out


def source_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """Hash of the code of memlib's computing modules (see the module docstring): a change there invalidates
    results; a change of comments or docstrings does not (:func:`code_of`)."""
    h = hashlib.sha256()
    for rel, code in _computing_code(package_dir):
        h.update(rel.encode() + b"\0")
        h.update(code)
    return h.hexdigest()[:16]


def module_hashes(package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """Each computing module and a hash of its code (what :func:`source_fingerprint` combines), so that a result
    exported with them can later name the modules that changed since."""
    return {rel: hashlib.sha256(code).hexdigest()[:16] for rel, code in _computing_code(package_dir)}


def device_kind(name: Any = "auto") -> str:
    """What a config's ``device`` computes on: ``cpu``, ``mps`` or ``cuda:<GPU name>``."""
    import torch

    from .device import pick_device

    try:
        dev = pick_device(name if isinstance(name, str) else "auto")
    except RuntimeError:  # unavailable device: validation reports it; the key only needs to differ
        return f"unavailable:{name}"
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return dev.type


def resolved_precision(params: Mapping[str, Any]) -> str | None:
    """What a config's ``precision`` computes in on its device (``auto`` resolved: :func:`memlib.device.
    resolve_precision`, on a CPU by its cached timed probe), or None for a config without one."""
    if "precision" not in params:
        return None
    from .device import pick_device, planned_threads, resolve_precision, workload_of_params

    try:  # the shape and thread count the training resolves `auto` for, so that the key says what it computed in
        return resolve_precision(str(params["precision"]), pick_device(str(params.get("device", "auto"))),
                                 workload_of_params(params), threads=planned_threads())
    except (RuntimeError, ValueError):  # unavailable device or unknown precision: validation reports it
        return f"unresolved:{params['precision']}"


def environment(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of the machine that change the numbers (see the module docstring)."""
    import torch

    from .device import planned_threads

    return {"torch": torch.__version__, "device": device_kind(params.get("device", "auto")),
            "threads": planned_threads(), "precision": resolved_precision(params), "format": FORMAT}
