"""The command line: one-line errors, exit codes, a timeout, Ctrl-C, and the follow-up read being a hit."""
import re

import numpy as np
import pytest

from memlib import cli
from memlib.experiments import resolve
from memlib.result import Result
from memlib.store import Store

RUN = ["run", "01_gradient_similarity", "--profile", "smoke", "--quiet"]


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[0].startswith("error: ") and "Traceback" not in "\n".join(err)
    return err[0]


@pytest.mark.parametrize("param, expect", [
    ("lr=nan", "'lr' must be a finite number"),
    ("lr=inf", "'lr' must be a finite number"),
    ("seed=99999999999999999999", "seed must be in [0, 2**32)"),
    ("noise_rate=0", "needs mislabeled examples"),
    ("batch_size=0", "batch_size must be > 0"),
])
def test_bad_inputs_fail_before_the_notebook_with_one_line(param, expect, capsys, monkeypatch, store):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("notebook started"))
    assert cli.main(RUN + ["-p", param]) == 2
    assert expect in _one_error_line(capsys)


def test_cuda_without_cuda_fails_with_one_line(capsys, monkeypatch, store):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(RUN + ["-p", "device=cuda"]) == 2
    assert "device='cuda' but no CUDA GPU" in _one_error_line(capsys)


def _fake_papermill(monkeypatch, effect):
    import papermill

    calls = {}

    def execute(src, out, parameters=None, cwd=None, execution_timeout=None, **kw):
        calls.update(cwd=cwd, timeout=execution_timeout, parameters=parameters)
        return effect(cwd=cwd, parameters=parameters)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return calls


def test_failed_notebook_prints_the_final_error_line_and_exits_non_zero(capsys, monkeypatch, store, tmp_path):
    from papermill.exceptions import PapermillExecutionError

    def fail(**kw):
        raise PapermillExecutionError(3, 3, "nb.run(cfg)", "ValueError", "first line\nthe probe needs mislabeled "
                                      "examples", ["Traceback (most recent call last):", "  File ...", "ValueError"])

    calls = _fake_papermill(monkeypatch, fail)
    assert cli.main(RUN + ["--output", str(tmp_path), "--timeout", "17"]) == 1
    line = _one_error_line(capsys)
    assert line == "error: 01_gradient_similarity failed: ValueError: the probe needs mislabeled examples"
    assert calls["timeout"] == 17


def test_default_timeout_and_timeout_message(capsys, monkeypatch, store, tmp_path):
    from nbclient.exceptions import CellTimeoutError

    def hang(**kw):
        raise CellTimeoutError("A cell timed out while it was being executed, after 3600 seconds.")

    calls = _fake_papermill(monkeypatch, hang)
    assert cli.main(RUN + ["--output", str(tmp_path)]) == 1
    assert "a cell ran longer than the timeout of 900 s" in _one_error_line(capsys)
    assert calls["timeout"] == cli.DEFAULT_TIMEOUT["smoke"] == 900  # smoke profile
    assert cli.main(RUN + ["--output", str(tmp_path), "--timeout", "0"]) == 1
    assert calls["timeout"] is None  # 0 = no limit


def test_ctrl_c_stops_cleanly(capsys, monkeypatch, store, tmp_path):
    def interrupted(**kw):
        raise KeyboardInterrupt

    _fake_papermill(monkeypatch, interrupted)
    assert cli.main(RUN + ["--output", str(tmp_path)]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_unwritable_store_fails_before_the_notebook(capsys, monkeypatch, tmp_path):
    import memlib.store as sm

    monkeypatch.setenv("MEMLIB_STORE", str(tmp_path / "st"))
    monkeypatch.setattr(sm, "_write_synced", lambda p, d: (_ for _ in ()).throw(PermissionError(13, "denied")))
    _fake_papermill(monkeypatch, lambda **kw: pytest.fail("notebook started"))
    assert cli.main(RUN + ["--output", str(tmp_path)]) == 2
    assert "is not writable" in _one_error_line(capsys)


def test_relative_store_follow_up_read_is_a_hit(capsys, monkeypatch, tmp_path):
    """MEMLIB_STORE=relstore: the kernel (cwd notebooks/) writes where the CLI reads, so no second training."""
    import os

    import memlib.claims
    from memlib.keys import PACKAGE_DIR

    proj = PACKAGE_DIR.parent
    rel = f"relstore-test-{os.getpid()}"
    monkeypatch.setenv("MEMLIB_STORE", rel)
    monkeypatch.chdir(proj)
    cfg = resolve("gradient_similarity", "smoke")

    def kernel(cwd, parameters):  # what the notebook does, from its own working directory
        os.chdir(cwd)
        Store().put("gradient_similarity", cfg.hashed_dict(), Result({}, {"kernel": True}))

    class Verdict:
        status, summary, kind, criteria, plan_digest = "ok", "fake verdict", "paper", [], "abc123"

        @staticmethod
        def status_line():
            return "ok"

    import memlib.staged

    monkeypatch.setattr(memlib.staged, "verdict_of", lambda r, c: Verdict())
    try:
        _fake_papermill(monkeypatch, kernel)
        assert cli.main(RUN + ["--output", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "verdict: ok (1 seed" in out and "analysis plan abc123). fake verdict" in out
        assert os.environ["MEMLIB_STORE"] == str(proj / rel)  # the kernel is given the absolute path
    finally:
        import shutil

        shutil.rmtree(proj / rel, ignore_errors=True)


def test_list_survives_a_truncated_summary(capsys, store):
    cfg = resolve("gradient_similarity", "smoke")
    d = store.put("gradient_similarity", cfg.hashed_dict(), Result({}, {"x": 1}))
    (d / "summary.json").write_text('{"x": ')
    assert cli.main(["list", "--profile", "smoke"]) == 0
    cap = capsys.readouterr()
    assert str(d / "summary.json") in cap.err and "01_gradient_similarity" in cap.out
    assert cli.main(["list", "--profile", "smoke"]) == 0  # and again, now a plain miss


def test_list_reads_entries_with_arrays(capsys, store):
    cfg = resolve("dropout_comparison", "smoke")
    d = store.put("dropout_comparison", cfg.hashed_dict(),
                  Result({}, {"x": 1}, arrays={"grid": np.zeros((2, 1, 3, 3), dtype=np.uint8)}))
    assert cli.main(["list", "--profile", "smoke"]) == 0
    assert re.search(r"02_dropout_comparison\s+yes", capsys.readouterr().out)
    (d / "arrays" / "grid.npy").write_bytes(b"\x93NUMPY")
    assert cli.main(["list", "--profile", "smoke"]) == 0
    cap = capsys.readouterr()
    assert str(d / "arrays" / "grid.npy") in cap.err and re.search(r"02_dropout_comparison\s+no", cap.out)


# ----------------------------------------------------------------------------- more bad inputs, one line each

def test_uncreatable_output_folder_is_one_line(capsys, monkeypatch, store, tmp_path):
    (tmp_path / "a-file").write_text("")
    _fake_papermill(monkeypatch, lambda **kw: pytest.fail("notebook started"))
    assert cli.main(RUN + ["--output", str(tmp_path / "a-file" / "runs")]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: cannot create the folder for executed notebooks {tmp_path / 'a-file' / 'runs'}")
    assert "--output" in line


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", " "])
def test_bad_memlib_threads_is_named_before_the_notebook(value, capsys, monkeypatch, store, tmp_path):
    monkeypatch.setenv("MEMLIB_THREADS", value)
    _fake_papermill(monkeypatch, lambda **kw: pytest.fail("notebook started"))
    assert cli.main(RUN + ["--output", str(tmp_path)]) == 2
    assert f"$MEMLIB_THREADS must be a whole number of threads, at least 1, got {value!r}" in _one_error_line(capsys)
    assert cli.main(["sweep", "01", "--profile", "smoke", "-p", "seed=0..1"]) == 2
    assert "$MEMLIB_THREADS" in _one_error_line(capsys)


def test_read_only_store_still_serves_a_stored_result(capsys, monkeypatch, store, tmp_path):
    import memlib.claims
    import memlib.store as sm

    cfg = resolve("gradient_similarity", "smoke")
    store.put("gradient_similarity", cfg.hashed_dict(), Result({}, {"stored": True}))
    monkeypatch.setattr(sm, "_write_synced", lambda p, d: (_ for _ in ()).throw(PermissionError(13, "denied")))

    class Verdict:
        status, summary, kind, criteria, plan_digest = "ok", "from the stored result", "paper", [], "abc123"

        @staticmethod
        def status_line():
            return "ok"

    import memlib.staged

    monkeypatch.setattr(memlib.staged, "verdict_of", lambda r, c: Verdict())
    _fake_papermill(monkeypatch, lambda **kw: None)  # the notebook only reads the store
    assert cli.main(RUN + ["--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"results store {store.root} is not writable (denied); its stored result is used" in out
    assert "verdict: ok (1 seed" in out and "from the stored result" in out


SHUTDOWN_LOG = """[IPKernelApp] WARNING | Kernel is running over TCP without encryption.
[IPKernelApp] ERROR | Exception in message handler:
Traceback (most recent call last):
  File "/x/ipykernel/kernelbase.py", line 508, in dispatch_shell
    await result
  File "/x/jupyter_client/session.py", line 867, in send
    stream.send_multipart(to_send, copy=copy)
                                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "zmq/backend/cython/_zmq.py", line 1339, in zmq.backend.cython._zmq._check_closed
zmq.error.ZMQError: Socket operation on non-socket
[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.
kernel line after
"""


def test_ipykernel_shutdown_traceback_is_dropped_and_other_log_kept():
    from memlib.kernel import without_shutdown_tracebacks

    assert without_shutdown_tracebacks(SHUTDOWN_LOG) == ("[IPKernelApp] WARNING | Kernel is running over TCP without "
                                                         "encryption.\nkernel line after\n")
    other = SHUTDOWN_LOG.replace("zmq.error.ZMQError: Socket operation on non-socket", "MemoryError: real trouble")
    kept = other.replace("[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.\n", "")
    assert without_shutdown_tracebacks(other) == kept  # a traceback that is not shutdown noise is kept


def test_run_starts_the_kernel_with_its_log_held_and_prints_it_before_the_clean_line(capsys, monkeypatch, store,
                                                                                     tmp_path):
    from nbclient.exceptions import CellTimeoutError

    def timed_out(**kw):
        raise CellTimeoutError("A cell timed out")

    import papermill

    def execute(src, out, **kw):
        import asyncio

        from jupyter_client.manager import AsyncKernelManager

        manager = kw["kernel_manager_class"]
        launched = {}

        async def launch(self, cmd, **kw):
            launched.update(kw)

        monkeypatch.setattr(AsyncKernelManager, "_async_launch_kernel", launch)
        asyncio.run(manager()._async_launch_kernel(["python"]))
        assert launched["stderr"] is manager.stderr_log  # the kernel process writes its log there
        manager.stderr_log.write(SHUTDOWN_LOG)  # what ipykernel writes when it is shut down mid-cell
        timed_out()

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    assert cli.main(RUN + ["--output", str(tmp_path), "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert "ZMQError" not in err and "Traceback" not in err
    assert err.index("kernel line after") < err.index("error: 01_gradient_similarity did not finish")


# ----------------------------------------------------------------------------- issue 32's minor items

def test_run_prints_a_bad_entry_as_one_warning_line_and_names_the_fallback_folder(capsys, monkeypatch, store,
                                                                                 tmp_path):
    cfg = resolve("gradient_similarity", "smoke")
    d = store.put("gradient_similarity", cfg.hashed_dict(), Result({}, {"x": 1}))
    (d / "summary.json").write_text('{"x": ')
    saved = tmp_path / "fallback" / "gradient_similarity" / d.name
    monkeypatch.setattr(Store, "located", lambda self, kind, params: saved)

    _fake_papermill(monkeypatch, lambda **kw: None)  # the notebook "ran" but stored nothing in the store
    assert cli.main(RUN + ["--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    warning = [ln for ln in err.splitlines() if ln.startswith("warning: ")]
    assert len(warning) == 1 and warning[0].startswith(f"warning: results store: ignoring bad entry {d}")
    assert "StoreWarning" not in err and "warnings.warn" not in err and "cli.py" not in err
    assert f"it was saved in {saved}: move that folder to {d}" in err


@pytest.mark.parametrize("what", ["missing", "file"])
def test_verify_of_a_store_that_is_missing_or_a_file_fails_in_one_line(capsys, monkeypatch, tmp_path, what):
    root = tmp_path / "store"
    if what == "file":
        root.write_text("not a store")
    monkeypatch.setenv("MEMLIB_STORE", str(root))
    assert cli.main(["verify"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: results store {root} ") and ("does not exist" if what == "missing"
                                                                  else "is not a folder") in line


def test_calibrate_reports_an_unwritable_record_in_one_line(capsys, monkeypatch, store):
    from memlib import calibration as cal

    record = {"rows": [], "preconditions": [], "rule": "the rule", "pick": None}
    monkeypatch.setattr(cal, "calibrate", lambda *a, **k: record)
    monkeypatch.setattr(cal, "write", lambda rec: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", "/ro/calibration/02.json")))
    assert cli.main(["calibrate", "02"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the calibration record /ro/calibration/02.json could not be written (Permission denied); "
                   "the sweep's results stay in the results store, so rerunning the command writes it without "
                   "training"]


def test_one_point_ray_sweep_names_the_address_flag_once(capsys, monkeypatch, store):
    import socket

    from memlib import executor as ex

    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once it is closed
    for var in (ex.ADDRESS_ENV, ex.EXECUTOR_ENV, ex.THREADS_ENV, "RAY_ADDRESS"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setattr(ex, "_ray_executors", {})
    assert cli.main(["sweep", "03", "--profile", "smoke", "-p", "seed=0", "--executor", "ray", "--address",
                     f"127.0.0.1:{port}"]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot reach the Ray cluster at 127.0.0.1:{port} (from "
                                               "--address)")
    assert "FAILED" not in cap.out and "failed:" not in cap.err


def test_an_invalid_value_of_a_million_point_grid_fails_at_once(capsys, store):
    import time

    t0 = time.perf_counter()
    assert cli.main(["sweep", "03", "--profile", "smoke", "-p", "seed=0..99999", "-p", "window_size=100,105,110,"
                     "120,130,140,150,160,170,180", "--yes"]) == 2
    assert time.perf_counter() - t0 < 10
    assert "window_size must be a multiple of 10" in _one_error_line(capsys)
