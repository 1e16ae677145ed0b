import json

import pytest
import torch

from memlib import device


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty precision cache, no verdict in this process, and a fake probe that counts its calls."""
    monkeypatch.setenv(device.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(device, "_probe", None)
    calls = []

    def fake(speedup):
        def measure():
            calls.append(speedup)
            return {"choice": "bf16" if speedup >= device.BF16_MIN_SPEEDUP else "fp32", "bf16_speedup": speedup,
                    "machine": device.machine_key()}
        monkeypatch.setattr(device, "measure_cpu_precision", measure)

    return tmp_path / "precision.json", calls, fake


@pytest.mark.parametrize("speedup, expected", [(0.25, "fp32"), (1.05, "fp32"), (2.2, "bf16")])
def test_auto_on_cpu_follows_the_measurement_and_caches_it(cache, monkeypatch, speedup, expected):
    path, calls, fake = cache
    fake(speedup)
    assert device.resolve_precision("auto", "cpu") == expected
    assert device.resolve_precision("auto", "cpu") == expected and len(calls) == 1  # once per process
    assert json.loads(path.read_text())[device.machine_key()]["choice"] == expected
    monkeypatch.setattr(device, "_probe", None)  # a new process on the same machine reads the file
    assert device.resolve_precision("auto", "cpu") == expected and len(calls) == 1
    assert device.precision_provenance()["cached"] is True
    assert device.precision_provenance()["bf16_speedup"] == speedup


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
    assert device.machine_key() in json.loads(path.read_text())
    monkeypatch.setattr(device, "_probe", None)
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
    r = device.measure_cpu_precision(batch=8, budget_s=0.2, rounds=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert r["choice"] in ("fp32", "bf16") and r["fp32_ms_per_step"] > 0 and r["bf16_ms_per_step"] > 0
    assert r["choice"] == ("bf16" if r["bf16_speedup"] >= device.BF16_MIN_SPEEDUP else "fp32")
    assert r["machine"] == device.machine_key()


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
    assert device.resolve_precision("fp32", "cpu") == "fp32" and device.resolve_precision("bf16", "cpu") == "bf16"


def test_a_bad_memlib_precision_is_one_clear_error(cache, monkeypatch):
    monkeypatch.setenv(device.PRECISION_ENV, "fp16")
    with pytest.raises(device.PrecisionError, match=r"\$MEMLIB_PRECISION must be one of auto, fp32, bf16, got 'fp16'"):
        device.resolve_precision("auto", "cpu")
    assert issubclass(device.PrecisionError, device.SettingError)
    assert issubclass(device.ThreadsError, device.SettingError)
