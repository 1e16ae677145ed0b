"""The Ray executor against a real local Ray cluster (127.0.0.1, 2 CPUs, no dashboard), started by this module.

Real experiments' smoke parts must give the same stored numbers through Ray as in-process; a worker killed in the
middle of a part is retried and its result stored once; a part that raises is reported while the others are
stored; cancelling stops the outstanding tasks.
"""
import functools
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from memlib import executor as ex  # noqa: E402
from memlib.cli import main  # noqa: E402
from memlib.experiments import resolve  # noqa: E402
from memlib.experiments import get_experiment  # noqa: E402
from memlib.experiments.base import part_params, run_parts  # noqa: E402
from memlib.result import Result  # noqa: E402
from memlib.store import Store  # noqa: E402

KIND = "gradient_similarity/demo"


@pytest.fixture(scope="module", autouse=True)
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    # The part functions below live in this test module, which workers cannot import: ship them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, object_store_memory=100 * 2**20)
    yield
    ray.shutdown()


@pytest.fixture
def cfg():
    return resolve("gradient_similarity", "smoke")


def _attempt(marker_dir, key) -> int:
    """Record one attempt at ``key`` (a line in a file); returns how many attempts there were so far."""
    f = Path(marker_dir) / f"seed{key['seed']}.attempts"
    with open(f, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    return len(f.read_text().splitlines())


def _attempts(marker_dir, seed) -> int:
    f = Path(marker_dir) / f"seed{seed}.attempts"
    return len(f.read_text().splitlines()) if f.exists() else 0


def flaky_part(cfg, key, marker_dir, die=(), fail=(), sleep=0.0):
    n = _attempt(marker_dir, key)
    if key["seed"] in die and n == 1:
        os._exit(1)  # the worker process dies in the middle of the part (first attempt only)
    if key["seed"] in fail:
        raise ValueError(f"seed {key['seed']} is cursed")
    time.sleep(sleep)
    return Result({"t": pd.DataFrame({"seed": [key["seed"]], "value": [key["seed"] * 0.5]})},
                  {"seed": key["seed"], "threads": torch.get_num_threads(), "pid": os.getpid()})


# ----------------------------------------------------------------------------- real experiments

TIMING = ("second", "images_per_second", "pid")


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    return df[[c for c in df.columns if not any(t in c for t in TIMING)]]


@pytest.mark.parametrize("experiment", ["outlier_percentiles", "early_learning"])
def test_smoke_parts_give_the_same_numbers_as_local(experiment, tmp_path, monkeypatch):
    exp = get_experiment(experiment)
    cfg = resolve(experiment, "smoke")
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    threads = torch.get_num_threads()
    monkeypatch.setenv("MEMLIB_THREADS", "1")  # what a Ray task with one CPU runs on (memlib's thread policy)
    try:
        with ex.use("local"):
            exp.run(cfg, local)
    finally:
        torch.set_num_threads(threads)
    with ex.use(ex.RayExecutor()):
        res = exp.run(cfg, remote)
    assert not res.cached
    a, b = local.get(exp.NAME, cfg.hashed_dict()), remote.get(exp.NAME, cfg.hashed_dict())
    assert set(a.tables) == set(b.tables) and a.tables
    for name in a.tables:
        pd.testing.assert_frame_equal(_comparable(a.tables[name]), _comparable(b.tables[name]), check_exact=True,
                                      obj=f"{experiment} table {name}")
    assert set(a.arrays) == set(b.arrays) and bool(a.arrays) == (experiment == "outlier_percentiles")
    for name in a.arrays:  # the strip images came back from the Ray workers inside their Results
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
    def part_kinds(root):  # <root>/<experiment>/<part kind>/<key>/ beside the experiment's own <key>/
        return sorted(p.name for p in (root / exp.NAME).iterdir() if p.is_dir() and not (p / "summary.json").exists())

    kinds = part_kinds(tmp_path / "ray")
    assert kinds and kinds == part_kinds(tmp_path / "local")
    for kind in kinds:  # every part stored once, with the worker's provenance
        runs = remote.runs(f"{exp.NAME}/{kind}")
        assert len(runs) == len(local.runs(f"{exp.NAME}/{kind}")) >= 1
        assert '"executor": "ray"' in (runs[0] / "provenance.json").read_text()


# ----------------------------------------------------------------------------- faults

def test_killed_worker_is_retried_and_stored_once(cfg, store, tmp_path):
    fn = functools.partial(flaky_part, marker_dir=str(tmp_path), die=(1,))
    out = run_parts(cfg, store, "demo", [{"seed": s} for s in (0, 1, 2)], fn,
                    executor=ex.RayExecutor(max_retries=2))
    assert [r.scalars["seed"] for r in out] == [0, 1, 2]
    assert (_attempts(tmp_path, 0), _attempts(tmp_path, 1), _attempts(tmp_path, 2)) == (1, 2, 1)
    assert out[1].tables["t"].value.tolist() == [0.5]
    assert len(store.runs(KIND)) == 3
    assert not [p for p in (store.root / KIND).iterdir() if p.name.startswith(".tmp")]
    assert {r.scalars["threads"] for r in out} == {1}  # torch on the task's one CPU


def test_worker_dying_every_time_is_reported_after_retries(cfg, store, tmp_path):
    fn = functools.partial(flaky_part, marker_dir=str(tmp_path), die=(0,))
    with pytest.raises(ex.PartsFailed) as e:
        run_parts(cfg, store, "demo", [{"seed": 0}, {"seed": 1}], fn, executor=ex.RayExecutor(max_retries=0))
    assert [f.key for f in e.value.failures] == [{"seed": 0}]
    assert "WorkerCrashedError" in e.value.failures[0].error or "died" in e.value.failures[0].error
    assert store.get(KIND, part_params(cfg, seed=1)) is not None


def test_failing_part_is_reported_and_the_others_stored(cfg, store, tmp_path, capsys):
    fn = functools.partial(flaky_part, marker_dir=str(tmp_path), fail=(1,))
    keys = [{"seed": s} for s in (0, 1, 2)]
    with pytest.raises(ex.PartsFailed, match=r"1 of 3 parts of gradient_similarity/demo failed") as e:
        run_parts(cfg, store, "demo", keys, fn, executor=ex.RayExecutor())
    (f,) = e.value.failures
    assert f.key == {"seed": 1} and f.error == "ValueError: seed 1 is cursed" and "flaky_part" in f.details
    assert "seed 1 is cursed" in capsys.readouterr().err
    assert _attempts(tmp_path, 1) == 1  # an exception is not retried, only a dead worker is
    assert store.get(KIND, part_params(cfg, seed=1)) is None
    assert [store.get(KIND, part_params(cfg, seed=s)).scalars["seed"] for s in (0, 2)] == [0, 2]
    # a rerun submits only the missing part
    ok = functools.partial(flaky_part, marker_dir=str(tmp_path))
    out = run_parts(cfg, store, "demo", keys, ok, executor=ex.RayExecutor())
    assert [r.cached for r in out] == [True, False, True]
    assert (_attempts(tmp_path, 0), _attempts(tmp_path, 1), _attempts(tmp_path, 2)) == (1, 2, 1)


def test_other_code_on_the_worker_is_refused(cfg, store, tmp_path, monkeypatch):
    monkeypatch.setattr(ex, "_worker_fingerprint", "driver-has-other-code")
    fn = functools.partial(flaky_part, marker_dir=str(tmp_path))
    with pytest.raises(ex.PartsFailed, match="the worker runs other memlib code"):
        run_parts(cfg, store, "demo", [{"seed": 0}], fn, executor=ex.RayExecutor())
    assert store.runs(KIND) == []


def test_cancel_stops_outstanding_tasks(cfg, store, tmp_path):
    fn = functools.partial(flaky_part, marker_dir=str(tmp_path), sleep=600.0)
    caught = []

    def drive():
        try:
            run_parts(cfg, store, "demo", [{"seed": s} for s in range(3)], fn, executor=ex.RayExecutor())
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            caught.append(e)

    t = threading.Thread(target=drive)
    t.start()
    deadline = time.time() + 60
    while _attempts(tmp_path, 0) + _attempts(tmp_path, 1) + _attempts(tmp_path, 2) == 0 and time.time() < deadline:
        time.sleep(0.2)
    t0 = time.time()
    ex.cancel_all()
    t.join(30)
    ex.reset_cancel()
    assert not t.is_alive() and time.time() - t0 < 10
    assert len(caught) == 1 and isinstance(caught[0], ex.Cancelled)
    assert store.runs(KIND) == []
    # the cluster's CPUs are free again (the sleeping tasks would hold them for 10 minutes): a quick part runs
    # (its worker process may have to start and import torch first)
    quick = functools.partial(flaky_part, marker_dir=str(tmp_path / "again"))
    (tmp_path / "again").mkdir()
    t1 = time.time()
    run_parts(cfg, store, "demo", [{"seed": 5}, {"seed": 6}], quick, executor=ex.RayExecutor())
    assert time.time() - t1 < 120


def test_sweep_runs_points_side_by_side_on_ray(store, tmp_path, monkeypatch, capsys):
    """`memlib sweep --executor ray`: the points run in threads sharing the cluster; a failed point is reported
    and the others stored; a rerun computes only what is missing."""
    import memlib.experiments.gradient_similarity as mod

    for env in (ex.EXECUTOR_ENV, ex.ADDRESS_ENV):  # recorded, so that what the CLI sets is undone
        monkeypatch.setenv(env, "")
    fail = [(2,)]

    def fake_run(cfg, store=None):
        fn = functools.partial(flaky_part, marker_dir=str(tmp_path), fail=fail[0])
        return store.cached(mod.NAME, cfg.hashed_dict(),
                            lambda: run_parts(cfg, store, "demo", [{"seed": cfg.seed}], fn)[0])

    monkeypatch.setattr(mod, "run", fake_run)
    argv = ["sweep", "01", "--profile", "smoke", "-p", "seed=0..3", "--executor", "ray"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "FAILED  seed=2: 1 of 1 parts of gradient_similarity/demo failed" in out
    assert sorted(ln.split(":")[0] for ln in out.splitlines() if ln.startswith("done")) == [
        "done    seed=0", "done    seed=1", "done    seed=3"]
    assert "3 of 4 point(s) stored; 1 failed" in out
    fail[0] = ()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert sum(ln.startswith("cached") for ln in out.splitlines()) == 3 and "done    seed=2" in out
    assert [_attempts(tmp_path, s) for s in range(4)] == [1, 1, 2, 1]
