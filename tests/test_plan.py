"""Analysis plans: declared once per claim, logged as dated versions, checked against every verdict; the seed rule
and the stages that add seeds while a verdict is undecided."""
import pytest

from memlib import plan as P
from memlib import staged
from memlib.claims import HOLDS, INCONCLUSIVE, REPRODUCED, UNDECIDED, Criterion, Verdict, criterion, precondition
from memlib.experiments import REGISTRY, resolve
from memlib.measure import Interval, t_interval
from memlib.plans import PLANS, plan_of


@pytest.mark.parametrize("mod", list(REGISTRY.values()))
def test_every_claim_has_a_plan_equal_to_its_logs_last_version(mod):
    plan = plan_of(mod)
    log = P.versions(plan)
    assert log, f"{mod}: no amendment log; run python -m memlib plan {mod} --amend 'first plan'"
    assert log[-1]["digest"] == plan.digest() and log[-1]["plan"] == plan.canonical(), (
        f"{mod}: the declared plan differs from its log's last version: amend it with a reason")
    assert [e["version"] for e in log] == list(range(1, len(log) + 1)) and all(e["reason"] for e in log)


def test_digest_changes_with_any_threshold_and_amend_refuses_an_unchanged_plan(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "LOG_DIR", tmp_path)
    plan = PLANS["lth_vs_dropout"]
    changed = P.AnalysisPlan(plan.claim, plan.kind, (P.criterion("moved", 0.9, "below", subclaim="steps_1_2"),)
                             + plan.specs[1:], plan.calibration, plan.seeds)
    assert changed.digest() != plan.digest()
    first = P.amend(plan, "first")
    with pytest.raises(ValueError, match="unchanged"):
        P.amend(plan, "again")
    with pytest.raises(ValueError, match="reason"):
        P.amend(changed, "  ")
    second = P.amend(changed, "a stricter margin")
    assert (first["version"], second["version"]) == (1, 2)
    assert [e["reason"] for e in P.versions(plan)] == ["first", "a stricter margin"]


def test_a_verdict_that_differs_from_its_plan_is_refused():
    plan = PLANS["lth_vs_dropout"]
    iv = t_interval([0.8, 0.9, 0.85], "ratio")
    good = criterion("step 1", iv, 0.95, "below", key="moved", subclaim="steps_1_2")
    plan.validate([good])
    with pytest.raises(ValueError, match="differs from its analysis plan"):
        plan.validate([criterion("step 1", iv, 0.9, "below", key="moved", subclaim="steps_1_2")])
    with pytest.raises(ValueError, match="differs from its analysis plan"):
        plan.validate([criterion("step 1", iv, 0.95, "below", key="moved", subclaim="steps_3_4")])
    with pytest.raises(KeyError, match="declares no criterion"):
        plan.validate([criterion("x", iv, 0.95, key="unplanned")])
    with pytest.raises(ValueError, match="has no key"):
        plan.validate([criterion("x", iv, 0.95)])
    with pytest.raises(ValueError, match="lacks the planned criteria"):
        plan.validate([good], complete=True)


def test_a_check_reads_its_criteria_from_the_plan(monkeypatch):
    """A criterion made by key carries the plan's threshold, direction, essential flag, sub-claim (a precondition:
    its guards), and a changed plan changes the criterion with it: the check holds no copy."""
    from dataclasses import replace

    from memlib.claims import FAILS, Planned

    iv = t_interval([0.30, 0.32, 0.31], "percent")
    p = Planned("dropout_comparison")
    c = p.criterion("etd_forgets_mislabeled", "mislabeled accuracy below 20%", iv, paper="3.1%")
    assert (c.threshold, c.direction, c.essential, c.subclaim, c.key) == (0.2, "below", True, "localization",
                                                                        "etd_forgets_mislabeled")
    assert c.outcome == FAILS and c.paper == "3.1%"
    pre = p.precondition("dropout_fits_mislabeled", "fits", iv, why="the baseline")
    assert pre.precondition and pre.guards == ("localization", "atypicality") and pre.threshold == 0.9
    PLANS["dropout_comparison"].validate([c, pre])
    plan = PLANS["dropout_comparison"]
    amended = replace(plan, specs=tuple(replace(s, threshold=0.4) if s.key == "etd_forgets_mislabeled" else s
                                        for s in plan.specs))
    monkeypatch.setitem(PLANS, "dropout_comparison", amended)
    c2 = p.criterion("etd_forgets_mislabeled", "mislabeled accuracy below 40%", iv)
    assert c2.threshold == 0.4 and c2.outcome == HOLDS
    with pytest.raises(ValueError, match="is a precondition in the analysis plan"):
        p.criterion("dropout_fits_mislabeled", "x", iv)
    with pytest.raises(ValueError, match="is a criterion in the analysis plan"):
        p.precondition("etd_gap", "x", iv, why="y")
    with pytest.raises(KeyError, match="declares no criterion 'unplanned'"):
        p.criterion("unplanned", "x", iv)


def test_no_precondition_is_a_deciding_quantity():
    for plan in PLANS.values():
        keys = [s.key for s in plan.specs]
        assert len(keys) == len(set(keys)), plan.claim
        subclaims = {s.subclaim for s in plan.criteria}
        for s in plan.preconditions:
            assert set(s.guards) <= subclaims, (plan.claim, s.key, s.guards)


def test_planned_seeds_by_hand():
    """SD 0.1 around a threshold 0.4 away from the paper's value: half-width ≤ 0.2 at the 97.5% level (two looks).
    t(0.9875; 3) · 0.1 / √4 = 4.177 · 0.05 = 0.209 > 0.2; t(0.9875; 4) · 0.1 / √5 = 3.495 · 0.0447 = 0.156: 5 seeds,
    more than the budget's 4 (so the record says the budget is short)."""
    plan = P.AnalysisPlan("x", "paper", (P.criterion("q", 0.5, essential=True, paper=0.9),
                                         P.criterion("s", 0.5, paper=0.9)),
                          P.Calibration(grid={}), P.SeedRule(floor=3, stage=2, looks=2, max_initial=4))
    out = P.planned_seeds(plan, {"q": 0.1, "s": 5.0})
    assert out["per_criterion"]["q"]["seeds_needed"] == 5 and "s" not in out["per_criterion"]  # supporting: not planned
    assert out["wanted"] == 5 and out["initial"] == 4 and out["cap"] == 6 and out["budget_short"]
    assert out["level"] == pytest.approx(0.975)
    assert P.planned_seeds(plan, {"q": 0.01})["initial"] == 3  # the floor


def test_seeds_to_decide_from_an_observed_interval():
    iv = t_interval([0.55, 0.65, 0.75], "percent")  # mean 0.65, sd 0.1: undecided against 0.5 at 3 seeds
    assert iv.low < 0.5 < iv.high
    n = P.seeds_to_decide(iv, 0.5, 0.975)
    # t(0.9875; n−1) · 0.1 / √n < 0.15: n = 4 gives 0.209, n = 5 gives 0.156, n = 6 gives 3.163 · 0.0408 = 0.129
    assert n == 6
    assert P.seeds_to_decide(Interval(0.5, 0.4, 0.6, 30, "bootstrap", kind="bootstrap"), 0.45, 0.95) is None


def _verdict(outcome, key="q"):
    iv = Interval(0.6, 0.4, 0.8, 3, "t", "percent", kind="t")
    c = Criterion("q", outcome, "", essential=True, interval=iv, threshold=0.5, key=key)
    return Verdict("x", REPRODUCED if outcome == HOLDS else INCONCLUSIVE, "", criteria=[c])


def test_undecided_counts_preconditions_and_essential_criteria_only():
    iv = t_interval([0.4, 0.6, 0.5], "percent")
    sure = t_interval([0.95, 0.96, 0.97], "percent")
    v = Verdict("x", INCONCLUSIVE, "", criteria=[
        precondition("p", sure, 0.5, why="set-up", key="p"), precondition("u", iv, 0.5, why="set-up", key="u",
                                                                         guards=("other",)),
        criterion("e", iv, 0.5, essential=True, key="e"),
        criterion("s", iv, 0.5, key="s")])
    assert staged.undecided(v) == ["u", "e"]  # the supporting criterion is not waited for


def test_stages_add_seeds_until_decided_and_stop_at_the_last_look(monkeypatch):
    seen = []

    class Exp:
        NAME = "lth_vs_dropout"

        @staticmethod
        def run(cfg, store):
            seen.append(cfg.seeds)
            return cfg.seeds

    monkeypatch.setattr(staged, "get_experiment", lambda name: Exp)
    cfg = resolve("lth_vs_dropout", "quick", {"seeds": 3})
    rule = plan_of("lth_vs_dropout").seeds
    # undecided at the first look, decided at the second
    monkeypatch.setattr(staged, "verdict_of", lambda result, c: _verdict(UNDECIDED if result == 3 else HOLDS))
    ran, result, v = staged.decide(cfg)
    assert seen == [3, 3 + rule.stage] and ran.seeds == 5 and v.stopping.reason == "decided"
    assert "look 2 of at most 2" in v.stopping.text()
    # never decided: stops at the plan's last look
    seen.clear()
    monkeypatch.setattr(staged, "verdict_of", lambda result, c: _verdict(UNDECIDED))
    ran, _, v = staged.decide(cfg)
    assert seen == [3, 5] and v.stopping.reason == "last look" and "q undecided" in v.stopping.text()
    # stages off: exactly the seeds asked for
    seen.clear()
    _, _, v = staged.decide(cfg.replace(seed_stages=False))
    assert seen == [3] and v.stopping.reason == "stages off"
