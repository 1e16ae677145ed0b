import json
import pickle

import numpy as np
import pandas as pd
import pytest

from memlib.keys import source_fingerprint
from memlib.result import Result
from memlib.store import Store


def _result(v=1.0):
    return Result({"curve": pd.DataFrame({"epoch": [0, 1], "acc": [0.1, v]})}, {"final": v})


def test_miss_then_hit_returns_the_same_tables(store):
    calls = []
    params = {"epochs": 2, "noise_rate": 0.1}

    def compute():
        calls.append(1)
        return _result(0.9)

    first = store.cached("demo", params, compute)
    second = store.cached("demo", params, compute)
    assert len(calls) == 1 and not first.cached and second.cached
    pd.testing.assert_frame_equal(first.tables["curve"], second.tables["curve"])
    assert second.scalars == {"final": 0.9}
    assert second.provenance["torch_version"] and "wall_seconds" in second.provenance


def test_changed_config_is_a_miss(store):
    calls = []
    store.cached("demo", {"epochs": 2}, lambda: calls.append(1) or _result())
    store.cached("demo", {"epochs": 3}, lambda: calls.append(1) or _result())
    store.cached("other", {"epochs": 2}, lambda: calls.append(1) or _result())
    assert len(calls) == 3


def test_changed_source_is_a_miss(store, monkeypatch):
    store.cached("demo", {"a": 1}, _result)
    s2 = Store(store.root)
    s2._fingerprint = "different-code"
    assert s2.get("demo", {"a": 1}) is None


def test_interrupted_run_leaves_nothing_trusted(store):
    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.cached("demo", {"a": 1}, boom)
    assert store.get("demo", {"a": 1}) is None
    assert not list((store.root).rglob("summary.json"))


def test_failed_write_is_atomic(store, monkeypatch):
    """A crash while writing (here: in the middle of the tables) leaves no run directory and no temp dir."""
    bad = _result()
    bad.tables["broken"] = "not a dataframe"  # .to_csv fails after the first table was written
    with pytest.raises(AttributeError):
        store.put("demo", {"a": 2}, bad)
    assert store.get("demo", {"a": 2}) is None
    assert [p.name for p in (store.root / "demo").iterdir()] == []


def test_run_directory_layout(store):
    store.cached("demo", {"a": 3}, _result)
    d = store.path("demo", {"a": 3})
    assert json.loads((d / "config.json").read_text()) == {"a": 3}
    assert (d / "tables" / "curve.csv").exists()
    prov = json.loads((d / "provenance.json").read_text())
    assert {"git_commit", "torch_version", "memlib_version", "wall_seconds", "source_fingerprint"} <= set(prov)


def test_fingerprint_tracks_source(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    f1 = source_fingerprint(pkg)
    (pkg / "a.py").write_text("x = 2\n")
    assert source_fingerprint(pkg) != f1


def test_store_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLIB_STORE", str(tmp_path / "elsewhere"))
    assert Store().root == tmp_path / "elsewhere"


# ----------------------------------------------------------------------------- what is keyed, where the store is

def test_key_includes_threads_torch_version_and_device(store, monkeypatch):
    import torch

    import memlib.keys as keys

    base = Store(store.root).key("demo", {"a": 1})
    monkeypatch.setenv("MEMLIB_THREADS", "97")  # the thread count memlib's training will use
    assert Store(store.root).key("demo", {"a": 1}) != base
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__version__", "0.0.1-other")
    assert Store(store.root).key("demo", {"a": 1}) != base
    monkeypatch.undo()
    monkeypatch.setattr(keys, "device_kind", lambda name="auto": "cuda:Some GPU")
    assert Store(store.root).key("demo", {"a": 1}) != base
    monkeypatch.undo()
    assert Store(store.root).key("demo", {"a": 1}) == base
    assert Store(store.root).key("demo", {"a": 1, "precision": "bf16"}) != base  # a config's precision is keyed


def test_key_holds_what_auto_precision_resolves_to_on_this_machine(store, monkeypatch):
    import memlib.device as dev

    monkeypatch.delenv(dev.PRECISION_ENV, raising=False)  # the probe decides, not `make test`'s forced bf16 step
    params = {"a": 1, "precision": "auto", "device": "cpu"}
    monkeypatch.setattr(dev, "cpu_precision_probe", lambda *a, **k: {"choice": "fp32"})
    as_fp32 = Store(store.root).key("demo", params)
    assert as_fp32 != Store(store.root).key("demo", {**params, "precision": "fp32"})  # the asked value is keyed too
    monkeypatch.setattr(dev, "cpu_precision_probe", lambda *a, **k: {"choice": "bf16"})
    as_bf16 = Store(store.root).key("demo", params)
    assert as_bf16 != as_fp32  # same config, another machine's probe: bf16 results never serve an fp32 lookup
    assert sm_env(params)["precision"] == "bf16"
    assert sm_env({"a": 1})["precision"] is None  # a config without a precision keys none


def sm_env(params):
    from memlib.keys import environment

    return environment(params)


def test_fingerprint_ignores_plots_verdicts_glue_and_checkpoints(tmp_path):
    pkg = tmp_path / "pkg"
    for rel in ("train.py", "plots/p.py", "claims/c.py", "notebook.py", "cli.py", "summary.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("x = 1\n")
    f0 = source_fingerprint(pkg)
    for rel in ("plots/p.py", "claims/c.py", "notebook.py", "cli.py", "summary.py"):
        (pkg / rel).write_text("x = 1  # a comment\n")
    (pkg / ".ipynb_checkpoints").mkdir()
    (pkg / ".ipynb_checkpoints" / "train-checkpoint.py").write_text("x = 3\n")
    (pkg / "notes.txt").write_text("not code")
    assert source_fingerprint(pkg) == f0
    (pkg / "train.py").write_text("x = 2\n")
    assert source_fingerprint(pkg) != f0


def test_fingerprint_in_a_git_checkout_covers_tracked_files_only(tmp_path):
    import subprocess

    pkg = tmp_path / "repo" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "train.py").write_text("x = 1\n")
    if subprocess.run(["git", "init", "-q"], cwd=pkg.parent).returncode != 0:
        pytest.skip("git is not available")
    subprocess.run(["git", "add", "pkg/train.py"], cwd=pkg.parent, check=True)
    f0 = source_fingerprint(pkg)
    (pkg / "scratch.py").write_text("y = 1\n")  # untracked
    assert source_fingerprint(pkg) == f0
    (pkg / "train.py").write_text("x = 2\n")  # a tracked file edited, not committed: counts
    assert source_fingerprint(pkg) != f0


def test_relative_store_is_the_same_folder_from_the_kernel_cwd(monkeypatch):
    from memlib.keys import PACKAGE_DIR

    proj = PACKAGE_DIR.parent
    monkeypatch.setenv("MEMLIB_STORE", "relstore")
    monkeypatch.chdir(proj)
    from_cli = Store().root
    monkeypatch.chdir(proj / "notebooks")  # where papermill and jupyter-book run the kernel
    assert Store().root == from_cli == proj / "relstore"


def test_store_and_data_paths_expand_home(monkeypatch, tmp_path):
    from memlib.data import data_root

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MEMLIB_STORE", "~/st")
    monkeypatch.setenv("MEMLIB_DATA", "~/da")
    assert Store().root == tmp_path.resolve() / "st" and data_root() == tmp_path.resolve() / "da"


def _with_arrays():
    images = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    return Result({"grid": pd.DataFrame({"image": [0, 1]})}, {"n": 2},
                  arrays={"grid": images, "weights": np.linspace(0, 1, 7, dtype=np.float32)})


def test_arrays_round_trip_with_their_shape_and_dtype(store):
    store.cached("demo", {"a": 4}, _with_arrays)
    d = store.path("demo", {"a": 4})
    assert sorted(p.name for p in (d / "arrays").iterdir()) == ["grid.npy", "weights.npy"]
    assert json.loads((d / "manifest.json").read_text())["arrays"] == {
        "grid": {"shape": [2, 3, 4, 5], "dtype": "uint8"}, "weights": {"shape": [7], "dtype": "float32"}}
    back = store.get("demo", {"a": 4})
    for name, a in _with_arrays().arrays.items():
        assert back.arrays[name].dtype == a.dtype
        np.testing.assert_array_equal(back.arrays[name], a)


def test_result_with_arrays_pickles(store):
    """Ray ships Results between processes by pickling them."""
    for r in (_with_arrays(), store.cached("demo", {"a": 5}, _with_arrays)):
        back = pickle.loads(pickle.dumps(r))
        np.testing.assert_array_equal(back.arrays["grid"], r.arrays["grid"])
        pd.testing.assert_frame_equal(back.tables["grid"], r.tables["grid"])


def test_result_construction_by_position_is_unchanged():
    r = Result({"t": pd.DataFrame()}, {"x": 1}, {"host": "h"}, True)
    assert r.scalars == {"x": 1} and r.provenance == {"host": "h"} and r.cached and r.arrays == {}
    with pytest.raises(TypeError):
        Result({}, {}, {}, False, {"a": np.zeros(1)})  # arrays only by keyword


@pytest.mark.parametrize("name, value, error", [
    ("labels", np.array(["cat", "dog"], dtype=object), "numeric numpy array"),
    ("labels", [1, 2], "numeric numpy array"),
    ("../grid", np.zeros(2), "array name"),
])
def test_bad_array_is_refused_before_anything_is_written(store, name, value, error):
    with pytest.raises((TypeError, ValueError), match=error):
        store.put("demo", {"a": 6}, Result({}, {}, arrays={name: value}))
    assert store.get("demo", {"a": 6}) is None and list((store.root / "demo").iterdir()) == []


def test_fingerprint_ignores_comments_docstrings_and_layout_but_not_code(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "train.py").write_text('"""The loop."""\n\ndef f(x):\n    """Twice."""\n    return 2 * x\n')
    f0 = source_fingerprint(pkg)
    (pkg / "train.py").write_text('"""The loop, explained at length."""\n# why\n\n\ndef f(x):  # doubles\n'
                                  '    """Twice x."""\n\n    return 2 * x\n')
    assert source_fingerprint(pkg) == f0
    (pkg / "train.py").write_text('"""The loop."""\n\ndef f(x):\n    """Twice."""\n    return 3 * x\n')
    assert source_fingerprint(pkg) != f0
    (pkg / "train.py").write_text('"""The loop."""\n\ndef f(x):\n    return "Twice."\n')  # a returned string is code
    assert source_fingerprint(pkg) != f0


def test_fingerprints_computed_in_many_threads_at_once_agree():
    # sweeps create a Store per point in threads; CPython 3.11's parser once failed there ("AST constructor
    # recursion depth mismatch") when two threads parsed at the same time
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        prints = list(pool.map(lambda _: source_fingerprint(), range(32)))
    assert len(set(prints)) == 1


def test_every_module_left_out_of_the_fingerprint_exists():
    """A name in NOT_COMPUTING that matches no module (a typo, a module renamed) would put the module it meant back
    into the fingerprint unnoticed, or leave a stale entry; each names a file or folder of the package."""
    from memlib.keys import NOT_COMPUTING, PACKAGE_DIR

    missing = [x for x in NOT_COMPUTING if not (PACKAGE_DIR / x.rstrip("/")).exists()]
    assert not missing, f"NOT_COMPUTING names modules memlib does not have: {missing}"
    assert {"keys.py", "result.py", "store.py"} <= set(NOT_COMPUTING)  # the key's own code is not what it keys


def test_result_lives_in_one_module():
    import memlib.result
    import memlib.store

    assert memlib.store.Result is memlib.result.Result  # the store serves the experiments' Result, not a copy
