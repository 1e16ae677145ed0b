"""The results store: expensive work cached by a key, never serving a file it cannot vouch for.

Layout.  A run directory ``<root>/<kind>/<key>/`` holds ``config.json``, ``summary.json`` (scalars),
``tables/<name>.csv``, ``arrays/<name>.npy`` (numeric arrays such as images, saved without pickle),
``provenance.json`` (git commit, versions, device, seed, wall time) and, written last, ``manifest.json``: the
SHA-256 of every other file, the row count of every table and the shape and dtype of every array.  Large
experiments cache their parts separately (``<kind>/<part>``, one key per part), so an interruption loses only the
part in progress.

What is keyed.  A run's key is :func:`memlib.keys.result_key` of its kind, its resolved config's hashed values,
the machine facts that change numbers and the hash of memlib's computing code (:mod:`memlib.keys`).

Trust.  :meth:`Store.get` verifies the manifest (every listed file exists and matches its hash, every table
has its recorded rows, every array its recorded shape and dtype, ``config.json`` is the config asked for).  A
store may come from someone else, so a manifest is untrusted: every path it lists must stay inside its entry (no
``..``, absolute path or symbolic link, a regular file of at most :data:`MAX_FILE_BYTES`), else the entry is bad
and nothing outside it is opened.  A bad entry is moved to ``<root>/.quarantine/`` (where that folder cannot be
used, to a hidden ``.bad-*`` folder beside it) with a :class:`StoreWarning` naming it and treated as a miss, so
the next run repairs it; ``python -m memlib verify`` reports every bad entry.

Completion.  A run is written into ``.tmp-*`` next to its final place, every file and the folder fsynced,
then renamed into place (atomic), so an interruption leaves nothing a later call would trust; stale
``.tmp-*`` folders (their writer is gone) are removed.  If two processes finish the same run, the first
rename wins and the loser returns the winner's result.  :meth:`Store.cached` checks that the store is
writable before the top-level computation starts; if the final write still fails (or a bad entry in the way
cannot be moved), the result is returned, written under a fallback folder, and a warning says where
(:meth:`Store.located` finds it).

The root is ``$MEMLIB_STORE``, else ``_results/`` in the project folder (found by walking up from the
current directory to ``pyproject.toml``), else ``~/.cache/memlib/results``; it is made absolute once
(``expanduser().resolve()``; a relative ``$MEMLIB_STORE`` is relative to the project folder), so the command
line, the notebook kernel (which runs in ``notebooks/``) and the book build share one store.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import platform
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .jsonio import MalformedJSON, fsync_dir, jsonable, parse
from .keys import FORMAT, PACKAGE_DIR, environment, result_key, source_fingerprint
from .paths import absolute, project_root  # noqa: F401  (project_root: re-exported for the CLI)
from .result import Result

STORE_ENV = "MEMLIB_STORE"
MANIFEST = "manifest.json"
QUARANTINE = ".quarantine"
FALLBACK_ENV = "MEMLIB_STORE_FALLBACK"
STALE_TMP_SECONDS = 6 * 3600  # a .tmp-* folder of a live writer on another host is removed after this
MIN_FREE_BYTES = 8 << 20
MAX_FILE_BYTES = 2 << 30  # a stored file larger than this is a bad entry, never read (paper-profile tables: < 1 GB)
_KEY_RE = re.compile(r"^[0-9a-f]{20}$")
_ARRAY_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # becomes a file name: arrays/<name>.npy
_NUMERIC_KINDS = "biufc"  # bool, int, uint, float, complex: what np.load reads back without pickle
_HOST = socket.gethostname()


class StoreError(RuntimeError):
    """The results store cannot be used (e.g. not writable); the message names the folder and the fix."""


class StoreWarning(UserWarning):
    """A stored entry was bad and moved aside, or a result could not be written to the store."""


class BadEntry(Exception):
    """A stored entry failed verification; ``str(e)`` says which file and why."""



# ----------------------------------------------------------------------------- paths

def default_root() -> Path:
    if os.environ.get(STORE_ENV):
        return absolute(os.environ[STORE_ENV])
    proj = project_root() or project_root(PACKAGE_DIR)
    if proj is not None:
        return proj / "_results"
    return absolute(Path.home() / ".cache" / "memlib" / "results")


def _fallback_roots() -> list[Path]:
    roots = [os.environ.get(FALLBACK_ENV), Path.home() / ".cache" / "memlib" / "unsaved-results",
             Path(tempfile.gettempdir()) / "memlib-unsaved-results"]
    return [absolute(r) for r in roots if r]


# ----------------------------------------------------------------------------- helpers

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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


_fsync_dir = fsync_dir


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tmp_is_stale(p: Path) -> bool:
    """``.tmp-<key>-<host>-<pid>-*``: stale when its writer (same host) is gone, or it is very old."""
    parts = p.name.split("-")
    try:
        age = time.time() - p.stat().st_mtime
    except OSError:
        return False
    if len(parts) >= 5 and parts[2] == _HOST.replace("-", "_") and parts[3].isdigit():
        return not _pid_alive(int(parts[3]))
    return age > STALE_TMP_SECONDS


def _encode_array(name: str, a: Any) -> bytes:
    """``a`` as ``.npy`` bytes; a name that is not a plain file name or an array that is not numeric is refused
    here, before anything is written (a non-numeric array would need pickle to be read back)."""
    if not _ARRAY_NAME_RE.fullmatch(str(name)):
        raise ValueError(f"array name {name!r} must be letters, digits, '_', '.' or '-' (it becomes a file name)")
    if not isinstance(a, np.ndarray) or a.dtype.kind not in _NUMERIC_KINDS:
        what = f"dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"array {name!r} must be a numeric numpy array, got {what}")
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _array_meta(a: np.ndarray) -> dict[str, Any]:
    """What the manifest records of an array and :func:`read_entry` checks: its shape and dtype."""
    return {"shape": list(a.shape), "dtype": str(a.dtype)}


def _encode_result(params: Mapping[str, Any], result: Result) -> dict[str, bytes]:
    """Every file of a run directory, as bytes (manifest excluded)."""
    files = {f"tables/{name}.csv": df.to_csv(index=False).encode() for name, df in result.tables.items()}
    files.update({f"arrays/{name}.npy": _encode_array(name, a) for name, a in result.arrays.items()})
    files["config.json"] = json.dumps(jsonable(dict(params)), indent=2, sort_keys=True).encode()
    files["provenance.json"] = json.dumps(jsonable(result.provenance), indent=2, default=str).encode()
    files["summary.json"] = json.dumps(jsonable(result.scalars), indent=2).encode()
    return files


def _read_inside(d: Path, rel: str) -> bytes:
    """The bytes of the regular file ``d/rel``, or :class:`BadEntry` when ``rel`` leads out of ``d`` (absolute,
    ``..``, a symbolic link anywhere on the way), is not a regular file (a device, a FIFO) or is larger than
    :data:`MAX_FILE_BYTES`; ``OSError`` when it cannot be read.  A store someone hands you reads nothing else."""
    parts = rel.split("/")
    if (not rel or rel.startswith("/") or "\\" in rel or "\0" in rel or ":" in parts[0]
            or any(part in ("", ".", "..") for part in parts)):
        raise BadEntry(f"{d / MANIFEST} lists {rel!r}, a path outside its folder")
    p = d
    for part in parts:
        p = p / part
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            raise BadEntry(f"{p} is a symbolic link; stored results hold plain files only")
    if not stat.S_ISREG(st.st_mode):
        raise BadEntry(f"{p} is not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise BadEntry(f"{p} has {st.st_size} bytes, more than a stored file may have ({MAX_FILE_BYTES})")
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise BadEntry(f"{p} grew beyond {MAX_FILE_BYTES} bytes while it was read")
    return data


def read_entry(d: Path, params: Mapping[str, Any] | None = None) -> Result:
    """Read and verify a run directory; raise :class:`BadEntry` naming the file that is wrong."""
    man_path = d / MANIFEST
    if not man_path.exists():
        raise BadEntry(f"{man_path} is missing: the run was never completed (or the file was deleted)")
    if d.is_symlink():
        raise BadEntry(f"{d} is a symbolic link; a stored result is a plain folder")
    try:
        manifest = parse(_read_inside(d, MANIFEST), man_path)
        if not isinstance(manifest, dict):
            raise TypeError(f"it holds a {type(manifest).__name__}, not a mapping")
        files, rows = manifest["files"], manifest["rows"]
        array_meta = manifest.get("arrays", {})  # absent in entries written before arrays existed
        for what, m in (("files", files), ("rows", rows), ("arrays", array_meta)):
            if not isinstance(m, dict):
                raise TypeError(f"'{what}' is {type(m).__name__}, not a mapping")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise TypeError("'files' must map file names to hashes")
    except BadEntry:
        raise
    except MalformedJSON as e:
        raise BadEntry(str(e)) from None
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise BadEntry(f"{man_path} is unreadable ({type(e).__name__}: {e})") from None
    blobs: dict[str, bytes] = {}
    for rel, digest in files.items():
        p = d / rel
        try:
            data = _read_inside(d, rel)
        except OSError as e:
            raise BadEntry(f"{p} is missing or unreadable ({e.strerror or e})") from None
        if _sha256(data) != digest:
            raise BadEntry(f"{p} does not match the hash recorded when it was stored (edited or damaged)")
        blobs[rel] = data
    try:
        tables = {}
        for name, n in rows.items():
            rel = f"tables/{name}.csv"
            if rel not in blobs:
                raise BadEntry(f"{d / rel} is listed in {man_path} without a hash")
            df = pd.read_csv(io.BytesIO(blobs[rel])) if blobs[rel].strip() else pd.DataFrame()
            if len(df) != n:
                raise BadEntry(f"{d / rel} has {len(df)} rows, {n} were stored")
            tables[name] = df
        arrays = {name: _read_array(d, name, meta, blobs) for name, meta in array_meta.items()}
        scalars = parse(blobs["summary.json"], d / "summary.json")
        prov = parse(blobs["provenance.json"], d / "provenance.json")
        if params is not None:
            stored = parse(blobs["config.json"], d / "config.json")
            if stored != json.loads(json.dumps(jsonable(dict(params)), sort_keys=True)):
                raise BadEntry(f"{d / 'config.json'} is not the configuration this key stands for")
    except BadEntry:
        raise
    except MalformedJSON as e:
        raise BadEntry(str(e)) from None
    except Exception as e:  # a file listed in the manifest that does not parse
        raise BadEntry(f"{d} does not parse ({type(e).__name__}: {e})") from None
    return Result(tables, scalars, prov, cached=True, arrays=arrays)


def _read_array(d: Path, name: str, meta: Mapping[str, Any], blobs: dict[str, bytes]) -> np.ndarray:
    """The array ``name`` of run directory ``d`` (its bytes already hash-checked in ``blobs``), or
    :class:`BadEntry` when it has no hash in the manifest or its shape or dtype is not the one recorded."""
    rel = f"arrays/{name}.npy"
    p = d / rel
    if rel not in blobs:
        raise BadEntry(f"{p} is listed in {d / MANIFEST} without a hash")
    a = np.load(io.BytesIO(blobs[rel]), allow_pickle=False)
    if _array_meta(a) != {"shape": list(meta["shape"]), "dtype": meta["dtype"]}:
        raise BadEntry(f"{p} holds a {a.dtype} array of shape {list(a.shape)}, a {meta['dtype']} array of shape "
                       f"{list(meta['shape'])} was stored")
    return a


# ----------------------------------------------------------------------------- the store

class Store:
    def __init__(self, root: Path | str | None = None):
        self.root = absolute(root) if root is not None else default_root()
        self._fingerprint: str | None = None
        self._env: dict[tuple[str, str], dict] = {}
        self._depth = 0
        self.last_fallback: Path | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = source_fingerprint()
        return self._fingerprint

    def key(self, kind: str, params: Mapping[str, Any]) -> str:
        env = (str(params.get("device", "auto")), str(params.get("precision")))
        if env not in self._env:
            self._env[env] = environment(params)
        return result_key(kind, params, self._env[env], self.fingerprint)

    def path(self, kind: str, params: Mapping[str, Any]) -> Path:
        return self.root / kind / self.key(kind, params)

    # --- reading

    def get(self, kind: str, params: Mapping[str, Any]) -> Result | None:
        """The stored result, or ``None`` when there is none or it is bad (then it is quarantined)."""
        d = self.path(kind, params)
        if not d.exists():
            return None
        try:
            return read_entry(d, params)
        except BadEntry as e:
            self.quarantine(d, str(e))
            return None

    def quarantine(self, d: Path, reason: str) -> Path | None:
        """Move a bad entry aside (see :meth:`move_aside`) and warn, naming both paths; ``None`` when it was gone
        already or could not be moved (the warning then says so)."""
        try:
            dest = self.move_aside(d)
        except FileNotFoundError:  # another process moved it first
            return None
        except OSError as e:
            warnings.warn(f"results store: ignoring bad entry {d}: {reason}; it could not be moved aside "
                          f"({e.strerror or e}), so it will be ignored until it is deleted", StoreWarning,
                          stacklevel=3)
            return None
        warnings.warn(f"results store: ignoring bad entry {d}: {reason}; moved to {dest}, the result will be "
                      "recomputed", StoreWarning, stacklevel=3)
        return dest

    def move_aside(self, d: Path) -> Path:
        """Move the entry ``d`` to ``<root>/.quarantine/`` (kept for inspection), or, where that folder cannot be
        used (read-only, a file in its place), to a hidden ``.bad-*`` folder beside ``d``; returns where it went.
        Raises ``OSError`` when neither worked (``FileNotFoundError``: ``d`` is gone)."""
        rel = d.relative_to(self.root).as_posix().replace("/", "__") if d.is_relative_to(self.root) else d.name
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{os.urandom(2).hex()}"
        dest = self.root / QUARANTINE / f"{rel}-{stamp}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(d, dest)
            return dest
        except FileNotFoundError:
            if not os.path.lexists(d):
                raise
        except OSError:
            pass
        beside = d.parent / f".bad-{d.name}-{stamp}"  # hidden: never listed as an entry
        os.rename(d, beside)
        return beside

    def entries(self) -> list[Path]:
        """Every run directory under the root (hidden folders such as ``.quarantine`` and ``.tmp-*`` skipped)."""
        out = []
        if not self.root.exists():
            return out
        for dirpath, dirnames, _ in os.walk(self.root):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
            for n in list(dirnames):
                if _KEY_RE.fullmatch(n):
                    out.append(Path(dirpath) / n)
                    dirnames.remove(n)  # a run directory holds no runs
        return out

    def verify(self, fix: bool = False) -> list[tuple[Path, str]]:
        """Check every entry; return ``(path, reason)`` for each bad one (moved aside when ``fix``)."""
        bad = []
        for d in self.entries():
            try:
                read_entry(d)
            except BadEntry as e:
                bad.append((d, str(e)))
                if fix:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", StoreWarning)
                        self.quarantine(d, str(e))
        return bad

    def runs(self, kind: str) -> list[Path]:
        d = self.root / kind
        if not d.exists():
            return []
        return sorted(p for p in d.iterdir() if _KEY_RE.fullmatch(p.name) and (p / MANIFEST).exists())

    # --- writing

    def check_writable(self) -> None:
        """Raise :class:`StoreError` unless a file can be written (and synced) in the root, with space left."""
        probe = self.root / f".write-test-{_HOST}-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _write_synced(probe, b"memlib")
            probe.unlink()
            free = shutil.disk_usage(self.root).free
        except OSError as e:
            raise StoreError(f"results store {self.root} is not writable ({e.strerror or e}); set "
                             f"${STORE_ENV} to a writable folder") from None
        if free < MIN_FREE_BYTES:
            raise StoreError(f"results store {self.root} has only {free // 1024} KiB free; free some space or "
                             f"set ${STORE_ENV} to another folder")

    def clean_tmp(self, folder: Path) -> list[Path]:
        """Remove ``.tmp-*`` folders in ``folder`` whose writer is gone."""
        removed = []
        try:
            cands = [p for p in folder.iterdir() if p.name.startswith(".tmp-")]
        except OSError:
            return removed
        for p in cands:
            if _tmp_is_stale(p):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        return removed

    def put(self, kind: str, params: Mapping[str, Any], result: Result, replace: bool = False) -> Path:
        return self._put(kind, params, result, replace)[0]

    def _put(self, kind: str, params: Mapping[str, Any], result: Result, replace: bool = False,
             final: Path | None = None) -> tuple[Path, bool]:
        """Write atomically; return ``(path, won)``: ``won`` is False when a valid entry was already there."""
        final = final or self.path(kind, params)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.clean_tmp(final.parent)
        files = _encode_result(params, result)  # fails here (bad table or array) before anything is on disk
        manifest = {"format": FORMAT, "kind": kind, "key": final.name,
                    "files": {rel: _sha256(b) for rel, b in files.items()},
                    "rows": {name: len(df) for name, df in result.tables.items()},
                    "arrays": {name: _array_meta(a) for name, a in result.arrays.items()}}
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-{_HOST.replace('-', '_')}-{os.getpid()}-",
                                    dir=final.parent))
        subdirs = sorted({"tables"} | {rel.rpartition("/")[0] for rel in files} - {""})
        try:
            for sub in subdirs:
                (tmp / sub).mkdir()
            for rel, data in files.items():
                _write_synced(tmp / rel, data)
            _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=2).encode())  # marks completion: last
            for sub in subdirs:
                _fsync_dir(tmp / sub)
            _fsync_dir(tmp)
            won = self._install(tmp, final, replace)
            _fsync_dir(final.parent)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final, won

    def _install(self, tmp: Path, final: Path, replace: bool) -> bool:
        """Rename ``tmp`` to ``final``; False when a valid entry was there first (and not ``replace``).  A bad
        entry in the way is moved aside; one that cannot be moved raises ``OSError`` (the caller saves the result
        to a fallback folder)."""
        for _ in range(3):
            if final.exists() or final.is_symlink():
                try:
                    read_entry(final)
                    ok = True
                except BadEntry as e:
                    ok = False
                    if self.quarantine(final, str(e)) is None and os.path.lexists(final):
                        raise OSError(errno.ENOTEMPTY, "a bad entry is in the way and could not be moved aside",
                                      str(final))
                if ok and not replace:
                    return False  # another writer finished the same run first: keep theirs
                if ok and replace:
                    old = final.parent / f".tmp-{final.name}-old-{os.getpid()}"
                    try:
                        os.rename(final, old)
                    except FileNotFoundError:
                        pass
                    else:
                        shutil.rmtree(old, ignore_errors=True)
            try:
                os.rename(tmp, final)
                return True
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                # lost a race between the check and the rename: look again
        raise OSError(errno.EEXIST, "another writer kept replacing the entry", str(final))

    def _save_fallback(self, kind: str, params: Mapping[str, Any], result: Result, err: BaseException) -> Path | None:
        final = self.path(kind, params)
        tried = []
        for root in _fallback_roots():
            if root == self.root:
                continue
            tried.append(str(root))
            try:
                where = Store(root)._put(kind, params, result, final=root / kind / final.name)[0]
            except Exception:  # noqa: BLE001 - try the next fallback
                continue
            self.last_fallback = where
            warnings.warn(f"results store: could not write the result to {final} ({err}); it is returned and "
                          f"saved in {where} -- move that folder to {final} to keep it in the store",
                          StoreWarning, stacklevel=3)
            return where
        warnings.warn(f"results store: could not write the result to {final} ({err}), nor to a fallback folder "
                      f"({', '.join(tried)}); it is returned but not stored (set ${FALLBACK_ENV} to a writable "
                      "folder to keep the next one)", StoreWarning, stacklevel=3)
        return None

    def cached(self, kind: str, params: Mapping[str, Any], compute: Callable[[], Result],
               refresh: bool = False) -> Result:
        """Return the stored result for (kind, params), or compute, store and return it.

        The top-level call checks that the store is writable before computing; a failed final write keeps
        the result (returned, saved in a fallback folder, with a :class:`StoreWarning` saying where).
        """
        if not refresh:
            hit = self.get(kind, params)
            if hit is not None:
                return hit
        if self._depth == 0:
            self.check_writable()
        self._depth += 1
        t0 = time.perf_counter()
        try:
            result = compute()
        finally:
            self._depth -= 1
        result.provenance = {**provenance(), **result.provenance, "kind": kind,
                             "wall_seconds": round(time.perf_counter() - t0, 3), "key": self.key(kind, params),
                             "source_fingerprint": self.fingerprint}
        try:
            _, won = self._put(kind, params, result, replace=refresh)
        except OSError as e:
            self._save_fallback(kind, params, result, e)
            result.cached = False
            return result
        if not won:
            winner = self.get(kind, params)
            if winner is not None:
                return winner
            # the winner's entry went bad between the two reads: keep this result where it can be found
            self._save_fallback(kind, params, result, OSError(errno.ENOENT, "the stored copy went bad"))
        result.cached = False
        return result

    def located(self, kind: str, params: Mapping[str, Any]) -> Path | None:
        """Where the result of ``(kind, params)`` is kept, verified: its entry in this store, else its folder in a
        fallback folder (see :meth:`cached`), else ``None``."""
        final = self.path(kind, params)
        for p in [final] + [root / kind / final.name for root in _fallback_roots() if root != self.root]:
            try:
                read_entry(p, params)
                return p
            except BadEntry:
                continue
        return None


def provenance() -> dict[str, Any]:
    import torch

    from ._version import __version__
    from .device import precision_provenance

    return {
        "memlib_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "git_commit": _git_commit(PACKAGE_DIR.parent),
        "host": socket.gethostname(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_threads": torch.get_num_threads(),
        "precision_probe": precision_provenance(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
