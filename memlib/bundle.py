"""Result bundles: stored results as plain files that travel, verified before anything enters a store.

A bundle is a folder (or the same files in one uncompressed ``.tar``) holding

* ``bundle.json``, the bundle's manifest: the format and version, when and by which memlib it was written, one
  record per result (kind, key, claim, profile, overrides, configuration, provenance: device, precision, threads,
  torch, date, memlib commit, code fingerprint and the hash of each computing module) and the SHA-256 and size of
  every other file;
* ``entries/<kind>/<key>/``: each result's run directory exactly as the results store holds it (its own
  ``manifest.json``, ``config.json``, ``provenance.json``, ``summary.json``, ``tables/*.csv``, ``arrays/*.npy``).

Only top-level results are exported (the tables a verdict or figure reads), not the parts they were merged from.
Nothing in a bundle is pickled: JSON, CSV and ``.npy`` read with ``allow_pickle=False``.

:func:`import_bundle` refuses, with one line naming the file, a bundle whose manifest is missing, unreadable or of
another format, a file that is missing, unlisted, truncated, too large or whose bytes do not match, a path that is
absolute, holds ``..`` or names a link, and any result the store's own check (:func:`memlib.store.read_entry`)
rejects.  Everything is checked in a staging folder inside the store before the first result is renamed into
place, so a refused bundle leaves the store as it was.  The hashes guard against damage in transit, not against a
sender who rewrites a bundle consistently: a bundle is plain data, never code, so the worst a stranger can send is
wrong numbers, labelled with the provenance he wrote.

An imported bundle is recorded in ``<store>/.imported/<id>.json`` (``<id>``: the hash of its ``bundle.json``), so
:func:`verify_imported` (``memlib verify``) can check that its results are still there, unchanged, and the book
can show them (:mod:`memlib.evidence`).  Importing a bundle whose results are already stored changes nothing.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import (MANIFEST, PACKAGE_DIR, BadEntry, Store, _fsync_dir, _git_commit, _sha256, _write_synced,
                    module_hashes, read_entry)

FORMAT_NAME = "memlib-result-bundle"
VERSION = 1
BUNDLE_MANIFEST = "bundle.json"
IMPORTED = ".imported"
MAX_FILE_BYTES = 64 << 20      # one file of a bundle
MAX_BUNDLE_BYTES = 512 << 20   # all of them together
MAX_FILES = 20_000
_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # one component of a path inside a bundle
_KIND_RE = re.compile(r"^[a-z0-9_]+(/[a-z0-9_]+)*$")
_KEY_RE = re.compile(r"^[0-9a-f]{20}$")


class BundleError(ValueError):
    """A bundle was refused or cannot be written; ``str(e)`` is one line naming the file and why."""


@dataclass
class ImportReport:
    bundle: str
    ident: str
    imported: list[str] = field(default_factory=list)   # "<kind>/<key>" now in the store
    already: list[str] = field(default_factory=list)    # already stored, left as they were
    recorded: bool = False                              # the bundle's record was new

    def text(self) -> str:
        if not self.imported and not self.recorded:
            return f"{self.bundle}: already imported, nothing to do ({len(self.already)} result(s) stored)"
        if not self.imported:
            return f"{self.bundle}: its {len(self.already)} result(s) were already stored; nothing imported"
        more = f", {len(self.already)} already stored" if self.already else ""
        return f"{self.bundle}: imported {len(self.imported)} result(s){more}: {', '.join(self.imported)}"


# ----------------------------------------------------------------------------- what a result records

def entry_provenance(result, modules: dict[str, str] | None) -> dict[str, Any]:
    """The provenance a bundle records of one stored result (from what the store recorded when it computed it)."""
    prov, sc = result.provenance, result.scalars
    return {"device": sc.get("device") or prov.get("cuda") or "not recorded",
            "precision": sc.get("precision"), "threads": prov.get("cpu_threads"),
            "torch": prov.get("torch_version"), "python": prov.get("python"),
            "date": prov.get("finished_at"), "host": prov.get("host"),
            "memlib_commit": prov.get("git_commit"), "memlib_version": prov.get("memlib_version"),
            "source_fingerprint": prov.get("source_fingerprint"), "wall_seconds": prov.get("wall_seconds"),
            "modules": modules}


def _entry_files(d: Path) -> dict[str, bytes]:
    """The files of a verified run directory: its manifest and every file the manifest lists."""
    manifest = json.loads((d / MANIFEST).read_bytes())
    out = {MANIFEST: (d / MANIFEST).read_bytes()}
    for rel in manifest["files"]:
        _check_rel(rel, d / MANIFEST)
        out[rel] = (d / rel).read_bytes()
    return out


# ----------------------------------------------------------------------------- export

def export(store: Store, selections: list[dict[str, Any]], out: Path | str) -> Path:
    """Write the stored results ``selections`` names as one bundle at ``out`` (a folder; a ``.tar`` file when
    ``out`` ends in ``.tar``).  Each selection: ``kind``, ``key`` and what the bundle records about it (``claim``,
    ``profile``, ``overrides``).  Every result is verified first; a bad or missing one is refused by name."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise BundleError(f"{out} already exists: choose another path or delete it")
    if not selections:
        raise BundleError("nothing to export: no stored result was selected")
    current = store.fingerprint
    modules = module_hashes()
    files: dict[str, bytes] = {}
    records = []
    for sel in selections:
        kind, key = sel["kind"], sel["key"]
        d = store.root / kind / key
        try:
            result = read_entry(d)
        except BadEntry as e:
            raise BundleError(f"cannot export {kind}/{key}: {e}") from None
        # The module hashes are today's: they describe the result only when it was computed by today's code.
        same = result.provenance.get("source_fingerprint") == current
        base = f"entries/{kind}/{key}"
        entry = _entry_files(d)
        files.update({f"{base}/{rel}": data for rel, data in entry.items()})
        records.append({"kind": kind, "key": key, "path": base, "claim": sel.get("claim"),
                        "profile": sel.get("profile"), "overrides": sel.get("overrides", {}),
                        "config": json.loads(entry["config.json"]),
                        "provenance": entry_provenance(result, modules if same else None),
                        "bytes": sum(len(b) for b in entry.values())})
    from ._version import __version__

    manifest = {"format": FORMAT_NAME, "version": VERSION,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "created_with": {"memlib_version": __version__, "memlib_commit": _git_commit(PACKAGE_DIR.parent),
                                 "source_fingerprint": current, "host": socket.gethostname()},
                "entries": records,
                "files": {rel: {"sha256": _sha256(b), "bytes": len(b)} for rel, b in sorted(files.items())}}
    files[BUNDLE_MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        if out.suffix == ".tar":
            _write_tar(tmp / out.name, files)
            os.rename(tmp / out.name, out)
        else:
            for rel, data in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
            os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for rel in sorted(files):
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(files[rel]), 0o644, 0
            tf.addfile(info, io.BytesIO(files[rel]))


def size_of(path: Path | str) -> int:
    """Bytes of a bundle (the folder's files, or the ``.tar``)."""
    p = Path(path)
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


# ----------------------------------------------------------------------------- reading a bundle safely

def _check_rel(rel: Any, where: Path | str) -> None:
    """``rel`` must be a plain relative path (no ``..``, no absolute path, no hidden or odd component)."""
    if not isinstance(rel, str) or not rel or "\\" in rel or rel.startswith("/"):
        raise BundleError(f"{where}: path {rel!r} is not a plain relative path")
    if not all(_PART_RE.match(part) for part in rel.split("/")):
        raise BundleError(f"{where}: path {rel!r} is not a plain relative path (.., hidden or odd component)")


def _read_dir(root: Path) -> dict[str, bytes]:
    files, total = {}, 0
    for dirpath, dirnames, names in os.walk(root, followlinks=False):
        for n in sorted(dirnames + names):
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if p.is_symlink():
                raise BundleError(f"{p} is a symbolic link: a bundle holds plain files only")
            if n in dirnames:
                continue
            if not p.is_file():
                raise BundleError(f"{p} is not a plain file")
            _check_rel(rel, root)
            total += st.st_size
            _check_size(p, st.st_size, total, len(files) + 1)
            files[rel] = p.read_bytes()
    return files


def _read_tar(path: Path) -> dict[str, bytes]:
    files, total = {}, 0
    try:
        with tarfile.open(path, "r:") as tf:
            for m in tf:
                rel = m.name.removeprefix("./")
                if m.isdir():
                    continue
                if not m.isfile():
                    raise BundleError(f"{path}: {m.name!r} is a link or a special file: a bundle holds plain "
                                      "files only")
                _check_rel(rel, path)
                if rel in files:
                    raise BundleError(f"{path}: {rel!r} appears twice")
                total += m.size
                _check_size(f"{path}: {rel}", m.size, total, len(files) + 1)
                data = tf.extractfile(m).read()
                if len(data) != m.size:
                    raise BundleError(f"{path}: {rel} is cut short (truncated archive)")
                files[rel] = data
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BundleError(f"{path} is not a readable tar archive ({type(e).__name__}: {e}); truncated or damaged?") \
            from None
    return files


def _check_size(where: Any, size: int, total: int, count: int) -> None:
    if size > MAX_FILE_BYTES:
        raise BundleError(f"{where} is {size:,} bytes, more than a bundle file may hold ({MAX_FILE_BYTES:,})")
    if total > MAX_BUNDLE_BYTES or count > MAX_FILES:
        raise BundleError(f"{where}: the bundle holds more than {MAX_BUNDLE_BYTES:,} bytes or {MAX_FILES:,} files")


def read_bundle(path: Path | str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A bundle's manifest and files, every file checked against the manifest; :class:`BundleError` otherwise."""
    path = Path(path)
    if path.is_symlink():
        raise BundleError(f"{path} is a symbolic link: give the bundle's own path")
    if path.is_dir():
        files = _read_dir(path)
    elif path.is_file():
        files = _read_tar(path)
    else:
        raise BundleError(f"{path} does not exist")
    mpath = f"{path}/{BUNDLE_MANIFEST}"
    if BUNDLE_MANIFEST not in files:
        raise BundleError(f"{mpath} is missing: {path} is not a memlib result bundle")
    try:
        manifest = json.loads(files.pop(BUNDLE_MANIFEST))
        fmt, version, listed, entries = (manifest["format"], manifest["version"], manifest["files"],
                                         manifest["entries"])
    except (ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{mpath} is not a bundle manifest ({type(e).__name__}: {e})") from None
    if fmt != FORMAT_NAME or not isinstance(listed, dict) or not isinstance(entries, list):
        raise BundleError(f"{mpath} is not a {FORMAT_NAME} manifest (format {fmt!r})")
    if version != VERSION:
        raise BundleError(f"{mpath} is bundle version {version!r}; this memlib reads version {VERSION}")
    for rel in files:
        if rel not in listed:
            raise BundleError(f"{path}/{rel} is not listed in {BUNDLE_MANIFEST}")
    for rel, meta in listed.items():
        _check_rel(rel, mpath)
        where = f"{path}/{rel}"
        if rel not in files:
            raise BundleError(f"{where} is missing (listed in {BUNDLE_MANIFEST})")
        try:
            size, digest = int(meta["bytes"]), str(meta["sha256"])
        except (KeyError, TypeError, ValueError):
            raise BundleError(f"{mpath}: the record of {rel} has no size and hash") from None
        if len(files[rel]) != size:
            raise BundleError(f"{where} is {len(files[rel]):,} bytes, {size:,} were exported (truncated or "
                              "damaged)")
        if _sha256(files[rel]) != digest:
            raise BundleError(f"{where} does not match the hash recorded in {BUNDLE_MANIFEST} (edited or damaged)")
    return manifest, files


def _entries(path: Path, manifest: dict, files: dict[str, bytes]) -> list[tuple[dict, dict[str, bytes]]]:
    """Each result record with its files (relative to its run directory); every file belongs to one result."""
    out, owned = [], set()
    for rec in manifest["entries"]:
        try:
            kind, key, base = rec["kind"], rec["key"], rec["path"]
        except (KeyError, TypeError):
            raise BundleError(f"{path}/{BUNDLE_MANIFEST}: a result record lacks kind, key or path") from None
        if not (isinstance(kind, str) and _KIND_RE.match(kind) and isinstance(key, str) and _KEY_RE.match(key)
                and base == f"entries/{kind}/{key}"):
            raise BundleError(f"{path}/{BUNDLE_MANIFEST}: result record {kind!r}/{key!r} is malformed")
        mine = {rel[len(base) + 1:]: data for rel, data in files.items() if rel.startswith(base + "/")}
        if MANIFEST not in mine:
            raise BundleError(f"{path}/{base}/{MANIFEST} is missing")
        owned.update(f"{base}/{rel}" for rel in mine)
        out.append((rec, mine))
    stray = sorted(set(files) - owned)
    if stray:
        raise BundleError(f"{path}/{stray[0]} belongs to no result listed in {BUNDLE_MANIFEST}")
    return out


def _stage(path: Path, staging: Path, rec: dict, mine: dict[str, bytes]) -> Path:
    """Write one result into ``staging`` and check it as the store checks its own entries."""
    base = f"{path}/{rec['path']}"
    try:
        listed = json.loads(mine[MANIFEST])
        names = set(listed["files"])
        same = listed.get("kind") == rec["kind"] and listed.get("key") == rec["key"]
    except (ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{base}/{MANIFEST} is unreadable ({type(e).__name__}: {e})") from None
    if not same:
        raise BundleError(f"{base}/{MANIFEST} names another kind or key than its folder")
    extra = sorted(set(mine) - names - {MANIFEST})
    if extra:
        raise BundleError(f"{base}/{extra[0]} is not listed in its {MANIFEST}")
    d = staging / rec["kind"] / rec["key"]
    for rel, data in mine.items():  # synced as the store writes its own entries, before the rename
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        _write_synced(d / rel, data)
    for sub in {(d / rel).parent for rel in mine}:
        _fsync_dir(sub)
    try:
        result = read_entry(d, rec.get("config"))
    except BadEntry as e:
        raise BundleError(f"{base}: {str(e).replace(str(d), base)}") from None
    mine_prov = entry_provenance(result, rec.get("provenance", {}).get("modules"))
    if rec.get("provenance") != json.loads(json.dumps(mine_prov)):
        raise BundleError(f"{path}/{BUNDLE_MANIFEST}: the provenance of {rec['kind']}/{rec['key']} differs from "
                          f"its {base}/provenance.json")
    return d


# ----------------------------------------------------------------------------- import

def import_bundle(path: Path | str, store: Store | None = None) -> ImportReport:
    """Verify the bundle at ``path`` completely, then move its results into ``store`` (see the module docstring).
    Raises :class:`BundleError` (nothing imported) for a bad bundle."""
    store = store or Store()
    path = Path(path)
    manifest, files = read_bundle(path)
    entries = _entries(path, manifest, files)
    raw = json.dumps(manifest, sort_keys=True).encode()
    report = ImportReport(str(path), _sha256(raw)[:16])
    store.check_writable()
    store.clean_tmp(store.root)  # staging folders of imports that were killed
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-import-{socket.gethostname().replace('-', '_')}-{os.getpid()}-",
                                    dir=store.root))
    try:
        staged = [(rec, _stage(path, staging, rec, mine)) for rec, mine in entries]  # all checked, then installed
        for rec, d in staged:
            final = store.root / rec["kind"] / rec["key"]
            name = f"{rec['kind']}/{rec['key']}"
            final.parent.mkdir(parents=True, exist_ok=True)
            if store._install(d, final, replace=False):
                _fsync_dir(final.parent)
                report.imported.append(name)
            else:
                report.already.append(name)
        report.recorded = _record(store, report.ident, path, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _record(store: Store, ident: str, path: Path, manifest: dict) -> bool:
    """Write ``<store>/.imported/<ident>.json`` (atomically) unless it is there; True when written."""
    folder = store.root / IMPORTED
    dest = folder / f"{ident}.json"
    if dest.exists():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"bundle": path.name, "source": str(path), "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "manifest": manifest}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(rec, f, indent=2, sort_keys=True)
    os.replace(tmp, dest)
    return True


def import_folder(folder: Path | str, store: Store | None = None) -> list[ImportReport | BundleError]:
    """Import every bundle in ``folder`` (sub-folders holding ``bundle.json``, and ``.tar`` files); a refused bundle
    is returned as its :class:`BundleError`, the others are still imported."""
    folder = Path(folder)
    out: list[ImportReport | BundleError] = []
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not (p.suffix == ".tar" or (p.is_dir() and not p.is_symlink())):
            continue
        try:
            out.append(import_bundle(p, store))
        except BundleError as e:
            out.append(e)
    return out


# ----------------------------------------------------------------------------- what was imported

def imported(store: Store | None = None) -> list[dict[str, Any]]:
    """The records of the bundles imported into ``store`` (oldest first); an unreadable record is returned as
    ``{"problem": ...}`` so that it is reported, not skipped."""
    store = store or Store()
    folder = store.root / IMPORTED
    out = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            rec = json.loads(p.read_bytes())
            rec["manifest"]["entries"]  # noqa: B018 - a record without results is unreadable
        except (ValueError, KeyError, TypeError, OSError) as e:
            out.append({"record": str(p), "problem": f"{p} is unreadable ({type(e).__name__}: {e})"})
            continue
        out.append({**rec, "record": str(p)})
    return sorted(out, key=lambda r: r.get("imported_at", ""))


def verify_imported(store: Store | None = None) -> list[tuple[str, str]]:
    """``(bundle, reason)`` for each imported result that is gone or no longer the one imported."""
    store = store or Store()
    bad = []
    for rec in imported(store):
        if "problem" in rec:
            bad.append((rec["record"], rec["problem"]))
            continue
        m = rec["manifest"]
        for e in m["entries"]:
            d = store.root / e["kind"] / e["key"]
            digest = m["files"].get(f"{e['path']}/{MANIFEST}", {}).get("sha256")
            try:
                read_entry(d)
                ok = _sha256((d / MANIFEST).read_bytes()) == digest
                why = f"{d} is not the result bundle {rec['bundle']} imported (its manifest changed)"
            except BadEntry as err:
                ok, why = False, f"{err} (imported from bundle {rec['bundle']})"
            if not ok:
                bad.append((rec["bundle"], why))
    return bad
