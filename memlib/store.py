"""The results store: expensive work cached by (resolved config, memlib source fingerprint).

A run directory ``<root>/<kind>/<key>/`` holds ``config.json``, ``summary.json`` (scalars),
``tables/<name>.csv`` and ``provenance.json`` (git commit, versions, device, seed, wall time).  A run is
written into a temporary directory and renamed into place, so an interrupted run leaves nothing that a
later call would trust.  Large experiments cache their parts separately (one key per part), so an
interruption loses only the part in progress.

The root is ``$MEMLIB_STORE``, else ``_results/`` in the project folder (found by walking up from the
current directory to ``pyproject.toml``/``_config.yml``), else ``~/.cache/memlib/results``.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

STORE_ENV = "MEMLIB_STORE"
PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass
class Result:
    """Plain tables (DataFrames) and JSON-able scalars: what every experiment returns."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    scalars: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def source_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """Hash of every ``.py`` file of memlib: any change of code invalidates cached results."""
    h = hashlib.sha256()
    for p in sorted(package_dir.rglob("*.py")):
        h.update(str(p.relative_to(package_dir)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def project_root(start: Path | None = None) -> Path | None:
    p = (start or Path.cwd()).resolve()
    for d in (p, *p.parents):
        if (d / "pyproject.toml").exists() and (d / "memlib").is_dir():
            return d
    return None


def default_root() -> Path:
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV])
    proj = project_root() or project_root(PACKAGE_DIR)
    if proj is not None:
        return proj / "_results"
    return Path.home() / ".cache" / "memlib" / "results"


def _git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--", "memlib"], cwd=cwd,
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        try:
            return v.item()
        except (ValueError, RuntimeError):
            pass
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


class Store:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_root()
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = source_fingerprint()
        return self._fingerprint

    def key(self, kind: str, params: Mapping[str, Any]) -> str:
        blob = json.dumps({"kind": kind, "params": _jsonable(dict(params)), "source": self.fingerprint},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def path(self, kind: str, params: Mapping[str, Any]) -> Path:
        return self.root / kind / self.key(kind, params)

    def get(self, kind: str, params: Mapping[str, Any]) -> Result | None:
        d = self.path(kind, params)
        if not (d / "summary.json").exists():
            return None
        tables = {p.stem: pd.read_csv(p) for p in sorted((d / "tables").glob("*.csv"))}
        scalars = json.loads((d / "summary.json").read_text())
        prov = json.loads((d / "provenance.json").read_text()) if (d / "provenance.json").exists() else {}
        return Result(tables, scalars, prov, cached=True)

    def put(self, kind: str, params: Mapping[str, Any], result: Result) -> Path:
        final = self.path(kind, params)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
        try:
            (tmp / "tables").mkdir()
            for name, df in result.tables.items():
                df.to_csv(tmp / "tables" / f"{name}.csv", index=False)
            (tmp / "config.json").write_text(json.dumps(_jsonable(dict(params)), indent=2, sort_keys=True))
            (tmp / "provenance.json").write_text(json.dumps(_jsonable(result.provenance), indent=2))
            # summary.json is what marks a run complete; it is written last.
            (tmp / "summary.json").write_text(json.dumps(_jsonable(result.scalars), indent=2))
            if final.exists():  # another process finished the same run first: keep theirs
                shutil.rmtree(tmp)
                return final
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def cached(self, kind: str, params: Mapping[str, Any], compute: Callable[[], Result],
               refresh: bool = False) -> Result:
        """Return the stored result for (kind, params), or compute, store and return it."""
        if not refresh:
            hit = self.get(kind, params)
            if hit is not None:
                return hit
        t0 = time.perf_counter()
        result = compute()
        result.provenance = {**provenance(), **result.provenance, "kind": kind,
                             "wall_seconds": round(time.perf_counter() - t0, 3), "key": self.key(kind, params),
                             "source_fingerprint": self.fingerprint}
        self.put(kind, params, result)
        result.cached = False
        return result

    def runs(self, kind: str) -> list[Path]:
        d = self.root / kind
        return sorted(p for p in d.iterdir() if (p / "summary.json").exists()) if d.exists() else []


def provenance() -> dict[str, Any]:
    import torch

    from . import __version__

    return {
        "memlib_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "git_commit": _git_commit(PACKAGE_DIR.parent),
        "host": socket.gethostname(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_threads": torch.get_num_threads(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
