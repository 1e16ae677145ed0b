"""Calibration of the quick scale: the pre-registered rule by hand, a tiny real sweep at the smoke profile (its
record keeps preconditions and cost only), and the committed records against the quick profiles."""
import json

import pytest

from memlib import calibration as cal
from memlib.plan import Calibration
from memlib.experiments import REGISTRY, resolve


def _rows(*specs):
    return [{"width": w, "epochs": e, "seed": s, "seconds": sec, "all_ok": ok} for w, e, s, sec, ok in specs]


def test_every_claim_has_a_plan_and_runs_are_tried_cheapest_first():
    for mod in REGISTRY.values():
        runs = cal.configs(mod)
        costs = [cal.estimated_cost(c.values) for _, c in runs]
        assert runs and costs == sorted(costs), mod


def test_rule_picks_the_cheapest_setting_that_holds_in_every_seed():
    rows = _rows((8, 10, 1000, 10.0, True), (8, 10, 1001, 12.0, False),   # cheap, but one seed fails
                 (16, 10, 1000, 30.0, True), (16, 10, 1001, 34.0, True),   # qualifies: 32 s a seed
                 (16, 20, 1000, 60.0, True), (16, 20, 1001, 62.0, True))   # qualifies, dearer
    assert cal.pick(rows, ["width", "epochs"]) == {"width": 16, "epochs": 10, "seconds_per_seed": 32.0}
    assert cal.pick(_rows((8, 10, 1000, 1.0, False)), ["width", "epochs"]) is None


@pytest.mark.parametrize("value,threshold,direction,ok", [
    (0.93, 0.9, "above", True), (0.92, 0.9, "above", False),     # > 90% needs 92.5%
    (0.63, 0.5, "above", True), (0.60, 0.5, "above", False),     # > 50% needs 62.5%
    (0.15, 0.2, "below", True), (0.16, 0.2, "below", False),     # < 20% needs 15%
    (0.475, 0.3, "above", True), (0.47, 0.3, "above", False),    # Spearman > 0.3 needs 0.475
    (float("nan"), 0.5, "above", False)])
def test_a_calibration_seed_must_clear_its_threshold_by_a_margin(value, threshold, direction, ok):
    from memlib.claims import precondition
    from memlib.measure import Interval

    c = precondition("p", Interval(value, value, value, 1, "one seed"), threshold, direction, why="set-up")
    assert cal._beyond(c) is ok


def test_calibration_seeds_are_disjoint_from_the_verdict_seeds():
    for mod in REGISTRY.values():
        quick = resolve(mod, "quick")
        verdict_seeds = set(range(quick.seed, quick.seed + quick.seeds))
        plan = cal.plan_of(mod)
        cal_seeds = {p["seed"] for p, _ in cal.configs(mod, plan)}
        assert cal_seeds and not cal_seeds & verdict_seeds, mod


def test_a_tiny_calibration_records_preconditions_and_cost_only(store):
    plan = Calibration(grid={"epochs": (2, 1)}, seeds=1, base="smoke", axes=("epochs", "epochs"))
    rec = cal.calibrate("gradient_similarity", store, plan=plan, report=lambda s: None)
    # tried cheapest first; a 1- or 2-epoch run memorizes nothing, so neither qualifies and both are tried
    assert [r["epochs"] for r in rec["rows"]] == [1, 2] and rec["seeds"] == [cal.CAL_SEED]
    assert rec["pick"] is None and rec["not_run"] == []
    assert [p["name"] for p in rec["preconditions"]] == ["pre0"]
    assert "memorized by the end" in rec["preconditions"][0]["text"]
    for r in rec["rows"]:
        # the row holds the knobs, the seed, each precondition's value and whether it held, and the cost: nothing
        # the verdict decides on (no cosines, no window)
        assert set(r) == {"epochs", "seed", "of_seeds", "seconds", "pre0", "pre0_ok", "all_ok"}
        assert 0.0 <= r["pre0"] <= 1.0 and r["seconds"] > 0
    assert rec["rule"] == cal.RULE and rec["machine"]["cores"] >= 1
    json.dumps(rec)  # the record is plain JSON
    again = cal.calibrate("gradient_similarity", store, plan=plan, report=lambda s: None)
    assert again["rows"] == rec["rows"]  # a rerun is a store hit: same numbers


def test_the_sweep_stops_at_the_first_setting_that_holds_and_drops_a_setting_at_its_first_failing_seed(
        store, monkeypatch):
    verdicts = {(1, 1000): False, (2, 1000): True, (2, 1001): True}
    names = [{"name": "pre0", "text": "t", "threshold": 0.5, "direction": "above"}]
    monkeypatch.setattr(cal, "measure", lambda cfg, result: ({"seconds": 1.0, "pre0": 0.0, "pre0_ok": True,
                                                               "all_ok": verdicts[(cfg.epochs, cfg.seed)]}, names))
    plan = Calibration(grid={"epochs": (3, 2, 1)}, seeds=2, base="smoke")
    rec = cal.calibrate("gradient_similarity", store, plan=plan, report=lambda s: None)
    assert [(r["epochs"], r["seed"]) for r in rec["rows"]] == [(1, 1000), (2, 1000), (2, 1001)]
    assert rec["pick"] == {"epochs": 2, "seconds_per_seed": 1.0} and rec["not_run"] == [{"epochs": 3}]


def test_a_quick_value_changed_without_recalibrating_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(cal, "RECORDS", tmp_path)
    quick = resolve("dropout_comparison", "quick").values
    rec = {"experiment": "dropout_comparison", "base_profile": "quick", "grid": {"width": [8, 16]},
           "pick": {"width": quick["width"], "seconds_per_seed": 1.0}}
    cal.record_path("dropout_comparison").write_text(json.dumps(rec))
    assert cal.disagreements("dropout_comparison") == []
    rec["pick"]["width"] = quick["width"] * 2
    cal.record_path("dropout_comparison").write_text(json.dumps(rec))
    assert cal.disagreements("dropout_comparison") == [
        f"dropout_comparison: quick width={quick['width']!r}, calibration picked {quick['width'] * 2!r}"]


@pytest.mark.parametrize("mod", list(REGISTRY.values()))
def test_quick_profile_equals_its_calibration_record(mod):
    """No quick value of a swept knob changes without a new calibration (``memlib calibrate``)."""
    if cal.load(mod) is None:
        pytest.fail(f"{mod} has no calibration record: run `python -m memlib calibrate {mod}`")
    assert cal.disagreements(mod) == []


def test_appendix_text_and_figure_from_a_record(tmp_path, monkeypatch):
    from memlib.plots.calibration import heatmap

    monkeypatch.setattr(cal, "RECORDS", tmp_path)
    assert "No calibration record yet" in cal.record_markdown("lth_vs_dropout")
    rec = {"experiment": "lth_vs_dropout", "base_profile": "quick", "grid": {"width": [8, 16], "epochs": [10, 20]},
           "why": "a lead", "seeds": [1000, 1001], "axes": ["epochs", "width"],
           "preconditions": [{"name": "pre0", "text": "the dense network memorizes", "threshold": 0.5,
                              "direction": "above"}],
           "rule": cal.RULE, "pick": {"width": 8, "epochs": 20, "seconds_per_seed": 12.0},
           "rows": [{"width": 8, "epochs": 10, "seed": 1000, "of_seeds": 2, "seconds": 6.0, "pre0": 0.3,
                     "pre0_ok": False, "all_ok": False},
                    {"width": 8, "epochs": 20, "seed": 1000, "of_seeds": 2, "seconds": 12.0, "pre0": 0.9,
                     "pre0_ok": True, "all_ok": True},
                    {"width": 8, "epochs": 20, "seed": 1001, "of_seeds": 2, "seconds": 12.0, "pre0": 0.8,
                     "pre0_ok": True, "all_ok": True}],
           "not_run": [{"width": 16, "epochs": 10}, {"width": 16, "epochs": 20}],
           "machine": {"cpu": "a CPU", "cores": 2, "load_average_at_start": 1.0}, "date": "2026-11-30",
           "commit": "abc", "sweep_seconds": 60.0}
    cal.write(rec)
    text = cal.record_markdown("lth_vs_dropout")
    assert "**Pick:** width = 8, epochs = 20 (12 s per seed)" in text and "Not run (dearer than the pick)" in text
    fig = heatmap(cal.load("lth_vs_dropout"))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("not run") == 2 and "✘ 30%\n6 s" in texts and "✔ 80%\n12 s" in texts


def test_a_record_under_an_earlier_rule_is_picked_again_from_its_rows():
    rec = {"grid": {"epochs": [10, 20]}, "rule": "an older rule",
           "preconditions": [{"name": "pre0", "threshold": 0.5, "direction": "above"}],
           "rows": [{"epochs": 10, "seed": 1000, "of_seeds": 2, "seconds": 5.0, "pre0": 0.55, "all_ok": True},
                    {"epochs": 10, "seed": 1001, "of_seeds": 2, "seconds": 5.0, "pre0": 0.70, "all_ok": True},
                    {"epochs": 20, "seed": 1000, "of_seeds": 2, "seconds": 9.0, "pre0": 0.80, "all_ok": True},
                    {"epochs": 20, "seed": 1001, "of_seeds": 2, "seconds": 11.0, "pre0": 0.90, "all_ok": True}]}
    # 0.55 passed the older rule but not the margin (> 50% needs 62.5%): today's rule picks 20 epochs
    assert cal.repick(rec) == {"epochs": 20, "seconds_per_seed": 10.0}


def test_records_are_append_only_and_the_newest_is_in_force(tmp_path, monkeypatch):
    monkeypatch.setattr(cal, "RECORDS", tmp_path)
    first = {"experiment": "lth_vs_dropout", "date": "2026-12-01", "pick": {"width": 8}}
    cal.write(first)
    second = {**first, "pick": {"width": 16}}
    p2 = cal.write(second)
    p3 = cal.write({**first, "date": "2026-12-01", "pick": {"width": 32}})  # same day: a new file, none replaced
    assert [p.name for p in cal.records("lth_vs_dropout")][:1] == ["05_lth_vs_dropout.2026-12-01.json"]
    assert len(cal.records("lth_vs_dropout")) == 3 and p2 != p3
    assert cal.load("lth_vs_dropout")["pick"] == {"width": 32}
    assert "Superseded records, kept" in cal.superseded_markdown("lth_vs_dropout")


def test_seed_spread_keeps_the_spread_only():
    sd = cal.spread([{"a": 0.5, "b": 1.0}, {"a": 0.7, "b": 1.0}, {"a": 0.6}])
    assert sd == {"a": 0.1}  # 'b' is missing in one seed: no spread for it; no means anywhere
