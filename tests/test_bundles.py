"""Result bundles (memlib.bundle) and how the book shows imported results (memlib.evidence)."""
import dataclasses
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from memlib import bundle as B
from memlib import cli, evidence
from memlib.experiments import get_experiment, resolve
from memlib.claims import get_claim
from memlib.keys import module_hashes
from memlib.store import Store
from memlib.summary import summary_markdown

ROOT = Path(__file__).resolve().parents[1]
from conftest import CLAIM1 as CLAIM
from conftest import CLAIM1_SMALL as SMALL


@pytest.fixture
def computed(claim1_small):
    """A store holding claim 1's (small) smoke result, computed once for the module (conftest)."""
    return claim1_small


@pytest.fixture
def exported(computed, tmp_path):
    store, cfg, _ = computed
    return B.export(store, evidence.selection(store, "01", "smoke", SMALL), tmp_path / "c1-smoke")


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()} \
        if root.exists() else {}


def test_round_trip_is_a_store_hit_with_the_same_verdict(computed, exported, tmp_path):
    store, cfg, original = computed
    empty = Store(tmp_path / "empty")
    report = B.import_bundle(exported, empty)
    assert report.imported == [f"{CLAIM}/{store.path(CLAIM, cfg.hashed_dict()).name}"] and report.recorded
    again = get_experiment(CLAIM).run(cfg, empty)
    assert again.cached  # served from the store: nothing trained ...
    assert not (empty.root / CLAIM / "seed").exists()  # ... not even one seed
    v0, v1 = get_claim(CLAIM).check(original, cfg), get_claim(CLAIM).check(again, cfg)
    assert (v1.status, v1.summary) == (v0.status, v0.summary)
    pd.testing.assert_frame_equal(again.tables["similarity"], original.tables["similarity"], check_dtype=False)


def test_bundle_is_plain_files_with_hashes_config_and_provenance(computed, exported):
    manifest = json.loads((exported / "bundle.json").read_bytes())
    assert manifest["format"] == B.FORMAT_NAME and manifest["version"] == B.VERSION
    (e,) = manifest["entries"]
    assert e["claim"] == "01_gradient_similarity" and e["profile"] == "smoke"
    assert e["overrides"] == SMALL and e["config"]["n_train"] == 200
    prov = e["provenance"]
    for k in ("device", "precision", "threads", "torch", "date", "memlib_commit", "source_fingerprint"):
        assert prov[k] not in (None, ""), k
    assert prov["modules"] == module_hashes() and "train.py" in prov["modules"]
    files = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()}
    assert files == set(manifest["files"]) | {"bundle.json"}
    assert {Path(f).suffix for f in files} <= {".json", ".csv", ".npy"}  # no pickle, no checkpoint


def test_tar_bundle_round_trips(computed, tmp_path):
    store, cfg, _ = computed
    tar = B.export(store, evidence.selection(store, "01", "smoke", SMALL), tmp_path / "c1.tar")
    assert tar.is_file() and tarfile.is_tarfile(tar)
    report = B.import_bundle(tar, Store(tmp_path / "empty"))
    assert len(report.imported) == 1


def test_reimport_is_a_no_op(exported, tmp_path):
    store = Store(tmp_path / "empty")
    B.import_bundle(exported, store)
    before = snapshot(store.root)
    report = B.import_bundle(exported, store)
    assert report.imported == [] and not report.recorded and "already imported, nothing to do" in report.text()
    assert snapshot(store.root) == before


def test_importing_results_already_stored_changes_none_of_them(computed, exported):
    store, _, _ = computed
    entries = {p: snapshot(p) for p in store.entries()}
    report = B.import_bundle(exported, store)
    assert report.imported == [] and len(report.already) == 1 and "nothing imported" in report.text()
    assert {p: snapshot(p) for p in store.entries()} == entries


def _entry_file(bundle: Path, name: str) -> Path:
    (hit,) = [p for p in bundle.rglob(name)]
    return hit


def _flip_byte(p: Path, at: int = 10) -> None:
    b = bytearray(p.read_bytes())
    b[at] = ord("9") if b[at] != ord("9") else ord("8")
    p.write_bytes(bytes(b))


def _rewrite_manifest(bundle: Path, change) -> None:
    m = json.loads((bundle / "bundle.json").read_bytes())
    change(m)
    (bundle / "bundle.json").write_text(json.dumps(m))


def _relist(bundle: Path, rel: str) -> None:
    """Record ``rel``'s current bytes in bundle.json, as a consistent forger would."""
    import hashlib

    data = (bundle / rel).read_bytes()
    _rewrite_manifest(bundle, lambda m: m["files"].__setitem__(rel, {"sha256": hashlib.sha256(data).hexdigest(),
                                                                      "bytes": len(data)}))


def _tamper_byte(b):
    _flip_byte(_entry_file(b, "similarity.csv"), 40)
    return "similarity.csv does not match the hash recorded in bundle.json"


def _truncate(b):
    p = _entry_file(b, "history.csv")
    p.write_bytes(p.read_bytes()[:50])
    return "history.csv is 50 bytes"


def _wrong_format(b):
    _rewrite_manifest(b, lambda m: m.__setitem__("format", "zip-of-pickles"))
    return "bundle.json is not a memlib-result-bundle manifest"


def _not_json(b):
    (b / "bundle.json").write_bytes(b"\x80\x04pickle?")
    return "bundle.json is not a bundle manifest"


def _no_manifest(b):
    (b / "bundle.json").unlink()
    return "bundle.json is missing"


def _dotdot_path(b):
    _rewrite_manifest(b, lambda m: m["files"].__setitem__("../escape.csv", {"sha256": "0" * 64, "bytes": 1}))
    return "path '../escape.csv' is not a plain relative path"


def _absolute_path(b):
    _rewrite_manifest(b, lambda m: m["files"].__setitem__("/etc/passwd", {"sha256": "0" * 64, "bytes": 1}))
    return "path '/etc/passwd' is not a plain relative path"


def _symlink(b):
    p = _entry_file(b, "summary.json")
    p.unlink()
    p.symlink_to("/etc/hostname")
    return "summary.json is a symbolic link"


def _extra_file(b):
    (b / "entries" / "run_me.py").write_text("print('hi')")
    return "run_me.py is not listed in bundle.json"


def _consistent_forgery(b):
    """A changed table whose bundle.json record is updated too: the store's own manifest still refuses it."""
    p = _entry_file(b, "similarity.csv")
    _flip_byte(p, 40)
    _relist(b, p.relative_to(b).as_posix())
    return "similarity.csv does not match the hash recorded when it was stored"


def _config_mismatch(b):
    _rewrite_manifest(b, lambda m: m["entries"][0]["config"].__setitem__("epochs", 50))
    return "which resolve to other values than the configuration it was computed with: epochs 50 (in its " \
           "configuration) vs 2"


def _config_json_mismatch(b):
    """The record's configuration is right; the result's own config.json is not (every hash redone to match)."""
    import hashlib

    p = _entry_file(b, "config.json")
    p.write_text(p.read_text().replace('"epochs": 2', '"epochs": 50'))
    man = p.parent / "manifest.json"
    m = json.loads(man.read_text())
    m["files"]["config.json"] = hashlib.sha256(p.read_bytes()).hexdigest()
    man.write_text(json.dumps(m))
    for f in (p, man):
        _relist(b, f.relative_to(b).as_posix())
    return "config.json is not the configuration this key stands for"


@pytest.mark.parametrize("damage", [_tamper_byte, _truncate, _wrong_format, _not_json, _no_manifest, _dotdot_path,
                                    _absolute_path, _symlink, _extra_file, _consistent_forgery, _config_mismatch,
                                    _config_json_mismatch])
def test_a_bad_bundle_is_refused_naming_the_file_and_nothing_is_imported(exported, tmp_path, damage):
    expected = damage(exported)
    store = Store(tmp_path / "target")
    store.check_writable()
    with pytest.raises(B.BundleError) as e:
        B.import_bundle(exported, store)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg
    assert snapshot(store.root) == {} and list(store.root.iterdir()) == []  # no entry, no record, no staging


def test_an_oversized_file_is_refused(exported, tmp_path, monkeypatch):
    sizes = sorted((p.stat().st_size, p.name) for p in exported.rglob("*") if p.is_file())
    (second, _), (largest, name) = sizes[-2:]
    monkeypatch.setattr(B, "MAX_FILE_BYTES", (second + largest) // 2)  # only the largest file is too large
    with pytest.raises(B.BundleError, match=rf"{name} is {largest:,} bytes, more than a bundle file may hold"):
        B.import_bundle(exported, Store(tmp_path / "target"))


def test_a_truncated_tar_is_refused(computed, tmp_path):
    store, _, _ = computed
    tar = B.export(store, evidence.selection(store, "01", "smoke", SMALL), tmp_path / "c1.tar")
    tar.write_bytes(tar.read_bytes()[:3000])
    target = Store(tmp_path / "target")
    with pytest.raises(B.BundleError, match=r"c1\.tar"):
        B.import_bundle(tar, target)
    assert snapshot(target.root) == {}


def test_a_tar_with_a_link_or_an_escaping_name_is_refused(tmp_path):
    for name, kind in [("../../evil.json", tarfile.REGTYPE), ("bundle.json", tarfile.SYMTYPE)]:
        tar = tmp_path / "evil.tar"
        with tarfile.open(tar, "w") as tf:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            tf.addfile(info, None if kind == tarfile.SYMTYPE else io.BytesIO(b""))
        with pytest.raises(B.BundleError, match="not a plain relative path|link or a special file"):
            B.read_bundle(tar)


def test_a_bundle_from_older_code_is_shown_as_older_naming_the_changed_modules(computed, tmp_path, monkeypatch):
    store, cfg, result = computed
    old = Store(tmp_path / "old")  # the same result, as stored by code with another fingerprint
    old._fingerprint = "0123456789abcdef"
    old.put(CLAIM, cfg.hashed_dict(),
            dataclasses.replace(result, provenance={**result.provenance, "source_fingerprint": old.fingerprint}))
    then = {**module_hashes(), "train.py": "0" * 16, "gone.py": "1" * 16}
    monkeypatch.setattr(B, "module_hashes", lambda: then)
    bundle = B.export(old, evidence.selection(old, "01", "smoke", SMALL), tmp_path / "old-bundle")
    monkeypatch.undo()

    target = Store(tmp_path / "target")
    B.import_bundle(bundle, target)
    assert target.get(CLAIM, cfg.hashed_dict()) is None  # today's key differs: the store would not serve it ...
    (row,) = evidence.bundle_evidence(store=target, build="quick").to_dict("records")  # ... but it is shown
    assert row["current"] is False and row["changed"] == ["gone.py (removed)", "train.py"]
    assert row["version"].startswith("computed by an earlier version of memlib (code fingerprint 0123456789abcdef")
    assert "computing modules changed since: gone.py (removed), train.py" in row["version"]
    assert row["verdict"] == get_claim(CLAIM).check(result, cfg).status and row["device"].startswith("cpu")
    md = summary_markdown(pd.DataFrame(columns=["claim", "title", "verdict", "kind", "scale", "reduced"]),
                          evidence.bundle_evidence(store=target, build="quick"))
    assert "computed by an earlier version of memlib" in md and "train.py" in md and "old-bundle" in md
    chapter = evidence.chapter_markdown(resolve(CLAIM, "quick"), target)
    assert ":class: warning" in chapter and "earlier version of memlib" in chapter


def test_todays_bundle_is_shown_as_current_and_not_twice(computed, exported, tmp_path):
    store, cfg, _ = computed
    target = Store(tmp_path / "target")
    B.import_bundle(exported, target)
    (row,) = evidence.bundle_evidence(store=target, build=cfg).to_dict("records")
    assert row["current"] and row["this_build"] and row["version"].startswith("computed by today's computing code")
    assert "this page's own result is the one imported from bundle `c1-smoke`" in \
        evidence.chapter_markdown(cfg, target)
    own = pd.DataFrame([{"claim": "01_gradient_similarity", "title": "G", "verdict": "inconclusive", "kind": "paper",
                         "scale": "smoke profile", "reduced": True, "summary": ""}])
    md = summary_markdown(own, evidence.bundle_evidence(store=target, build=cfg))
    assert "| smoke profile | this build (imported from bundle `c1-smoke`) |" in md and md.count("c1-smoke") == 1
    other = evidence.chapter_markdown(resolve(CLAIM, "quick"), target)
    assert "Reduced-scale evidence from a result bundle" in other and "smoke profile" in other


def test_summary_lists_paper_scale_bundles_under_paper_scale_evidence():
    row = dict.fromkeys(evidence.COLUMNS, "")
    row.update(claim="01_gradient_similarity", title="Gradients", verdict="reproduced", kind="paper",
               scale="paper profile · ResNet-9 (width 64)", reduced=False, device="cuda NVIDIA H200, bf16",
               date="2026-12-01T10:00:00+0000", commit="abcdef0123456789", bundle="c1-paper", current=True,
               version="computed by today's computing code", this_build=False)
    own = pd.DataFrame([{"claim": "01_gradient_similarity", "title": "Gradients", "verdict": "inconclusive",
                         "kind": "paper", "scale": "quick profile", "reduced": True, "summary": ""}])
    paper, reduced = summary_markdown(own, pd.DataFrame([row])).split("**Reduced-scale evidence")
    assert "| **reproduced** | paper profile · ResNet-9 (width 64) | bundle `c1-paper`: cuda NVIDIA H200, bf16, " \
           "2026-12-01, memlib commit abcdef0123;" in paper
    assert "| **inconclusive** | quick profile | this build |" in reduced


def test_an_imported_result_that_is_damaged_later_is_reported_not_dropped(exported, tmp_path, monkeypatch, capsys):
    store = Store(tmp_path / "target")
    B.import_bundle(exported, store)
    _flip_byte(_entry_file(store.root, "similarity.csv"), 40)
    (name, reason), = B.verify_imported(store)
    assert name == "c1-smoke" and "similarity.csv does not match" in reason
    (row,) = evidence.bundle_evidence(store=store, build="quick").to_dict("records")
    assert row["problem"].startswith("the imported result is damaged or gone") and row["verdict"] == "not checked"
    monkeypatch.setenv("MEMLIB_STORE", str(store.root))
    assert cli.main(["verify"]) == 1
    assert "bad: imported bundle c1-smoke" in capsys.readouterr().out


def test_cli_export_import_and_refusal(computed, tmp_path, monkeypatch, capsys):
    store, _, _ = computed
    monkeypatch.setenv("MEMLIB_STORE", str(store.root))
    args = ["export", "01", "--profile", "smoke"] + [f"-p{k}={v}" for k, v in SMALL.items()]
    assert cli.main(args + ["-o", str(tmp_path / "b")]) == 0
    assert "bundle: " in capsys.readouterr().out
    assert cli.main(["export", "01", "--profile", "quick", "-o", str(tmp_path / "c")]) == 2  # not stored
    assert "no stored result of 01_gradient_similarity at the quick profile" in capsys.readouterr().err
    monkeypatch.setenv("MEMLIB_STORE", str(tmp_path / "new"))
    assert cli.main(["import", str(tmp_path / "b")]) == 0
    assert "imported 1 result(s)" in capsys.readouterr().out
    assert cli.main(["import", str(tmp_path / "b")]) == 0
    assert "already imported, nothing to do" in capsys.readouterr().out
    _flip_byte(_entry_file(tmp_path / "b", "summary.json"), 20)
    assert cli.main(["import", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("refused: ") and "summary.json does not match" in err and err.count("\n") == 1
    assert cli.main(["verify", "--bundle", str(tmp_path / "b")]) == 1


def test_import_folder_imports_the_good_and_reports_the_bad(computed, exported, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "README.md").write_text("bundles")
    os.rename(exported, folder / "good")
    bad = B.export(computed[0], evidence.selection(computed[0], "01", "smoke", SMALL), folder / "bad")
    _flip_byte(_entry_file(bad, "history.csv"), 30)
    refused, good = B.import_folder(folder, Store(tmp_path / "target"))  # in name order: bad, good
    assert isinstance(refused, B.BundleError) and "bad/entries" in str(refused)
    assert len(good.imported) == 1


def test_committed_bundles_verify_and_results_is_not_ignored(tmp_path):
    results = ROOT / "results"
    assert (results / "README.md").exists()
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/x/bundle.json"], cwd=ROOT).returncode
    assert ignored == 1  # git would commit a bundle put there
    readme = (results / "README.md").read_text()
    for p in sorted(results.iterdir()):
        if p.name != "README.md" and not p.name.startswith("."):  # as make book's import_folder reads it
            checked = B.verify_bundle(p, Store(tmp_path / "empty"))  # every check import runs
            line = [ln for ln in readme.splitlines() if p.name in ln]
            assert line, f"{p.name} has no line in results/README.md"
            assert checked.root in line[0], f"{p.name}'s line in results/README.md does not name its root hash"
            assert checked.staged
