"""Fault injection for the results store: nothing wrong is served, nothing finished is lost.

Each test damages the store the way a user, a crash or a full disk would, then checks that ``get`` serves no
wrong number (a damaged entry is a miss, moved to ``.quarantine/`` with a warning naming the file) and that a
finished result is never thrown away.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import memlib.store as store_mod
from memlib.result import Result
from memlib.store import MANIFEST, QUARANTINE, Store, StoreError, StoreWarning, read_entry

PARAMS = {"epochs": 3, "noise_rate": 0.1}


def _result(v=0.9, epochs=3):
    hist = pd.DataFrame({"epoch": list(range(epochs)), "acc": [0.1 * (i + 1) for i in range(epochs - 1)] + [v]})
    return Result({"history": hist}, {"final": v})


def _stored(store, v=0.9):
    store.cached("demo", PARAMS, lambda: _result(v))
    return store.path("demo", PARAMS)


def _quarantined(store):
    q = store.root / QUARANTINE
    return sorted(q.iterdir()) if q.exists() else []


def _recomputes(store, v=0.5):
    calls = []
    with pytest.warns(StoreWarning) as rec:
        r = store.cached("demo", PARAMS, lambda: calls.append(1) or _result(v))
    assert calls == [1] and not r.cached and r.scalars == {"final": v}
    again = store.cached("demo", PARAMS, lambda: calls.append(1) or _result(v))
    assert calls == [1] and again.cached and again.scalars == {"final": v}  # repaired: a hit again
    return " ".join(str(w.message) for w in rec)


# ----------------------------------------------------------------------------- damaged files

def test_edited_number_in_a_table_is_not_served(store):
    d = _stored(store)
    csv = d / "tables" / "history.csv"
    csv.write_text(csv.read_text().replace("0.9", "0.1"))
    msg = _recomputes(store)
    assert str(csv) in msg and "hash" in msg
    assert len(_quarantined(store)) == 1


def test_dropped_last_row_is_not_served(store):
    d = _stored(store)
    csv = d / "tables" / "history.csv"
    csv.write_text("\n".join(csv.read_text().splitlines()[:-1]) + "\n")
    assert str(csv) in _recomputes(store)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_damaged_summary_is_a_miss_not_a_crash(store, damage):
    d = _stored(store)
    s = d / "summary.json"
    if damage == "truncate":
        s.write_bytes(s.read_bytes()[:5])
    elif damage == "garbage":
        s.write_bytes(b"\x00\xff not json")
    else:
        s.unlink()
    with pytest.warns(StoreWarning, match="summary.json"):
        assert store.get("demo", PARAMS) is None
    assert not d.exists() and len(_quarantined(store)) == 1
    assert _result().scalars == store.cached("demo", PARAMS, _result).scalars


def _stored_with_images(store):
    images = np.arange(4 * 3 * 2 * 2, dtype=np.uint8).reshape(4, 3, 2, 2)
    r = _result()
    store.cached("demo", PARAMS, lambda: Result(r.tables, r.scalars, arrays={"grid": images}))
    return store.path("demo", PARAMS)


@pytest.mark.parametrize("damage", ["edit", "truncate", "delete"])
def test_damaged_array_is_not_served(store, damage):
    d = _stored_with_images(store)
    npy = d / "arrays" / "grid.npy"
    data = npy.read_bytes()
    if damage == "edit":
        npy.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one pixel changed: still a valid .npy
    elif damage == "truncate":
        npy.write_bytes(data[:-8])
    else:
        npy.unlink()
    assert str(npy) in _recomputes(store)
    assert len(_quarantined(store)) == 1


def _rewrite_manifest(d, edit):
    man = json.loads((d / MANIFEST).read_text())
    edit(man)
    (d / MANIFEST).write_text(json.dumps(man))


def test_array_of_another_shape_is_not_served(store):
    """A valid .npy of another shape, with its hash put in the manifest: the recorded shape still catches it."""
    d = _stored_with_images(store)
    npy = d / "arrays" / "grid.npy"
    np.save(npy, np.zeros((3, 3, 2, 2), dtype=np.uint8), allow_pickle=False)
    _rewrite_manifest(d, lambda m: m["files"].update({"arrays/grid.npy": store_mod._sha256(npy.read_bytes())}))
    msg = _recomputes(store)
    assert str(npy) in msg and "[3, 3, 2, 2]" in msg and "[4, 3, 2, 2] was stored" in msg


@pytest.mark.parametrize("field, value", [("shape", [2, 6, 2, 2]), ("dtype", "float32")])
def test_array_with_another_recorded_shape_or_dtype_is_not_served(store, field, value):
    d = _stored_with_images(store)
    _rewrite_manifest(d, lambda m: m["arrays"]["grid"].update({field: value}))
    assert "grid.npy holds a uint8 array of shape [4, 3, 2, 2]" in _recomputes(store)


def test_array_listed_without_a_hash_is_not_served(store):
    d = _stored_with_images(store)
    _rewrite_manifest(d, lambda m: m["files"].pop("arrays/grid.npy"))
    assert "without a hash" in _recomputes(store)


def test_deleted_tables_folder_is_a_miss(store):
    import shutil

    d = _stored(store)
    shutil.rmtree(d / "tables")
    assert "history.csv" in _recomputes(store)


def test_folder_without_manifest_is_never_returned(store):
    d = _stored(store)
    (d / MANIFEST).unlink()  # what a writer that died before completion would leave, were it renamed
    assert "never completed" in _recomputes(store)


def test_entry_stored_under_another_config_is_not_served(store):
    d = _stored(store)
    other = store.path("demo", {"epochs": 4, "noise_rate": 0.1})
    other.parent.mkdir(parents=True, exist_ok=True)
    os.rename(d, other)  # a folder copied under the wrong key: its files are intact
    with pytest.warns(StoreWarning, match="config.json"):
        assert store.get("demo", {"epochs": 4, "noise_rate": 0.1}) is None


def test_verify_reports_every_bad_entry_and_fix_moves_them(store, capsys):
    from memlib.cli import main

    good = _stored(store)
    bad1 = store.path("demo", {"a": 1})
    store.put("demo", {"a": 1}, _result())
    bad2 = store.path("demo/seed", {"a": 2})
    store.put("demo/seed", {"a": 2}, _result())
    (bad1 / "summary.json").write_text("{")
    (bad2 / "tables" / "history.csv").write_text("epoch,acc\n")
    bad = dict(store.verify())
    assert set(bad) == {bad1, bad2} and good.exists()
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert str(bad1 / "summary.json") in out and str(bad2 / "tables" / "history.csv") in out
    assert "3 stored results checked" in out and "2 bad" in out
    assert main(["verify", "--fix"]) == 1
    assert main(["verify"]) == 0 and len(_quarantined(store)) == 2
    assert store.get("demo", PARAMS).scalars == {"final": 0.9}  # the good one untouched


def test_verify_checks_arrays(store, capsys):
    from memlib.cli import main

    d = _stored_with_images(store)
    assert main(["verify"]) == 0 and "1 good, 0 bad" in capsys.readouterr().out
    npy = d / "arrays" / "grid.npy"
    npy.write_bytes(npy.read_bytes()[:-1])
    assert main(["verify"]) == 1 and str(npy) in capsys.readouterr().out


# ----------------------------------------------------------------------------- writers that fail

def test_exception_inside_put_leaves_nothing(store, monkeypatch):
    real = store_mod._write_synced
    n = {"calls": 0}

    def flaky(path, data):
        n["calls"] += 1
        if n["calls"] == 3:
            raise RuntimeError("writer died")
        real(path, data)

    monkeypatch.setattr(store_mod, "_write_synced", flaky)
    with pytest.raises(RuntimeError, match="writer died"):
        store.put("demo", PARAMS, _result())
    assert store.get("demo", PARAMS) is None
    assert list((store.root / "demo").iterdir()) == []  # no entry, no .tmp-*


def test_writer_killed_inside_put_leaves_nothing_trusted_and_is_cleaned(store, tmp_path):
    """A separate process SIGKILLs itself after writing two files of a run: nothing is served, and the
    next writer removes its .tmp-* folder and completes the entry."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        import pandas as pd
        import memlib.store as sm
        real, n = sm._write_synced, [0]
        def dying(path, data):
            n[0] += 1
            real(path, data)
            if n[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        sm._write_synced = dying
        r = sm.Result({{"history": pd.DataFrame({{"epoch": [0], "acc": [0.5]}})}}, {{"final": 0.5}})
        sm.Store({str(store.root)!r}).put("demo", {PARAMS!r}, r)
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    tmps = [q for q in (store.root / "demo").iterdir() if q.name.startswith(".tmp-")]
    assert len(tmps) == 1  # the dead writer's half-written folder
    assert store.get("demo", PARAMS) is None and store.runs("demo") == []
    r = store.cached("demo", PARAMS, _result)
    assert not r.cached and not tmps[0].exists()  # stale .tmp-* removed by the next writer
    assert store.get("demo", PARAMS).scalars == {"final": 0.9}


def test_two_writers_racing_both_get_the_winners_result(store):
    barrier = threading.Barrier(2)
    out = {}

    def writer(name, v):
        def compute():
            barrier.wait(timeout=30)
            return _result(v)
        out[name] = Store(store.root).cached("demo", PARAMS, compute)

    threads = [threading.Thread(target=writer, args=(n, v)) for n, v in (("a", 0.1), ("b", 0.2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(out) == {"a", "b"}
    stored = store.get("demo", PARAMS).scalars
    assert out["a"].scalars == out["b"].scalars == stored  # the loser returns the winner's result
    assert [p.name for p in (store.root / "demo").iterdir()] == [store.path("demo", PARAMS).name]


def test_rename_race_lost_between_check_and_rename(store, monkeypatch):
    """Another process renames its run into place just before ours: ENOTEMPTY is handled, theirs is kept."""
    real_rename = os.rename
    state = {"done": False}

    def racing_rename(src, dst):
        if not state["done"] and Path(src).name.startswith(".tmp-"):
            state["done"] = True
            Store(store.root).put("demo", PARAMS, _result(0.7))  # the winner
        return real_rename(src, dst)

    monkeypatch.setattr(store_mod.os, "rename", racing_rename)
    r = store.cached("demo", PARAMS, lambda: _result(0.3))
    assert r.scalars == {"final": 0.7} and store.get("demo", PARAMS).scalars == {"final": 0.7}


def test_refresh_replaces_a_good_entry(store):
    _stored(store, 0.9)
    r = store.cached("demo", PARAMS, lambda: _result(0.4), refresh=True)
    assert r.scalars == {"final": 0.4} and store.get("demo", PARAMS).scalars == {"final": 0.4}


# ----------------------------------------------------------------------------- unwritable and full stores

def test_read_only_store_fails_before_training_chmod(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod does not stop writes (the monkeypatched variant below covers it)")
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        calls = []
        with pytest.raises(StoreError, match="not writable"):
            Store(root).cached("demo", PARAMS, lambda: calls.append(1) or _result())
        assert calls == []
    finally:
        root.chmod(0o700)


def test_read_only_store_fails_before_training_simulated(store, monkeypatch):
    def denied(path, data):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(store_mod, "_write_synced", denied)
    calls = []
    with pytest.raises(StoreError, match=f"results store {store.root} is not writable.*MEMLIB_STORE"):
        store.cached("demo", PARAMS, lambda: calls.append(1) or _result())
    assert calls == []  # no training was started


def test_full_store_is_refused_before_training(store, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 1024))
    calls = []
    with pytest.raises(StoreError, match="KiB free"):
        store.cached("demo", PARAMS, lambda: calls.append(1) or _result())
    assert calls == []


def test_store_filling_up_during_training_keeps_the_result(store, monkeypatch, tmp_path):
    fallback = tmp_path / "fallback"
    monkeypatch.setenv("MEMLIB_STORE_FALLBACK", str(fallback))
    real = store_mod._write_synced

    def full(path, data):
        if Path(path).is_relative_to(store.root) and "write-test" not in Path(path).name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(store_mod, "_write_synced", full)
    with pytest.warns(StoreWarning, match=f"No space left.*saved in {fallback}") as rec:
        r = store.cached("demo", PARAMS, lambda: _result(0.8))
    assert r.scalars == {"final": 0.8} and not r.cached  # returned
    saved = fallback / "demo" / store.path("demo", PARAMS).name
    assert str(saved) in str(rec[0].message)
    kept = read_entry(saved, PARAMS)  # and kept, verified, where the warning says
    assert kept.scalars == {"final": 0.8}
    pd.testing.assert_frame_equal(kept.tables["history"], _result(0.8).tables["history"])
    assert store.get("demo", PARAMS) is None  # nothing half-written in the store itself
    assert [p for p in (store.root / "demo").iterdir()] == []


def _bad_entry(store):
    d = _stored(store)
    (d / "summary.json").write_text("{")
    return d


@pytest.mark.parametrize("how", ["quarantine is a file", "quarantine is read-only"])
def test_bad_entry_that_cannot_go_to_quarantine_is_moved_beside_and_the_result_stored(store, monkeypatch, how):
    d = _bad_entry(store)
    q = store.root / QUARANTINE
    if how == "quarantine is a file":
        q.write_text("in the way")
    else:
        real = os.rename

        def no_quarantine(src, dst):
            if QUARANTINE in str(dst):
                raise PermissionError(errno.EACCES, "Permission denied", str(dst))
            return real(src, dst)

        monkeypatch.setattr(os, "rename", no_quarantine)
    with pytest.warns(StoreWarning) as rec:
        r = store.cached("demo", PARAMS, lambda: _result(0.4))
    moved_to = [p for p in d.parent.iterdir() if p.name.startswith(".bad-")]
    assert len(moved_to) == 1 and f"moved to {moved_to[0]}" in str(rec[0].message)  # names a folder that exists
    assert r.scalars == {"final": 0.4} and store.get("demo", PARAMS).scalars == {"final": 0.4}  # stored
    assert store.entries() == [d]  # the hidden .bad-* folder is not an entry


def test_bad_entry_that_cannot_be_moved_at_all_keeps_the_fresh_result_in_the_fallback(store, monkeypatch, tmp_path):
    fallback = tmp_path / "fallback"
    monkeypatch.setenv("MEMLIB_STORE_FALLBACK", str(fallback))
    d = _bad_entry(store)
    real = os.rename

    def stuck(src, dst):
        if Path(src) == d:
            raise PermissionError(errno.EACCES, "Permission denied", str(src))
        return real(src, dst)

    monkeypatch.setattr(os, "rename", stuck)
    with pytest.warns(StoreWarning) as rec:
        r = store.cached("demo", PARAMS, lambda: _result(0.4))
    assert r.scalars == {"final": 0.4} and not r.cached
    saved = fallback / "demo" / d.name
    msgs = " ".join(str(w.message) for w in rec)
    assert f"saved in {saved}" in msgs and saved.is_dir()  # the hint names a folder that exists
    assert read_entry(saved, PARAMS).scalars == {"final": 0.4}
    assert store.located("demo", PARAMS) == saved


def test_verify_fix_says_not_moved_when_nothing_moved(store, monkeypatch, capsys):
    from memlib.cli import main

    d = _bad_entry(store)

    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(src))

    monkeypatch.setattr(os, "rename", denied)
    assert main(["verify", "--fix"]) == 1
    out = capsys.readouterr().out
    assert "moved to" not in out and f"NOT moved (Permission denied); delete {d} by hand" in out
    assert "1 could not be moved" in out and d.exists()


# ----------------------------------------------------------------------------- housekeeping

def test_stale_tmp_folders_are_removed_and_never_listed(store):
    d = _stored(store)
    stale = d.parent / f".tmp-{d.name}-{store_mod._HOST.replace('-', '_')}-999999999-abc"
    stale.mkdir()
    (stale / "summary.json").write_text("{}")
    os.utime(stale, (0, 0))
    assert store.runs("demo") == [d] and store.entries() == [d]  # .tmp-* is never a run
    store.put("demo", {"other": 1}, _result())
    assert not stale.exists()


def test_manifest_records_hashes_and_rows(store):
    d = _stored(store)
    man = json.loads((d / MANIFEST).read_text())
    assert set(man["files"]) == {"tables/history.csv", "config.json", "provenance.json", "summary.json"}
    assert man["rows"] == {"history": 3} and man["format"] == store_mod.FORMAT


# ----------------------------------------------------------------------------- records written atomically (32)

from memlib import jsonio  # noqa: E402


@pytest.mark.parametrize("fault", ["fsync", "replace", "write", "serialize"])
def test_atomic_json_writer_leaves_the_old_record_whole_and_no_temp_file(tmp_path, monkeypatch, fault):
    p = tmp_path / "record.json"
    jsonio.write_json_atomic(p, {"v": 1}, indent=1)
    old = p.read_bytes()
    boom = OSError(errno.EIO, "Input/output error")
    obj = {"v": 2, "rows": list(range(1000))}
    if fault == "fsync":
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(boom))
    elif fault == "replace":
        monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(boom))
    elif fault == "write":  # cut short: the disk fills after the first bytes
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, b):
                self.f.write(b[:10])
                raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    else:
        obj = {"v": object()}
    with pytest.raises((OSError, TypeError)):
        jsonio.write_json_atomic(p, obj)
    monkeypatch.undo()
    assert p.read_bytes() == old and jsonio.read_json(p) == {"v": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["record.json"]


def test_atomic_json_writer_round_trips_and_ends_in_a_newline(tmp_path):
    p = jsonio.write_json_atomic(tmp_path / "r.json", {"a": [1, 2], "é": "ü"}, indent=2, sort_keys=True)
    assert p.read_text().endswith("}\n") and jsonio.read_json(p) == {"a": [1, 2], "é": "ü"}
    assert oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_fallback_warning_names_the_folders_it_tried(store, monkeypatch, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    monkeypatch.setattr(store_mod, "_fallback_roots", lambda: [blocked / "a", blocked / "b"])
    monkeypatch.setattr(store_mod.Store, "_install", lambda *a: (_ for _ in ()).throw(
        OSError(errno.EROFS, "Read-only file system")))
    with pytest.warns(StoreWarning) as rec:
        r = store.cached("demo", PARAMS, lambda: _result(0.8))
    assert r.scalars == {"final": 0.8}
    msg = str(rec[-1].message)
    assert f"nor to a fallback folder ({blocked / 'a'}, {blocked / 'b'})" in msg and "MEMLIB_STORE_FALLBACK" in msg
