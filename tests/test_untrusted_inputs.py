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
    import re

    risky = re.compile(r"pickle\.load|torch\.load\(|np\.load\(|(?<!\w)eval\((?!\))|(?<!\w)exec\(|yaml\.load\("
                       r"|yaml\.unsafe_load|marshal\.load|shelve\.open|pd\.read_pickle|joblib\.load")
    found = []
    for f in sorted([*root.joinpath("memlib").rglob("*.py"), *root.joinpath("tools").rglob("*.py")]):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if risky.search(code) and not any(a in code for a in allowed):  # not model.eval(), fuse_conv_bn_eval(
                found.append(f"{f.relative_to(root)}:{n}: {line.strip()}")
    assert found == []


# ----------------------------------------------------------------------------- results stores handed over

import io  # noqa: E402

import memlib.store as store_mod  # noqa: E402
from memlib.result import Result  # noqa: E402
from memlib.store import MANIFEST, BadEntry, read_entry  # noqa: E402

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


# ----------------------------------------------------------------------------- JSON read from disk (issue 32, 5)

from memlib import jsonio  # noqa: E402


@pytest.mark.parametrize("text, why", [
    ("[" * 100_000, "nests arrays or objects more than 64 levels deep"),
    ('{"a": ' * 70 + "1" + "}" * 70, "nests arrays or objects more than 64 levels deep"),
    ('{"a": [1, 2', "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
])
def test_malformed_json_is_one_error_naming_the_file(tmp_path, text, why):
    p = tmp_path / "x.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(jsonio.MalformedJSON) as e:
        jsonio.read_json(p)
    assert str(e.value).startswith(f"{p} {why}") and "\n" not in str(e.value)


def test_json_depth_counts_brackets_outside_strings_only(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"s": "[" * 1000 + '"\\"{{{', "a": [[1]]}))
    assert jsonio.read_json(p)["a"] == [[1]] and jsonio.nesting_depth(p.read_text()) == 3


def test_recursion_error_in_the_parser_is_malformed_json(tmp_path, monkeypatch):
    p = tmp_path / "x.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    monkeypatch.setattr(jsonio, "nesting_depth", lambda text: 0)  # the scan missed it: the parser's own limit
    with pytest.raises(jsonio.MalformedJSON, match="too deeply"):
        jsonio.read_json(p)


def test_oversized_linked_or_special_json_is_refused_unread(tmp_path, opened):
    big = tmp_path / "big.json"
    big.write_text("[" + "1," * 100 + "1]")
    with pytest.raises(jsonio.MalformedJSON, match="more than a JSON file may hold here"):
        jsonio.read_json(big, max_bytes=100)
    link = tmp_path / "link.json"
    link.symlink_to("/etc/hostname")
    with pytest.raises(jsonio.MalformedJSON, match="is a symbolic link"):
        jsonio.read_json(link)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(jsonio.MalformedJSON, match="not a regular file"):
        jsonio.read_json(fifo)  # never blocks
    assert "/etc/hostname" not in opened


def test_deeply_nested_manifest_verify_fix_moves_it_aside_in_one_line(store, capsys):
    from memlib.cli import main

    d = _entry(store)
    (d / MANIFEST).write_text("[" * 100_000)
    with pytest.warns(store_mod.StoreWarning, match="nests arrays or objects more than 64 levels"):
        assert store.get("demo", PARAMS) is None  # what run and list do: a miss, quarantined
    d = _entry(store)
    (d / MANIFEST).write_text("[" * 100_000)
    assert main(["list"]) == 0
    capsys.readouterr()
    d = _entry(store)
    (d / MANIFEST).write_text("[" * 100_000)
    assert main(["verify", "--fix"]) == 1
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("bad: ")]
    assert line.startswith(f"bad: {d / MANIFEST} nests arrays or objects more than 64 levels deep -> moved to ")
    assert "Traceback" not in out and main(["verify"]) == 0


# ----------------------------------------------------------------------------- bundles and imported evidence (32)

from memlib import bundle as B  # noqa: E402
from memlib import evidence  # noqa: E402
from memlib.summary import summary_markdown  # noqa: E402

from conftest import CLAIM1, CLAIM1_SMALL  # noqa: E402


@pytest.fixture
def exported(claim1_small, tmp_path):
    src = claim1_small[0]
    return B.export(src, evidence.selection(src, "01", "smoke", CLAIM1_SMALL), tmp_path / "c1-smoke")


def _rewrite(bundle, change):
    m = json.loads((bundle / "bundle.json").read_bytes())
    change(m)
    (bundle / "bundle.json").write_text(json.dumps(m))


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()} \
        if root.exists() else {}


def test_forged_paper_profile_is_refused_at_import_in_one_line(exported, tmp_path, capsys, monkeypatch):
    from memlib.cli import main

    _rewrite(exported, lambda m: m["entries"][0].__setitem__("profile", "paper"))
    target = tmp_path / "target"
    monkeypatch.setenv("MEMLIB_STORE", str(target))
    assert main(["import", str(exported)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("refused: ") and "says profile paper" in err
    assert "which resolve to other values than the configuration it was computed with" in err
    assert [p for p in _files(target) if not p.startswith(".")] == [] and not (target / ".imported").exists()


def test_a_record_without_configuration_is_refused(exported, tmp_path):
    _rewrite(exported, lambda m: m["entries"][0].pop("config"))
    with pytest.raises(B.BundleError, match="has no configuration, so what it was computed with cannot be checked"):
        B.import_bundle(exported, store_mod.Store(tmp_path / "target"))


def test_forged_bundle_adds_no_record_where_the_result_is_stored(claim1_small, exported, tmp_path):
    src = _copy_of(claim1_small, tmp_path)
    before = _files(src.root)
    _rewrite(exported, lambda m: m["entries"][0].__setitem__("profile", "paper"))
    with pytest.raises(B.BundleError, match="says profile paper"):
        B.import_bundle(exported, src)
    assert _files(src.root) == before and not (src.root / ".imported").exists()


def _copy_of(claim1_small, tmp_path):
    """A copy of the shared store holding claim 1's result, to forge records in."""
    import shutil

    src = claim1_small[0]
    shutil.copytree(src.root, tmp_path / "copy", ignore=shutil.ignore_patterns(".imported"))
    store = store_mod.Store(tmp_path / "copy")
    store._fingerprint = src.fingerprint
    return store


def _forge_record(store, bundle, change):
    """An import record written straight into ``<store>/.imported/`` (no import), named after its root hash."""
    m = json.loads((bundle / "bundle.json").read_bytes())
    change(m)
    rec = {"bundle": "forged", "source": "x", "imported_at": "2026-12-01T00:00:00+0000", "manifest": m}
    (store.root / ".imported").mkdir(parents=True, exist_ok=True)
    path = store.root / ".imported" / f"{B.root_hash(m)[:16]}.json"
    path.write_text(json.dumps(rec))
    return path


def test_summary_from_a_forged_store_lists_no_reduced_result_as_paper_scale(claim1_small, exported, tmp_path):
    store = _copy_of(claim1_small, tmp_path)
    _forge_record(store, exported, lambda m: m["entries"][0].update(profile="paper", overrides={}))
    (row,) = evidence.bundle_evidence(store=store, build="quick").to_dict("records")
    assert row["reduced"] and row["scale"].startswith("smoke profile") and "paper" not in row["scale"]
    own = evidence.pd.DataFrame(columns=["claim", "title", "verdict", "kind", "scale", "reduced"])
    paper, reduced = summary_markdown(own, evidence.bundle_evidence(store=store, build="quick")).split(
        "**Reduced-scale evidence")
    assert "forged" not in paper and "forged" in reduced
    chapter = evidence.chapter_markdown(claim1_small[1].replace(epochs=3), store)
    assert "Paper-scale evidence" not in chapter and "Reduced-scale evidence from a result bundle" in chapter


def test_a_record_whose_config_was_deleted_or_changed_is_not_evidence(claim1_small, exported, tmp_path):
    store = _copy_of(claim1_small, tmp_path)
    _forge_record(store, exported, lambda m: m["entries"][0].update(profile="paper", config={}))
    _forge_record(store, exported, lambda m: m["entries"][0]["config"].update(width=64, dataset="cifar10"))
    rows = evidence.bundle_evidence(store=store, build="quick").to_dict("records")
    assert len(rows) == 2 and all(r["reduced"] and r["verdict"] == "not checked" and r["problem"] for r in rows)
    assert all("config.json is not the configuration" in r["problem"] for r in rows)


def _imported_store(exported, tmp_path):
    store = store_mod.Store(tmp_path / "target")
    B.import_bundle(exported, store)
    (rec_path,) = (store.root / ".imported").glob("*.json")
    return store, rec_path


@pytest.mark.parametrize("name, change, why", [
    ("dotdot", lambda r: r["manifest"]["entries"][0].update(key="../../x"), "not a plain kind and hex key"),
    ("nokey", lambda r: r["manifest"]["entries"][0].pop("key"), "not a plain kind and hex key"),
    ("newline", lambda r: r["manifest"]["entries"][0].update(key="a" * 20 + "\n"), "not a plain kind and hex key"),
    ("entries5", lambda r: r["manifest"].update(entries=5), "no list of results"),
    ("nobundle", lambda r: r.pop("bundle"), "bundle name None is missing"),
    ("list", lambda r: r.clear() or r.update(x=[]), "is not an import record"),
])
def test_malformed_import_records_are_reported_and_moved_aside(exported, tmp_path, opened, capsys, monkeypatch,
                                                               name, change, why):
    from memlib.cli import main

    store, p = _imported_store(exported, tmp_path)
    rec = json.loads(p.read_text())
    change(rec)
    p2 = p.with_name(f"{B.root_hash(rec.get('manifest', {}))[:16]}.json")  # renamed as a careful forger would
    p.unlink()
    p2.write_text(json.dumps(rec))
    (tmp_path / "x").mkdir()  # what '../../x' would reach
    monkeypatch.setenv("MEMLIB_STORE", str(store.root))
    opened.clear()
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("bad: imported bundle")]
    assert f"{p2}" in line and why in line and "Traceback" not in out
    assert _outside(opened, store.root) == []
    rows = evidence.bundle_evidence(store=store, build="quick").to_dict("records")
    assert [r["problem"] for r in rows] == [line.split(": ", 2)[2]] and rows[0]["reduced"]
    assert main(["verify", "--fix"]) == 1 and "-> moved to" in capsys.readouterr().out
    assert main(["verify"]) == 0 and not p2.exists()


def test_the_two_records_of_the_issue_are_both_named(exported, tmp_path, opened, capsys, monkeypatch):
    """A record with key '../../x' and one with no key: verify names both, reads nothing outside the store."""
    from memlib.cli import main

    store, p = _imported_store(exported, tmp_path)
    rec = json.loads(p.read_text())
    for change in (lambda e: e.update(key="../../x"), lambda e: e.pop("key")):
        r = json.loads(json.dumps(rec))
        change(r["manifest"]["entries"][0])
        (store.root / ".imported" / f"{B.root_hash(r['manifest'])[:16]}.json").write_text(json.dumps(r))
    monkeypatch.setenv("MEMLIB_STORE", str(store.root))
    opened.clear()
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert out.count("not a plain kind and hex key") == 2 and "Traceback" not in out
    assert _outside(opened, store.root) == []


@pytest.mark.parametrize("what", ["edited", "nested", "symlink", "badname"])
def test_edited_nested_linked_or_misnamed_records_are_bad(exported, tmp_path, what):
    store, p = _imported_store(exported, tmp_path)
    if what == "edited":  # a label changed in the store, without renaming the record
        rec = json.loads(p.read_text())
        rec["manifest"]["entries"][0]["profile"] = "paper"
        p.write_text(json.dumps(rec))
        why = "edited after the import"
    elif what == "nested":
        p.write_text("[" * 100_000)
        why = "nests arrays or objects more than"
    elif what == "symlink":
        p.unlink()
        p.symlink_to("/etc/hostname")
        why = "is a symbolic link"
    else:
        p.rename(p.with_name("not-hex.json"))
        p = p.with_name("not-hex.json")
        why = "its name is not the start of a bundle's root hash"
    ((name, reason),) = B.verify_imported(store)
    assert name == str(p) and why in reason and "\n" not in reason


def test_verify_bundle_runs_exactly_the_checks_of_import(exported, tmp_path, capsys, monkeypatch):
    from memlib.cli import main

    monkeypatch.setenv("MEMLIB_STORE", str(tmp_path / "target"))
    damages = {
        "config": lambda m: m["entries"][0]["config"].update(epochs=9),
        "device": lambda m: m["entries"][0]["provenance"].update(device="cuda NVIDIA H200, bf16"),
        "kind": lambda m: m["entries"][0].update(kind="../gradient_similarity"),
        "path": lambda m: m["entries"][0].update(path="entries/../x"),
        "profile": lambda m: m["entries"][0].update(profile="paper"),
    }
    original = (exported / "bundle.json").read_bytes()
    for name, change in damages.items():
        (exported / "bundle.json").write_bytes(original)
        _rewrite(exported, change)
        assert main(["verify", "--bundle", str(exported)]) == 1, name
        verified = capsys.readouterr().out.strip()
        assert main(["import", str(exported)]) == 1, name
        refused = capsys.readouterr().err.strip()
        assert verified.startswith("bad: ") and refused == f"refused: {verified[5:]}; nothing imported from it", name
    (exported / "bundle.json").write_bytes(original)
    assert main(["verify", "--bundle", str(exported)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"good: {exported} (1 result(s)); root hash ")
    root = out.split("root hash ")[1].strip()
    assert root == B.root_hash(json.loads(original)) and len(root) == 64


def test_a_conflicting_bundle_is_refused_naming_both_and_nothing_is_recorded(claim1_small, exported, tmp_path,
                                                                            capsys, monkeypatch):
    import dataclasses

    from memlib.cli import main

    src, cfg, result = claim1_small
    store = store_mod.Store(tmp_path / "target")  # the same key, another result (its provenance differs)
    d, _ = store._put(CLAIM1, cfg.hashed_dict(), dataclasses.replace(
        result, provenance={**result.provenance, "wall_seconds": 1234.5}),
        final=store.root / CLAIM1 / src.path(CLAIM1, cfg.hashed_dict()).name)
    before = _files(store.root)
    monkeypatch.setenv("MEMLIB_STORE", str(store.root))
    assert main(["import", str(exported)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{exported}/entries/{CLAIM1}/{d.name} is another result than the one stored " \
        f"under the same key in {d}" in err
    assert _files(store.root) == before and not (store.root / ".imported").exists()
    assert main(["verify"]) == 0


def test_export_into_the_store_is_refused(claim1_small, capsys, monkeypatch):
    from memlib.cli import main

    src = claim1_small[0]
    monkeypatch.setenv("MEMLIB_STORE", str(src.root))
    args = ["export", "01", "--profile", "smoke"] + [f"-p{k}={v}" for k, v in CLAIM1_SMALL.items()]
    assert main(args + ["-o", str(src.root / "bundle")]) == 2
    assert f"is inside the results store {src.root}" in capsys.readouterr().err
    assert not (src.root / "bundle").exists()


def test_export_prints_the_root_hash_that_import_prints(claim1_small, tmp_path, capsys, monkeypatch):
    from memlib.cli import main

    monkeypatch.setenv("MEMLIB_STORE", str(claim1_small[0].root))
    args = ["export", "01", "--profile", "smoke"] + [f"-p{k}={v}" for k, v in CLAIM1_SMALL.items()]
    assert main(args + ["-o", str(tmp_path / "b")]) == 0
    root = capsys.readouterr().out.split("root hash: ")[1].split()[0]
    assert root == B.root_hash(json.loads((tmp_path / "b" / "bundle.json").read_bytes()))
    monkeypatch.setenv("MEMLIB_STORE", str(tmp_path / "new"))
    assert main(["import", str(tmp_path / "b")]) == 0
    assert f"(root hash {root})" in capsys.readouterr().out


def test_deeply_nested_bundle_manifest_is_refused_by_import_and_verify(exported, tmp_path, capsys, monkeypatch):
    from memlib.cli import main

    (exported / "bundle.json").write_text("[" * 100_000)
    monkeypatch.setenv("MEMLIB_STORE", str(tmp_path / "target"))
    assert main(["import", str(exported)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bundle.json is not a bundle manifest: it nests arrays or objects" in err
    assert main(["verify", "--bundle", str(exported)]) == 1
    assert "bundle.json is not a bundle manifest: it nests" in capsys.readouterr().out


def test_an_import_record_that_cannot_be_written_is_one_line(exported, tmp_path, capsys, monkeypatch):
    import errno

    from memlib.cli import main

    monkeypatch.setattr(B, "write_json_atomic", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "target" / ".imported" / "x.json"))))
    monkeypatch.setenv("MEMLIB_STORE", str(tmp_path / "target"))
    assert main(["import", str(exported)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not be imported" in err and "No space left on device" in err
    assert not [p for p in (tmp_path / "target").iterdir() if p.name.startswith(".tmp-")]


def test_an_imported_result_behind_a_link_out_of_the_store_is_not_read(exported, tmp_path, opened):
    import shutil

    store, _ = _imported_store(exported, tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.move(str(store.root / CLAIM1), outside)
    (store.root / CLAIM1).symlink_to(outside)
    opened.clear()
    ((name, reason),) = B.verify_imported(store)
    assert name == "c1-smoke" and "leads outside the results store" in reason
    (row,) = evidence.bundle_evidence(store=store, build="quick").to_dict("records")
    assert "leads outside the results store" in row["problem"] and row["reduced"]
    assert [p for p in opened if isinstance(p, str) and str(outside) in p] == []
