"""Result bundles: stored results as plain files that travel, verified whole before anything enters a store.

A bundle is a folder (or the same files in one uncompressed ``.tar``) holding

* ``bundle.json``, the bundle's manifest: the format and version, when and by which memlib it was written, one
  record per result (kind, key, claim, profile, overrides, configuration, provenance: device, precision, threads,
  torch, date, memlib commit, code fingerprint and the hash of each computing module) and the SHA-256 and size of
  every other file;
* ``entries/<kind>/<key>/``: each result's run directory exactly as the results store holds it (its own
  ``manifest.json``, ``config.json``, ``provenance.json``, ``summary.json``, ``tables/*.csv``, ``arrays/*.npy``).

Only claims' results are exported (the tables a verdict or figure reads), not the parts they were merged from.
Nothing in a bundle is pickled: JSON, CSV and ``.npy`` read with ``allow_pickle=False``.

**The root hash** (:func:`root_hash`) is the SHA-256 of the manifest's canonical form (``json.dumps(manifest,
sort_keys=True)``).  The manifest holds every record and the hash of every file, and every file is checked against
it, so this one hash covers the whole bundle: ``export`` prints it, ``import`` and ``verify --bundle`` print it
again, and whoever publishes a bundle publishes its root hash beside it (``results/README.md``) for a reader to
compare.  Nothing is signed: a bundle is plain data, never code, so the worst a stranger can send is wrong numbers.

:func:`check_bundle`, the one check that ``import`` and ``verify --bundle`` both run, refuses with one line naming
the file: a manifest that is missing, too large, too deeply nested, unreadable or of another format; a file that is
missing, unlisted, truncated, too large or whose bytes do not match; a path that is absolute, holds ``..`` or names
a link; a record of a kind that is no claim's result, without a configuration, or whose profile and overrides do
not resolve (today) to exactly the configuration it carries; a record whose provenance is not its result's; any
result the store's own check (:func:`memlib.store.read_entry`) rejects; and a result that differs from the one the
store already holds under the same key (a conflict: both are named, nothing is imported).  Everything is checked in
a staging folder before the first result is renamed into place, so a refused bundle leaves the store as it was.

An imported bundle is recorded in ``<store>/.imported/<id>.json`` (``<id>``: the first 16 hex digits of its root
hash), so that :func:`verify_imported` (``memlib verify``) can check that its results are still there, unchanged,
and the book can show them (:mod:`memlib.evidence`).  Those records are read as untrusted input, like a bundle: a
record that is malformed, edited (its manifest no longer has its root hash) or names a key that is not plain hex is
reported (and moved aside by ``verify --fix``), never followed.  Importing a bundle whose results are already stored
changes nothing.
"""
from __future__ import annotations

import hashlib
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

from .config import PROFILES, ConfigError
from .experiments import REGISTRY, get_experiment, resolve
from .jsonio import MalformedJSON, fsync_dir, jsonable, parse, read_json, write_json_atomic
from .keys import PACKAGE_DIR, module_hashes
from .store import MANIFEST, BadEntry, Store, _git_commit, _sha256, _write_synced, read_entry

FORMAT_NAME = "memlib-result-bundle"
VERSION = 1
BUNDLE_MANIFEST = "bundle.json"
IMPORTED = ".imported"
MAX_FILE_BYTES = 64 << 20      # one file of a bundle
MAX_BUNDLE_BYTES = 512 << 20   # all of them together
MAX_FILES = 20_000
MAX_RECORD_BYTES = 16 << 20    # one record in <store>/.imported/
_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # one component of a path inside a bundle
_KIND_RE = re.compile(r"^[a-z0-9_]+(/[a-z0-9_]+)*$")
_KEY_RE = re.compile(r"^[0-9a-f]{20}$")
_IDENT_RE = re.compile(r"^[0-9a-f]{16}$")
_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f`]{1,200}$")  # a bundle's name as the book prints it: one plain line


MAP_RECORD = "map"  # the manifest record that makes a bundle a verdict map (memlib.verdict_map)


def is_map(manifest: dict) -> bool:
    """Whether a bundle's manifest is a verdict map's (the chapters leave its results to the map page)."""
    return isinstance(manifest.get(MAP_RECORD), dict)


class BundleError(ValueError):
    """A bundle was refused or cannot be written; ``str(e)`` is one line naming the file and why."""


@dataclass
class ImportReport:
    bundle: str
    ident: str
    root: str = ""                                      # the bundle's root hash
    imported: list[str] = field(default_factory=list)   # "<kind>/<key>" now in the store
    already: list[str] = field(default_factory=list)    # already stored, left as they were
    recorded: bool = False                              # the bundle's record was new

    def text(self) -> str:
        if not self.imported and not self.recorded:
            return f"{self.bundle}: already imported, nothing to do ({len(self.already)} result(s) stored)"
        if not self.imported:
            return (f"{self.bundle}: its {len(self.already)} result(s) were already stored; nothing imported "
                    f"(root hash {self.root})")
        more = f", {len(self.already)} already stored" if self.already else ""
        return (f"{self.bundle}: imported {len(self.imported)} result(s){more}: {', '.join(self.imported)} "
                f"(root hash {self.root})")


def root_hash(manifest: Any) -> str:
    """The bundle's root hash: SHA-256 of its manifest's canonical form (see the module docstring)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def plain(d: Any) -> Any:
    """A configuration as JSON reads it back (keys sorted, numpy scalars as Python numbers)."""
    return json.loads(json.dumps(jsonable(dict(d)), sort_keys=True, default=str))


def claim_modules() -> dict[str, str]:
    """Each claim's result kind (its experiment's ``NAME``) and its experiment module."""
    return {get_experiment(mod).NAME: mod for mod in REGISTRY.values()}


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
    out = {MANIFEST: (d / MANIFEST).read_bytes()}
    manifest = parse(out[MANIFEST], d / MANIFEST)
    for rel in manifest["files"]:
        _check_rel(rel, d / MANIFEST)
        out[rel] = (d / rel).read_bytes()
    return out


# ----------------------------------------------------------------------------- export

def export(store: Store, selections: list[dict[str, Any]], out: Path | str,
           extra: dict[str, Any] | None = None) -> Path:
    """Write the stored results ``selections`` names as one bundle at ``out`` (a folder; a ``.tar`` file when
    ``out`` ends in ``.tar``).  Each selection: ``kind``, ``key`` and what the bundle records about it (``claim``,
    ``profile``, ``overrides``).  Every result is verified first; a bad or missing one is refused by name.
    ``extra``: further manifest records (a verdict map's ``map``, :mod:`memlib.verdict_map`), covered by the root
    hash like the rest."""
    out = Path(out)
    reserved = {"format", "version", "created_at", "created_with", "entries", "files"}
    if extra and reserved & set(extra):
        raise BundleError(f"extra manifest records may not replace {sorted(reserved & set(extra))}")
    if out.exists() or out.is_symlink():
        raise BundleError(f"{out} already exists: choose another path or delete it")
    if Path(os.path.realpath(out)).is_relative_to(os.path.realpath(store.root)):
        raise BundleError(f"{out} is inside the results store {store.root}, which would take the bundle's copies for "
                          "stored results: write the bundle elsewhere (e.g. results/NAME)")
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
                        "config": parse(entry["config.json"], d / "config.json"),
                        "provenance": entry_provenance(result, modules if same else None),
                        "bytes": sum(len(b) for b in entry.values())})
    from ._version import __version__

    manifest = {"format": FORMAT_NAME, "version": VERSION,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "created_with": {"memlib_version": __version__, "memlib_commit": _git_commit(PACKAGE_DIR.parent),
                                 "source_fingerprint": current, "host": socket.gethostname()},
                "entries": records,
                "files": {rel: {"sha256": _sha256(b), "bytes": len(b)} for rel, b in sorted(files.items())},
                **plain(extra or {})}
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
    if not all(_PART_RE.fullmatch(part) for part in rel.split("/")):
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
        manifest = parse(files.pop(BUNDLE_MANIFEST), mpath)
        fmt, version, listed, entries = (manifest["format"], manifest["version"], manifest["files"],
                                         manifest["entries"])
    except MalformedJSON as e:
        raise BundleError(f"{mpath} is not a bundle manifest: it {e.reason.removeprefix('is ')}") from None
    except (KeyError, TypeError) as e:
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
        if not (isinstance(kind, str) and _KIND_RE.fullmatch(kind) and isinstance(key, str)
                and _KEY_RE.fullmatch(key) and base == f"entries/{kind}/{key}"):
            raise BundleError(f"{path}/{BUNDLE_MANIFEST}: result record {kind!r}/{key!r} is malformed")
        if base in {r["path"] for r, _ in out}:
            raise BundleError(f"{path}/{BUNDLE_MANIFEST}: result {kind}/{key} is listed twice")
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
        listed = parse(mine[MANIFEST], f"{base}/{MANIFEST}")
        names = set(listed["files"])
        same = listed.get("kind") == rec["kind"] and listed.get("key") == rec["key"]
    except MalformedJSON as e:
        raise BundleError(str(e)) from None
    except (AttributeError, KeyError, TypeError) as e:
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
        fsync_dir(sub)
    try:
        result = read_entry(d, rec["config"])
    except BadEntry as e:
        raise BundleError(f"{base}: {str(e).replace(str(d), base)}") from None
    recorded = rec.get("provenance")
    modules = recorded.get("modules") if isinstance(recorded, dict) else None
    if recorded != json.loads(json.dumps(entry_provenance(result, modules))):
        raise BundleError(f"{path}/{BUNDLE_MANIFEST}: the provenance of {rec['kind']}/{rec['key']} differs from "
                          f"its {base}/provenance.json")
    return d


def _check_config(path: Path, rec: dict) -> None:
    """The record must be a claim's result whose profile and overrides resolve, with today's memlib, to exactly the
    configuration it carries (which :func:`_stage` checks against the result's own ``config.json``): a label such
    as ``profile: paper`` can then never stand for a smaller run."""
    where = f"{path}/{BUNDLE_MANIFEST}: result {rec['kind']}/{rec['key']}"
    mod = claim_modules().get(rec["kind"])
    if mod is None:
        raise BundleError(f"{where} is not the result of a claim this memlib knows")
    config, profile, overrides = rec.get("config"), rec.get("profile"), rec.get("overrides", {})
    if not isinstance(config, dict) or not config:
        raise BundleError(f"{where} has no configuration, so what it was computed with cannot be checked")
    if profile not in PROFILES or not isinstance(overrides, dict):
        raise BundleError(f"{where} names profile {profile!r} and overrides {overrides!r}; a record needs one of "
                          f"the profiles {', '.join(PROFILES)} and a mapping of overrides")
    try:
        want = plain(resolve(mod, profile, overrides).hashed_dict())
    except ConfigError as e:
        raise BundleError(f"{where}: its profile {profile} and overrides {overrides} do not resolve ({e})") from None
    differ = [f"{k} {json.dumps(config.get(k, 'absent'))} (in its configuration) vs "
              f"{json.dumps(want.get(k, 'absent'))}" for k in sorted(set(want) | set(config))
              if want.get(k, ...) != config.get(k, ...)]
    if differ:
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise BundleError(f"{where} says profile {profile} with overrides {overrides}, which resolve to other values "
                          f"than the configuration it was computed with: {'; '.join(differ[:3])}{more}")


def _check_conflict(path: Path, store: Store, rec: dict, mine: dict[str, bytes]) -> None:
    """A valid result already stored under the record's key must be the bundle's own (the same manifest); a bad one
    in the way is moved aside when the result is installed."""
    here = store.root / rec["kind"] / rec["key"]
    if not os.path.lexists(here):
        return
    try:
        read_entry(here)
        same = (here / MANIFEST).read_bytes() == mine[MANIFEST]
    except (BadEntry, OSError):
        return
    if not same:
        raise BundleError(f"{path}/{rec['path']} is another result than the one stored under the same key in {here} "
                          "(their files differ): compare the two, and move the stored one aside to import this one")


@dataclass
class Checked:
    """A bundle that passed :func:`check_bundle`: its manifest, root hash and each result staged in a folder."""
    manifest: dict
    root: str
    staged: list[tuple[dict, Path]]


def check_bundle(path: Path | str, store: Store, staging: Path) -> Checked:
    """Every check of the bundle at ``path`` (see the module docstring), its results written into ``staging`` and
    checked there as the store checks its own; :class:`BundleError` (one line) at the first that fails.  What
    ``import`` and ``verify --bundle`` both run."""
    path = Path(path)
    manifest, files = read_bundle(path)
    staged = []
    for rec, mine in _entries(path, manifest, files):
        _check_config(path, rec)
        staged.append((rec, _stage(path, staging, rec, mine)))
        _check_conflict(path, store, rec, mine)
    return Checked(manifest, root_hash(manifest), staged)


def verify_bundle(path: Path | str, store: Store | None = None) -> Checked:
    """:func:`check_bundle` without importing: staged in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="memlib-verify-") as tmp:
        return check_bundle(path, store or Store(), Path(tmp))


# ----------------------------------------------------------------------------- import

def import_bundle(path: Path | str, store: Store | None = None) -> ImportReport:
    """Verify the bundle at ``path`` completely (:func:`check_bundle`), then move its results into ``store`` and
    record it.  Raises :class:`BundleError` (nothing imported, nothing recorded) for a bad bundle."""
    store = store or Store()
    path = Path(path)
    store.check_writable()
    store.clean_tmp(store.root)  # staging folders of imports that were killed
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-import-{socket.gethostname().replace('-', '_')}-{os.getpid()}-",
                                    dir=store.root))
    try:
        checked = check_bundle(path, store, staging)  # all checked, then installed
        report = ImportReport(str(path), checked.root[:16], checked.root)
        for rec, d in checked.staged:
            final = store.root / rec["kind"] / rec["key"]
            name = f"{rec['kind']}/{rec['key']}"
            final.parent.mkdir(parents=True, exist_ok=True)
            if store._install(d, final, replace=False):
                fsync_dir(final.parent)
                report.imported.append(name)
            else:
                report.already.append(name)
        report.recorded = _record(store, report.ident, path, checked)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _record(store: Store, ident: str, path: Path, checked: Checked) -> bool:
    """Write ``<store>/.imported/<ident>.json`` (atomically) unless it is there; True when written.  A result that
    another writer stored under the same key between the check and the install is a conflict: no record."""
    for rec, _ in checked.staged:
        here = store.root / rec["kind"] / rec["key"]
        if _sha256((here / MANIFEST).read_bytes()) != checked.manifest["files"][f"{rec['path']}/{MANIFEST}"]["sha256"]:
            raise BundleError(f"{path}/{rec['path']} is another result than the one stored under the same key in "
                              f"{here} (stored there while it was imported); its record is not written")
    folder = store.root / IMPORTED
    dest = folder / f"{ident}.json"
    if dest.exists():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(dest, {"bundle": path.name, "source": str(path), "root": checked.root,
                             "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "manifest": checked.manifest},
                      indent=2, sort_keys=True)
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

def _record_problem(p: Path, rec: Any) -> str | None:
    """Why the import record ``p`` cannot be trusted, or None: it must be what :func:`_record` writes, unedited."""
    if not _IDENT_RE.fullmatch(p.stem):
        return f"{p}: its name is not the start of a bundle's root hash"
    if not isinstance(rec, dict) or not isinstance(rec.get("manifest"), dict):
        return f"{p} is not an import record (no bundle manifest in it)"
    name, m = rec.get("bundle"), rec["manifest"]
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        return f"{p}: its bundle name {name!r} is missing or not one plain line"
    if not isinstance(m.get("entries"), list) or not isinstance(m.get("files"), dict):
        return f"{p}: the manifest it holds has no list of results and no files"
    if root_hash(m)[:16] != p.stem:
        return f"{p}: the manifest it holds is not the bundle it was recorded for (edited after the import)"
    for e in m["entries"]:
        kind, key = (e.get("kind"), e.get("key")) if isinstance(e, dict) else (None, None)
        if not (isinstance(kind, str) and _KIND_RE.fullmatch(kind) and isinstance(key, str)
                and _KEY_RE.fullmatch(key) and e.get("path") == f"entries/{kind}/{key}"):
            return f"{p}: result {kind!r}/{key!r} is not a plain kind and hex key"
        digest = m["files"].get(f"{e['path']}/{MANIFEST}")
        if not (isinstance(digest, dict) and isinstance(digest.get("sha256"), str)
                and isinstance(e.get("config"), dict) and isinstance(e.get("provenance", {}), dict)):
            return f"{p}: result {kind}/{key} has no manifest hash, configuration or provenance"
    return None


def imported(store: Store | None = None) -> list[dict[str, Any]]:
    """The records of the bundles imported into ``store`` (oldest first), each checked as untrusted input: a record
    that cannot be read or trusted is returned as ``{"record": path, "problem": ...}`` so that it is reported (and
    moved aside by ``verify --fix``), never followed."""
    store = store or Store()
    folder = store.root / IMPORTED
    out = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() and not folder.is_symlink() else ():
        if p.name.startswith("."):
            continue
        try:
            rec = read_json(p, max_bytes=MAX_RECORD_BYTES)
        except (MalformedJSON, OSError) as e:
            out.append({"record": str(p), "problem": str(e) if isinstance(e, MalformedJSON)
                        else f"{p} is unreadable ({e.strerror or e})"})
            continue
        problem = _record_problem(p, rec)
        out.append({"record": str(p), "problem": problem} if problem else {**rec, "record": str(p)})
    return sorted(out, key=lambda r: str(r.get("imported_at", "")))


def entry_dir(store: Store, kind: str, key: str) -> Path:
    """The store folder of a checked record's result; :class:`BadEntry` when a link leads it out of the store."""
    d = store.root / kind / key
    if not Path(os.path.realpath(d)).is_relative_to(os.path.realpath(store.root)):
        raise BadEntry(f"{d} leads outside the results store {store.root} (a symbolic link on the way)")
    return d


def verify_imported(store: Store | None = None, fix: bool = False) -> list[tuple[str, str]]:
    """``(bundle or record, reason)`` for each import record that cannot be trusted (moved aside when ``fix``) and
    each imported result that is gone or no longer the one imported."""
    store = store or Store()
    bad = []
    for rec in imported(store):
        if rec.get("problem"):
            why = rec["problem"]
            if fix:
                try:
                    why += f" -> moved to {store.move_aside(Path(rec['record']))}"
                except OSError as e:
                    why += f" -> NOT moved ({e.strerror or e}); delete it by hand"
            bad.append((rec["record"], why))
            continue
        m = rec["manifest"]
        for e in m["entries"]:
            digest = m["files"][f"{e['path']}/{MANIFEST}"]["sha256"]
            try:
                d = entry_dir(store, e["kind"], e["key"])
                read_entry(d)
                ok = _sha256((d / MANIFEST).read_bytes()) == digest
                why = (f"{d} is not the result bundle {rec['bundle']} imported (its manifest changed); to restore "
                       "it, move that folder aside and import the bundle again")
            except BadEntry as err:
                ok, why = False, f"{err} (imported from bundle {rec['bundle']}; import it again to restore it)"
            if not ok:
                bad.append((rec["bundle"], why))
    return bad
