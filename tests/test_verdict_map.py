"""Verdict maps (memlib.verdict_map, ``memlib map``): cells from the plan, each a full verdict, resumable, kept as a
bundle that the appendix reads back and decides again."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from memlib import verdict_map as vm
from memlib.bundle import BundleError, import_bundle, verify_bundle
from memlib.claims import PAPER_STATUSES
from memlib.config import ConfigError
from memlib.evidence import bundle_evidence
from memlib.experiments import get_experiment
from memlib.plans import plan_of
from memlib.store import Store

FAST = {"epochs": 1}  # smoke cells of claim 1 at one epoch: seconds each


@pytest.fixture(scope="module")
def decided(tmp_path_factory):
    """Claim 1's map at the smoke profile (one epoch), decided once for the module, and its bundle."""
    root = tmp_path_factory.mktemp("map")
    store = Store(root / "store")
    rows = vm.run_map("01", "smoke", store, progress=False, overrides=FAST)
    out = vm.export_map("01", rows, root / "results" / "map-01-smoke", "smoke", store, FAST)
    return store, rows, out


def test_cells_come_from_the_plan_and_are_validated_first(tmp_path):
    grid = plan_of("02").map
    cs = vm.cells("02", "quick", Store(tmp_path))
    assert len(cs) == len(grid.settings()) >= 6
    assert [c.setting for c in cs] == grid.settings()
    assert all(c.cfg.noise_rate == c.setting["noise_rate"] and c.cfg.width == c.setting["width"] for c in cs)
    assert not any(c.stored for c in cs)
    with pytest.raises(ConfigError, match="knob of the map's grid"):
        vm.cells("02", "quick", Store(tmp_path), {"width": 32})
    with pytest.raises(ConfigError, match="unknown parameter"):
        vm.cells("02", "quick", Store(tmp_path), {"widht": 32})
    with pytest.raises(ConfigError, match="declares no verdict map"):
        vm.plan_map("03")


def test_dry_run_lists_cells_seeds_and_cost(tmp_path):
    text = vm.dry_run_text("02", "quick", Store(tmp_path), cores=2)
    lines = [ln for ln in text.splitlines() if "seeds -> at most" in ln]
    assert len(lines) == 6
    assert all(" s (up to ~" in ln for ln in lines)  # a cost estimate: the calibration record is committed
    assert "to run: 6 of 6 cells" in text


def test_each_cell_is_a_full_verdict_and_a_second_run_trains_nothing(decided, monkeypatch):
    store, rows, _ = decided
    grid = plan_of("01").map
    assert len(rows) == len(grid.settings())
    assert set(rows.status) <= set(PAPER_STATUSES)
    assert (rows.shows == grid.shows).all() and (rows.seeds == 1).all()
    assert all(c.stored for c in vm.cells("01", "smoke", store, FAST))

    exp = get_experiment("01_gradient_similarity")

    def no_training(*a, **k):
        raise AssertionError("a stored cell was trained again")

    monkeypatch.setattr(exp, "_one_seed", no_training)
    again = vm.run_map("01", "smoke", store, progress=False, overrides=FAST)
    pd.testing.assert_frame_equal(again.drop(columns=["reason"]), rows.drop(columns=["reason"]))


def test_the_bundle_reads_back_as_the_same_cells(decided, tmp_path):
    store, rows, out = decided
    checked = verify_bundle(out, Store(tmp_path / "other"))
    assert checked.manifest["map"]["claim"] == "01_gradient_similarity"
    assert len(checked.staged) == len(rows)
    info, back = vm.read_map(out)
    assert info["plan_digest"] == plan_of("01").digest()
    key = ["noise_rate", "width"]
    a, b = rows.sort_values(key).reset_index(drop=True), back.sort_values(key).reset_index(drop=True)
    assert list(a.status) == list(b.status)
    pd.testing.assert_series_equal(a.estimate, b.estimate)
    assert vm.map_bundles(out.parent) == [out]


def test_a_damaged_map_bundle_is_refused_and_the_page_says_so(decided, tmp_path):
    _, _, out = decided
    bad = tmp_path / "results" / "map-01-damaged"
    shutil.copytree(out, bad)
    table = next(bad.glob("entries/*/*/tables/*.csv"))
    text = table.read_text()
    i = next(i for i in range(len(text) - 1, 0, -1) if text[i].isdigit())
    table.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:])  # same size, another number
    with pytest.raises(BundleError, match="does not match the hash"):
        vm.read_map(bad)
    parts = list(vm.page_parts(bad.parent))
    assert any("map-01-damaged" in before and "not shown" in before for before, _, _ in parts)


def test_the_page_draws_one_figure_per_mapped_claim_with_a_bundle(decided):
    _, rows, out = decided
    parts = list(vm.page_parts(out.parent))
    figures = [f for _, f, _ in parts if f is not None]
    assert len(figures) == 1
    text = " ".join(b + a for b, _, a in parts)
    assert "No map bundle of this claim" in text  # claims 2, 4 and 5 say how to compute theirs
    assert "memlib map 02" in text and "by chance" in text
    assert text.count("| 0.") >= len(rows)  # the table: one row per cell


def test_chapters_do_not_list_map_cells_as_evidence(decided, tmp_path):
    _, _, out = decided
    store = Store(tmp_path / "store")
    import_bundle(out, store)
    assert bundle_evidence("01", store).empty


def test_chance_text_counts_cells():
    text = vm.chance_text(6)
    assert "0.15 such cells" in text and "14%" in text


def test_cli_dry_run_and_errors(tmp_path, monkeypatch, capsys):
    from memlib.cli import main

    monkeypatch.setenv("MEMLIB_STORE", str(tmp_path / "store"))
    assert main(["map", "02", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("seeds -> at most") == 6 and "core-seconds" in out
    assert main(["map", "03", "--dry-run"]) == 2
    assert "declares no verdict map" in capsys.readouterr().err
    assert main(["map", "02", "--dry-run", "-p", "noise_rate=0.3"]) == 2
    assert "knob of the map's grid" in capsys.readouterr().err
