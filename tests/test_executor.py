"""The local executor, executor selection, and parameter grids (``memlib sweep``); no Ray needed."""
import sys

import pandas as pd
import pytest

from memlib import executor as ex
from memlib.cli import main
from memlib.config import ConfigError
from memlib.experiments import resolve
from memlib.experiments import get_experiment
from memlib.experiments.base import part_params, run_parts
from memlib.result import Result
from memlib.store import Store
from memlib.sweep import experiment_of, grid_points, parse_axis, resolve_grid

CALLS: list[dict] = []


def square_part(cfg, key):
    CALLS.append(dict(key))
    if key.get("fail"):
        raise ValueError(f"part {key['seed']} fails")
    return Result({"t": pd.DataFrame({"seed": [key["seed"]], "sq": [key["seed"] ** 2]})}, {"sq": key["seed"] ** 2})


@pytest.fixture
def cfg():
    return resolve("gradient_similarity", "smoke")


@pytest.fixture(autouse=True)
def _clear(monkeypatch):
    CALLS.clear()
    monkeypatch.setenv(ex.EXECUTOR_ENV, "local")  # recorded, so that what `memlib sweep` sets is undone
    monkeypatch.delenv(ex.EXECUTOR_ENV)


# ----------------------------------------------------------------------------- local executor

def test_local_parts_in_order_stored_and_resumed(cfg, store):
    keys = [{"seed": s} for s in (3, 1, 2)]
    store.cached("gradient_similarity/demo", part_params(cfg, seed=1),
                 lambda: square_part(cfg, {"seed": 1}))  # a part finished by an earlier, interrupted run
    CALLS.clear()
    out = run_parts(cfg, store, "demo", keys, square_part)
    assert [r.scalars["sq"] for r in out] == [9, 1, 4]
    assert CALLS == [{"seed": 3}, {"seed": 2}]  # the stored part is not recomputed
    assert [r.cached for r in out] == [False, True, False]
    assert len(store.runs("gradient_similarity/demo")) == 3
    CALLS.clear()
    again = run_parts(cfg, store, "demo", keys, square_part)
    assert CALLS == [] and all(r.cached for r in again)
    pd.testing.assert_frame_equal(again[0].tables["t"], out[0].tables["t"])


def test_costliest_missing_parts_go_first_and_results_keep_the_keys_order(cfg, store):
    keys = [{"seed": s} for s in (1, 2, 3, 4)]
    store.cached("gradient_similarity/demo", part_params(cfg, seed=4), lambda: square_part(cfg, {"seed": 4}))
    CALLS.clear()
    cost = {1: 1, 2: 5, 3: 1, 4: 9}  # seed 4 is costliest but stored already
    out = run_parts(cfg, store, "demo", keys, square_part, cost=lambda k: cost[k["seed"]])
    assert CALLS == [{"seed": 2}, {"seed": 1}, {"seed": 3}]  # longest first; equal costs in their order
    assert [r.scalars["sq"] for r in out] == [1, 4, 9, 16]


def test_local_stops_at_first_error_keeping_finished_parts(cfg, store):
    keys = [{"seed": 0}, {"seed": 1, "fail": True}, {"seed": 2}]
    with pytest.raises(ValueError, match="part 1 fails"):
        run_parts(cfg, store, "demo", keys, square_part)
    assert CALLS == keys[:2]
    assert store.get("gradient_similarity/demo", part_params(cfg, seed=0)) is not None
    assert len(store.runs("gradient_similarity/demo")) == 1


def test_executor_choice(monkeypatch):
    assert ex.current().name == "local"
    monkeypatch.setenv(ex.EXECUTOR_ENV, "Local")
    assert ex.get_executor().name == "local"
    monkeypatch.setenv(ex.EXECUTOR_ENV, "dask")
    with pytest.raises(ConfigError, match="unknown executor 'dask'.*local, ray"):
        ex.current()
    sentinel = ex.LocalExecutor()
    with ex.use(sentinel):
        assert ex.current() is sentinel
    with pytest.raises(ConfigError):
        ex.current()


def test_ray_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[ray\]'"):
        ex.get_executor("ray", address="nowhere:1")


def test_parts_failed_message_lists_each_part():
    e = ex.PartsFailed("x/seed", [ex.PartFailure({"seed": 1}, "ValueError: boom")], total=3)
    assert str(e).splitlines() == ["1 of 3 parts of x/seed failed (the other parts are stored; rerun to retry only "
                                   "the failed ones):", "  {'seed': 1}: ValueError: boom"]


# ----------------------------------------------------------------------------- grids

def test_parse_axis_ranges_and_lists():
    assert parse_axis("seed=0..4") == ("seed", ["0", "1", "2", "3", "4"])
    assert parse_axis(" noise_rate = 0.1,0.2,0.4") == ("noise_rate", ["0.1", "0.2", "0.4"])
    assert parse_axis("seed=0..2,7") == ("seed", ["0", "1", "2", "7"])
    assert parse_axis("seed=3..3") == ("seed", ["3"])


@pytest.mark.parametrize("bad, msg", [
    ("seed", "must look like key=v1,v2"),
    ("seed=4..0", "is empty"),
    ("seed=a..b", "two integers"),
    ("seed=0.5..2", "two integers"),
    ("seed=1,,2", "empty value"),
    ("seed=1,1", "twice"),
    ("=1,2", "no parameter name"),
])
def test_parse_axis_errors(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_axis(bad)


def test_grid_is_the_product_first_axis_slowest():
    pts = grid_points(["noise_rate=0.1,0.2", "seed=0..2"], {"epochs": "3"})
    assert len(pts) == 6
    assert pts[0] == {"epochs": "3", "noise_rate": "0.1", "seed": "0"}
    assert [(p["noise_rate"], p["seed"]) for p in pts[:4]] == [("0.1", "0"), ("0.1", "1"), ("0.1", "2"),
                                                              ("0.2", "0")]
    assert grid_points([]) == [{}]
    with pytest.raises(ConfigError, match="'seed' is given twice"):
        grid_points(["seed=1,2", "seed=3"])
    with pytest.raises(ConfigError, match="'seed' is given twice"):
        grid_points(["seed=1,2"], {"seed": "0"})


def test_resolve_grid_names_the_bad_point_and_drops_duplicates():
    with pytest.raises(ConfigError, match=r"grid point \{'noise_rate': '1.5'\}: noise_rate must be in \[0, 1\)"):
        resolve_grid("dropout_comparison", "smoke", grid_points(["noise_rate=0.1,1.5"]))
    grid = resolve_grid("dropout_comparison", "smoke", grid_points(["noise_rate=0.1,0.10,0.2"]))
    assert [c.noise_rate for _, c in grid] == [0.1, 0.2]


@pytest.mark.parametrize("name", ["03", "3", "outlier", "outlier_percentiles", "03_outlier_percentiles"])
def test_claim_short_names(name):
    assert experiment_of(name) == "outlier_percentiles"


def test_unknown_claim_name():
    with pytest.raises(ConfigError, match="unknown claim 'nope'"):
        experiment_of("nope")


def _fake_run(calls):
    def run(cfg, store=None):
        calls.append(cfg)
        return store.cached(cfg.experiment, cfg.hashed_dict(),
                            lambda: Result({"t": pd.DataFrame({"x": [cfg.noise_rate]})}, {"seed": cfg.seed}))
    return run


def test_sweep_validates_every_point_before_running(store, monkeypatch, capsys):
    import memlib.experiments.dropout_comparison as mod

    calls = []
    monkeypatch.setattr(mod, "run", _fake_run(calls))
    rc = main(["sweep", "02", "--profile", "smoke", "-p", "noise_rate=0.1,0.2,1.5", "-p", "seed=0..1"])
    assert rc == 2 and calls == []
    assert "grid point {'noise_rate': '1.5', 'seed': '0'}" in capsys.readouterr().err


def test_sweep_runs_every_point_and_prints_where_it_is(store, monkeypatch, capsys):
    import memlib.experiments.dropout_comparison as mod

    calls = []
    monkeypatch.setattr(mod, "run", _fake_run(calls))
    rc = main(["sweep", "dropout", "--profile", "smoke", "-p", "noise_rate=0.1,0.2", "-p", "seed=0..2",
               "--executor", "local"])
    out = capsys.readouterr().out
    assert rc == 0 and len(calls) == 6
    assert [(c.noise_rate, c.seed) for c in calls][:3] == [(0.1, 0), (0.1, 1), (0.1, 2)]
    lines = [ln for ln in out.splitlines() if ln.startswith("done")]
    assert len(lines) == 6 and "6 of 6 point(s) stored" in out
    for c in calls:
        path = Store(store.root).path("dropout_comparison", c.hashed_dict())
        assert (path / "summary.json").exists() and str(path) in out
    calls.clear()
    assert main(["sweep", "dropout", "--profile", "smoke", "-p", "noise_rate=0.1,0.2", "-p", "seed=0..2"]) == 0
    assert sum(ln.startswith("cached") for ln in capsys.readouterr().out.splitlines()) == 6


class _Captured(Exception):
    pass


@pytest.mark.parametrize("name", ["gradient_similarity", "dropout_comparison", "outlier_percentiles",
                                  "early_learning", "lth_vs_dropout"])
def test_every_experiment_hands_picklable_parts_to_the_executor(name, store, monkeypatch):
    """Parts must be plain picklable functions of (cfg, key): no closures (a Ray worker could not receive them)."""
    import pickle

    mod = get_experiment(name)
    seen = []

    def capture(cfg, store, part, keys, compute, **kw):
        seen.append((keys, pickle.loads(pickle.dumps(compute))))
        raise _Captured

    monkeypatch.setattr(mod, "run_parts", capture)
    with pytest.raises(_Captured):
        mod.run(resolve(name, "smoke"), store)
    (keys, fn), = seen
    assert keys and all(isinstance(k, dict) for k in keys) and callable(fn)


# ----------------------------------------------------------------------------- large grids and failing points

def test_huge_ranges_are_never_expanded():
    key, values = parse_axis("seed=0..4294967295")  # a list of 2**32 strings would not fit in memory
    assert key == "seed" and len(values) == 2**32 and values[-1] == "4294967295" and values[7] == "7"
    grid = grid_points(["noise_rate=0.1,0.2", "seed=0..4294967295,-3"])
    assert len(grid) == 2 * (2**32 + 1)
    assert grid[2**32 + 1] == {"noise_rate": "0.2", "seed": "0"} and grid[-1] == {"noise_rate": "0.2", "seed": "-3"}


@pytest.mark.parametrize("spec", ["seed=0..5,3", "seed=0..5,4..8", "seed=2..3,0..2", "seed=1,0..1"])
def test_overlapping_ranges_are_a_value_given_twice(spec):
    with pytest.raises(ConfigError, match="twice"):
        parse_axis(spec)


def test_sweep_of_four_billion_points_is_refused_at_once(store, monkeypatch, capsys):
    import memlib.experiments.outlier_percentiles as mod

    calls = []
    monkeypatch.setattr(mod, "run", _fake_run(calls))
    assert main(["sweep", "03", "--profile", "smoke", "-p", "seed=0..4294967295", "--yes"]) == 2
    err = capsys.readouterr().err
    assert calls == [] and err.startswith("error: the grid has 4,294,967,296 points, more than the 1,000,000")
    assert len(err.strip().splitlines()) == 1


def test_large_sweep_asks_first(store, monkeypatch, capsys):
    import memlib.experiments.dropout_comparison as mod
    from memlib.sweep import check_size

    calls = []
    monkeypatch.setattr(mod, "run", _fake_run(calls))
    assert main(["sweep", "02", "--profile", "smoke", "-p", "seed=0..100000"]) == 2  # stdin is not a terminal
    assert calls == [] and "the grid has 100,001 points (more than 100); rerun with --yes" in capsys.readouterr().err
    assert check_size(101, yes=False, ask=lambda q: "n") is False
    assert check_size(101, yes=False, ask=lambda q: "y") is True
    assert check_size(100, yes=False) is True and check_size(10**6, yes=True) is True


def test_local_sweep_goes_on_past_a_failing_point_and_lists_the_failures(store, monkeypatch, capsys):
    import memlib.experiments.dropout_comparison as mod

    calls = []
    good = _fake_run(calls)

    def run(cfg, store=None):
        if cfg.seed == 1:
            raise ValueError("boom at seed 1\nsecond line")
        return good(cfg, store)

    monkeypatch.setattr(mod, "run", run)
    rc = main(["sweep", "02", "--profile", "smoke", "-p", "seed=0..3", "--executor", "local"])
    out, err = capsys.readouterr()
    assert rc == 1 and [c.seed for c in calls] == [0, 2, 3]
    assert "3 of 4 point(s) stored; 1 failed" in out
    assert "failed: seed=1: ValueError: boom at seed 1" in err and "Traceback" not in out + err


# ----------------------------------------------------------------------------- Ray: failing fast, without a cluster

import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def _server(reply: bytes):
    """A local TCP server answering every connection with ``reply``; returns its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_unreachable_ray_address_fails_in_seconds_with_one_line():
    port = _closed_port()
    t0 = time.perf_counter()
    with pytest.raises(ex.ConfigError) as e:
        ex.check_reachable(f"127.0.0.1:{port}", "$RAY_ADDRESS")
    assert time.perf_counter() - t0 < 10
    msg = str(e.value)
    assert msg.startswith(f"cannot reach the Ray cluster at 127.0.0.1:{port} (from $RAY_ADDRESS): ") and "\n" not in msg
    with pytest.raises(ex.ConfigError, match=f"ray://127.0.0.1:{port}"):
        ex.check_reachable(f"ray://127.0.0.1:{port}")


def test_a_port_that_is_not_a_ray_head_is_named():
    srv = _server(b"HTTP/1.0 400 Bad Request\r\n\r\n")
    try:
        with pytest.raises(ex.ConfigError, match="answers, but not as a Ray cluster"):
            ex.check_reachable(f"127.0.0.1:{srv.getsockname()[1]}")
    finally:
        srv.close()
    grpc = _server(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))  # what a gRPC server sends first: a SETTINGS frame
    try:
        ex.check_reachable(f"127.0.0.1:{grpc.getsockname()[1]}")  # passes
    finally:
        grpc.close()


@pytest.mark.parametrize("address", ["nonsense", "host:port", "10.0.0.1"])
def test_malformed_ray_address(address):
    with pytest.raises(ex.ConfigError, match="must look like host:port"):
        ex.check_reachable(address)


class _FakeRay:
    def __init__(self, *nodes):
        self._nodes = [{"Alive": True, "Resources": r} for r in nodes] + [{"Alive": False, "Resources": {"CPU": 64}}]

    def nodes(self):
        return self._nodes


def test_unschedulable_part_fails_at_once_naming_the_largest_node(monkeypatch):
    monkeypatch.delenv(ex.CHECK_RESOURCES_ENV, raising=False)
    ray = _FakeRay({"CPU": 2.0}, {"CPU": 8.0, "GPU": 0.0})
    e = ex.RayExecutor.__new__(ex.RayExecutor)
    e.address = "10.0.0.5:6379"
    e._check_fits(ray, 8, 0)  # fits the larger node
    with pytest.raises(ex.ConfigError, match=r"asks for 9 CPUs \(--cpus-per-part.*largest node of 10.0.0.5:6379 "
                                             r"has 8 CPUs"):
        e._check_fits(ray, 9, 0)
    with pytest.raises(ex.ConfigError, match=r"asks for 1 GPUs \(--gpus-per-part.*has no GPU"):
        e._check_fits(ray, 1, 1)
    e._check_fits(_FakeRay({"CPU": 1, "GPU": 1}), 1, 0.25)
    monkeypatch.setenv(ex.CHECK_RESOURCES_ENV, "0")
    e._check_fits(ray, 100, 1)  # an autoscaling cluster: the user says larger nodes come


def test_ray_connection_errors_become_one_line_each(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    auto = ex._connect_error(ConnectionError("Could not find any running Ray instance. Please specify ..."),
                             "auto", "$RAY_ADDRESS")
    assert auto.startswith("$RAY_ADDRESS=auto: no Ray cluster is running on this machine")
    log = "[W gcs_client.cc:210] Failed to get cluster ID from GCS server: Unauthenticated: RPC error: InvalidAuthToken"
    refused = ex._connect_error(ConnectionError("Failed to connect to Ray cluster at h:6379"), "h:6379", "--address",
                                log)
    assert "refused this driver's authentication token" in refused and "RAY_AUTH_MODE=token" in refused
    client = ex._connect_error(ValueError("Ray Client requires pip package `ray[client]`. If ..."), "ray://h:1", "x")
    assert "pip install 'ray[client]'" in client
    for m in (auto, refused, client):
        assert "\n" not in m


def test_run_with_an_unreachable_ray_address_fails_with_one_line(store, monkeypatch, capsys):
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    for var in (ex.ADDRESS_ENV, ex.EXECUTOR_ENV, ex.THREADS_ENV):  # recorded, so that the run's changes are undone
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setattr(ex, "_ray_executors", {})
    t0 = time.perf_counter()
    assert main(["run", "03", "--profile", "smoke", "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - t0 < 30
    assert err.startswith(f"error: cannot reach the Ray cluster at 127.0.0.1:{port} (from $RAY_ADDRESS)")
    assert len(err.strip().splitlines()) == 1
