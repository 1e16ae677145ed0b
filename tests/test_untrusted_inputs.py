"""Files a user can be handed (a data folder, a results store) never run code and never reach outside themselves.

A crafted CIFAR-10 batch whose unpickling would create a file is refused, naming the file, before anything runs; a
manifest whose paths lead out of its entry (``..``, absolute paths, symlinks), lists an oversized file, or whose
``files`` is not a mapping makes a bad entry, never a read outside the store or a crash.
"""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from memlib.data import DamagedFile, DatasetUnavailable, load_raw, read_cifar_batch


class _CreatesFile:
    """Unpickling this calls ``what(*args)``: the classic pickle payload."""

    def __init__(self, what, *args):
        self.what, self.args = what, args

    def __reduce__(self):
        return self.what, self.args


def _cifar_folder(cifar_archive):
    load_raw("cifar10", root=cifar_archive, download=False)  # extracts the tiny archive
    return cifar_archive / "cifar-10-batches-py"


@pytest.mark.parametrize("payload", ["os.system", "builtins.open", "subprocess.call", "builtins.exec"])
def test_crafted_cifar_batch_runs_nothing_and_names_the_file(cifar_archive, tmp_path, payload):
    folder = _cifar_folder(cifar_archive)
    marker = tmp_path / "pwned"
    what, args = {"os.system": (os.system, (f"touch {marker}",)),
                  "builtins.open": (open, (str(marker), "w")),
                  "subprocess.call": (subprocess.call, (["touch", str(marker)],)),
                  "builtins.exec": (exec, (f"open({str(marker)!r}, 'w')",))}[payload]
    bad = folder / "data_batch_1"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        bad.write_bytes(pickle.dumps({"data": _CreatesFile(what, *args), "labels": [0]}, protocol=protocol))
        with pytest.raises(DatasetUnavailable) as e:
            load_raw("cifar10", root=cifar_archive, download=False)
        assert not marker.exists()
        msg = str(e.value)
        assert f"{bad} is damaged" in msg and "\n" not in msg and "never holds" in msg


def test_object_arrays_and_other_codecs_are_refused(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({"data": np.array([1, "x"], dtype=object), "labels": [0, 1]}, protocol=2))
    with pytest.raises(DamagedFile, match=str(p)):
        read_cifar_batch(p)
    p.write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [0], "extra": {"a": 1}}))
    with pytest.raises(DamagedFile, match="not a dict of arrays"):
        read_cifar_batch(p)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_genuine_looking_batch_reads_at_every_protocol(tmp_path, protocol):
    p = tmp_path / "data_batch_1"
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    p.write_bytes(pickle.dumps({"batch_label": b"training batch 1 of 5", "labels": [3, 7], "data": data,
                                "filenames": [b"a.png", b"b.png"]}, protocol=protocol))
    d = read_cifar_batch(p)
    assert np.array_equal(d["data"], data) and d["labels"] == [3, 7] and d["filenames"] == [b"a.png", b"b.png"]


def test_oversized_cifar_batch_is_refused_unread(tmp_path, monkeypatch):
    import memlib.data as data_mod

    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps({"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 4}))
    monkeypatch.setattr(data_mod, "CIFAR10_MAX_BYTES", 1000)
    with pytest.raises(DamagedFile, match="more than a CIFAR-10 batch"):
        read_cifar_batch(p)


def test_no_unchecked_deserialization_in_memlib_or_tools():
    """The audit, kept: every pickle/torch.load/np.load/eval/yaml.load in memlib/ and tools/ is a checked one."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    allowed = {"pickle.loads(data, encoding=\"latin1\")",  # data.read_cifar_batch: only after torchvision's MD5
               "np.load(io.BytesIO(blobs[rel]), allow_pickle=False)"}
    risky = ("pickle.load", "torch.load(", "np.load(", "eval(", "exec(", "yaml.load(", "yaml.unsafe_load",
             "marshal.load", "shelve.open", "pd.read_pickle", "joblib.load")
    found = []
    for f in sorted([*root.joinpath("memlib").rglob("*.py"), *root.joinpath("tools").rglob("*.py")]):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for r in risky:
                if r in code and not any(a in code for a in allowed) and ".eval()" not in code:
                    found.append(f"{f.relative_to(root)}:{n}: {line.strip()}")
    assert found == []


# ----------------------------------------------------------------------------- results stores handed over

import io  # noqa: E402

import memlib.store as store_mod  # noqa: E402
from memlib.store import MANIFEST, BadEntry, Result, read_entry  # noqa: E402

PARAMS = {"epochs": 3}


def _entry(store, params=PARAMS):
    import pandas as pd

    store.put("demo", params, Result({"history": pd.DataFrame({"epoch": [0, 1], "acc": [0.5, 0.9]})}, {"f": 1}))
    return store.path("demo", params)


def _edit_manifest(d, **changes):
    man = json.loads((d / MANIFEST).read_text())
    man.update(changes)
    (d / MANIFEST).write_text(json.dumps(man))


@pytest.fixture
def opened(monkeypatch):
    """Every path opened (io.open, os.open) while a test runs."""
    seen = []
    real_io, real_os = io.open, os.open

    def io_open(file, *a, **k):
        seen.append(os.fspath(file) if not isinstance(file, int) else file)
        return real_io(file, *a, **k)

    def os_open(path, *a, **k):
        seen.append(os.fspath(path))
        return real_os(path, *a, **k)

    monkeypatch.setattr(io, "open", io_open)
    monkeypatch.setattr(os, "open", os_open)
    return seen


def _outside(seen, root):
    return [p for p in seen if isinstance(p, str) and os.path.isabs(p)
            and not os.path.realpath(p).startswith(str(root.resolve()) + os.sep)
            and not p.startswith(("/proc", "/sys", sys.prefix, sys.base_prefix))]


@pytest.mark.parametrize("rel", ["../../../../../../../../etc/hostname", "../../etc/hostname", "/etc/hostname",
                                 "tables/../../../../../../../../dev/zero", "./summary.json", "tables//x.csv",
                                 "C:\\windows\\win.ini"])
def test_manifest_paths_leading_out_make_a_bad_entry_and_are_never_read(store, opened, rel):
    d = _entry(store)
    man = json.loads((d / MANIFEST).read_text())
    _edit_manifest(d, files={**man["files"], rel: "0" * 64})
    opened.clear()
    with pytest.raises(BadEntry, match="a path outside its folder"):
        read_entry(d)
    assert _outside(opened, store.root) == []


@pytest.mark.parametrize("link", ["file", "folder", "entry"])
def test_symlinks_leading_out_make_a_bad_entry(store, opened, tmp_path, link):
    d = _entry(store)
    outside = tmp_path / "outside"
    (outside / "tables").mkdir(parents=True)
    (outside / "tables" / "history.csv").write_text("epoch,acc\n0,0.5\n1,0.9\n")
    if link == "file":
        (d / "tables" / "history.csv").unlink()
        (d / "tables" / "history.csv").symlink_to(outside / "tables" / "history.csv")
    elif link == "folder":
        import shutil

        shutil.rmtree(d / "tables")
        (d / "tables").symlink_to(outside / "tables")
    else:
        import shutil

        moved = tmp_path / "elsewhere"
        shutil.move(str(d), moved)
        d.symlink_to(moved)
    opened.clear()
    with pytest.raises(BadEntry, match="symbolic link"):
        read_entry(d)
    assert [p for p in _outside(opened, store.root) if str(outside) in str(p)] == []


def test_device_or_fifo_in_an_entry_is_not_read(store, opened):
    d = _entry(store)
    csv = d / "tables" / "history.csv"
    csv.unlink()
    os.mkfifo(csv)  # a read would block forever
    with pytest.raises(BadEntry, match="not a regular file"):
        read_entry(d)
    assert str(csv) not in map(str, opened)


def test_oversized_file_makes_a_bad_entry_unread(store, opened, monkeypatch):
    d = _entry(store)
    monkeypatch.setattr(store_mod, "MAX_FILE_BYTES", 10)
    opened.clear()
    with pytest.raises(BadEntry, match="more than a stored file may have"):
        read_entry(d)


@pytest.mark.parametrize("field, value", [("files", None), ("files", ["config.json"]), ("files", "x"),
                                          ("rows", None), ("arrays", [1]), ("files", {"config.json": None})])
def test_manifest_with_the_wrong_shape_is_a_bad_entry_not_a_crash(store, field, value):
    d = _entry(store)
    _edit_manifest(d, **{field: value})
    with pytest.raises(BadEntry, match=f"{d / MANIFEST} is unreadable"):
        read_entry(d)
    with pytest.warns(store_mod.StoreWarning, match="moved to"):
        assert store.get("demo", PARAMS) is None


def test_verify_names_escaping_and_null_manifests_without_traceback(store, opened, capsys):
    from memlib.cli import main

    good = _entry(store, {"epochs": 1})
    escaping, null = _entry(store, {"epochs": 2}), _entry(store, {"epochs": 3})
    man = json.loads((escaping / MANIFEST).read_text())
    _edit_manifest(escaping, files={**man["files"], "../../etc/hostname": "0" * 64})
    _edit_manifest(null, files=None)
    opened.clear()
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert f"bad: {escaping / MANIFEST} lists '../../etc/hostname', a path outside its folder" in out
    assert f"bad: {null / MANIFEST} is unreadable" in out and "3 stored results checked" in out and "2 bad" in out
    assert _outside(opened, store.root) == [] and good.exists()
    assert main(["verify", "--fix"]) == 1
    out = capsys.readouterr().out
    assert out.count("-> moved to") == 2 and main(["verify"]) == 0
