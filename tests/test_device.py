import json

import pytest
import torch

from memlib import device


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty precision cache, no verdict in this process, and a fake probe that counts its calls."""
    monkeypatch.setenv(device.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(device, "_probes", {})
    monkeypatch.setattr(device, "_used", {})
    monkeypatch.delenv(device.PRECISION_ENV, raising=False)
    calls = []

    def fake(speedup):
        def measure(workload=None, threads=None):
            calls.append(speedup)
            return {"choice": "bf16" if speedup >= device.BF16_MIN_SPEEDUP else "fp32", "bf16_speedup": speedup,
                    "machine": device.machine_key(), "workload": (workload or device.DEFAULT_WORKLOAD).key,
                    "threads": threads}
        monkeypatch.setattr(device, "measure_cpu_precision", measure)

    return tmp_path / "precision.json", calls, fake


@pytest.mark.parametrize("speedup, expected", [(0.25, "fp32"), (1.02, "fp32"), (1.08, "bf16"), (2.2, "bf16")])
def test_auto_on_cpu_follows_the_measurement_and_caches_it(cache, monkeypatch, speedup, expected):
    path, calls, fake = cache
    fake(speedup)
    assert device.resolve_precision("auto", "cpu") == expected
    assert device.resolve_precision("auto", "cpu") == expected and len(calls) == 1  # once per process
    assert json.loads(path.read_text())[device.probe_key()]["choice"] == expected
    monkeypatch.setattr(device, "_probes", {})  # a new process on the same machine reads the file
    assert device.resolve_precision("auto", "cpu") == expected and len(calls) == 1
    used = device.precision_provenance()[device.DEFAULT_WORKLOAD.key]
    assert used["cached"] is True and used["bf16_speedup"] == speedup


def test_explicit_precision_and_cuda_need_no_probe(cache):
    _, calls, fake = cache
    fake(0.1)
    assert device.resolve_precision("bf16", "cpu") == "bf16"
    assert device.resolve_precision("fp32", "cpu") == "fp32"
    assert device.resolve_precision("auto", "cuda") == "bf16"
    assert calls == [] and device.precision_provenance() is None
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        device.resolve_precision("fp16", "cpu")


def test_another_torch_version_or_a_damaged_cache_measures_again(cache, monkeypatch):
    path, calls, fake = cache
    path.write_text("{not json")
    fake(2.0)
    assert device.resolve_precision("auto", "cpu") == "bf16" and len(calls) == 1  # damaged file: measured, rewritten
    assert device.probe_key() in json.loads(path.read_text())
    monkeypatch.setattr(device, "_probes", {})
    monkeypatch.setattr(torch, "__version__", "0.0.test")
    device.machine_key.cache_clear()
    try:
        fake(0.5)
        assert device.resolve_precision("auto", "cpu") == "fp32" and len(calls) == 2
        assert len(json.loads(path.read_text())) == 2  # both machines' verdicts kept
    finally:
        device.machine_key.cache_clear()


def test_the_real_probe_times_both_precisions_and_leaves_random_state_alone():
    state = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    for wl in (device.Workload("resnet9", 4, (1, 28, 28), 10, 8), device.Workload("mlp", 16, (1, 28, 28), 10, 8),
               device.Workload("smallcnn", 4, (3, 32, 32), 10, 8)):
        r = device.measure_cpu_precision(wl, threads=1, budget_s=0.2, rounds=2, round_s=0.01)
        assert torch.equal(torch.random.get_rng_state(), state)
        assert r["choice"] in ("fp32", "bf16") and r["fp32_ms_per_step"] > 0 and r["bf16_ms_per_step"] > 0
        assert r["choice"] == ("bf16" if r["bf16_speedup"] >= device.BF16_MIN_SPEEDUP else "fp32")
        assert r["machine"] == device.machine_key() and r["workload"] == wl.key and r["threads"] == 1
        assert torch.get_num_threads() == threads  # the thread count is the measurement's only


def test_each_thread_count_and_shape_has_its_own_verdict(cache):
    path, calls, fake = cache
    small = device.Workload("resnet9", 8, (1, 28, 28), 10, 128)
    fake(2.0)
    assert device.resolve_precision("auto", "cpu", small, threads=2) == "bf16"
    fake(0.7)
    assert device.resolve_precision("auto", "cpu", small, threads=1) == "fp32"  # another thread count: measured
    assert device.resolve_precision("auto", "cpu", device.Workload("mlp", 128, (1, 28, 28), 10, 64), threads=1) == "fp32"
    assert device.resolve_precision("auto", "cpu", small, threads=2) == "bf16" and len(calls) == 3  # cached
    keys = json.loads(path.read_text())
    assert {v["workload"] for v in keys.values()} == {small.key, "mlp w128 1x28x28 c10 b64"}
    assert {k.split(" | threads ")[1].split(" |")[0] for k in keys} == {"1", "2"}
    assert set(device.precision_provenance()) == {small.key, "mlp w128 1x28x28 c10 b64"}


def test_workload_of_params_reads_a_configs_shape():
    wl = device.workload_of_params({"model": "resnet9", "width": 8, "batch_size": 128, "dataset": "fashion-mnist"})
    assert wl == device.Workload("resnet9", 8, (1, 28, 28), 10, 128)
    assert device.workload_of_params({"model": "mlp", "width": 8, "batch_size": 1, "datasets": "a,b"}) is None
    assert device.workload_of_params({"model": "mlp", "width": 8, "batch_size": 1, "dataset": "nope"}) is None


@pytest.mark.parametrize("env, expected", [("fp32", "fp32"), ("bf16", "bf16"), ("auto", None), ("", None)])
def test_memlib_precision_replaces_autos_choice_only(cache, monkeypatch, env, expected):
    _, calls, fake = cache
    fake(2.2 if expected != "bf16" else 0.25)  # the probe would choose the other precision
    monkeypatch.setenv(device.PRECISION_ENV, env)
    got = device.resolve_precision("auto", "cpu")
    if expected is None:
        assert got == "bf16" and len(calls) == 1  # the probe decides
    else:
        assert got == expected and calls == []  # no probe at all
        assert device.resolve_precision("auto", "cuda") == expected
        assert device.precision_provenance() == {device.PRECISION_ENV: {"choice": expected}}
    assert device.resolve_precision("fp32", "cpu") == "fp32" and device.resolve_precision("bf16", "cpu") == "bf16"


def test_a_bad_memlib_precision_is_one_clear_error(cache, monkeypatch):
    monkeypatch.setenv(device.PRECISION_ENV, "fp16")
    with pytest.raises(device.PrecisionError, match=r"\$MEMLIB_PRECISION must be one of auto, fp32, bf16, got 'fp16'"):
        device.resolve_precision("auto", "cpu")
    assert issubclass(device.PrecisionError, device.SettingError)
    assert issubclass(device.ThreadsError, device.SettingError)
