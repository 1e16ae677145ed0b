"""The shared verdict machinery: intervals, the symmetric decision rule, combination, formatting."""
import math

import numpy as np
import pandas as pd
import pytest

from memlib import claims as C
from memlib.measure import (Interval, Measured, auc, bootstrap_interval, bootstrap_two_sample, fmt, t_interval,
                            wilson_interval)


def test_t_interval_matches_hand_computation():
    # mean 2, sd 1, n 3: half-width = t_{0.975, 2} * 1 / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    iv = t_interval([1.0, 2.0, 3.0])
    assert iv.estimate == pytest.approx(2.0)
    assert iv.high - iv.estimate == pytest.approx(2.4841, abs=1e-3)
    assert iv.n == 3 and "3 seeds" in iv.method


def test_percent_intervals_stay_within_0_and_100_percent():
    iv = t_interval([0.98, 1.0, 1.0], unit="percent")
    assert iv.high == 1.0 and iv.low < 1.0
    assert t_interval([0.0, 0.02, 0.0], unit="percent").low == 0.0
    assert t_interval([0.98, 1.0, 1.0]).high > 1.0  # other units are not clipped


def test_one_seed_gives_an_unbounded_interval_that_decides_nothing():
    iv = t_interval([0.9])
    assert math.isinf(iv.low) and math.isinf(iv.high)
    assert C.decide(iv, 0.5) == C.UNDECIDED
    assert "no interval" in iv.text()


def test_decide_is_symmetric():
    above = Interval(0.8, 0.7, 0.9, 3, "t")
    below = Interval(0.2, 0.1, 0.3, 3, "t")
    across = Interval(0.5, 0.3, 0.7, 3, "t")
    assert C.decide(above, 0.5) == C.HOLDS and C.decide(above, 0.5, "below") == C.FAILS
    assert C.decide(below, 0.5) == C.FAILS and C.decide(below, 0.5, "below") == C.HOLDS
    assert C.decide(across, 0.5) == C.UNDECIDED and C.decide(across, 0.5, "below") == C.UNDECIDED


def test_decide_contradiction_needs_the_opposite_side():
    neg = Interval(-0.2, -0.3, -0.1, 3, "t")
    small = Interval(0.01, 0.0, 0.02, 3, "t")
    assert C.decide(neg, 0.05, opposite=0.0) == C.CONTRADICTS
    assert C.decide(small, 0.05, opposite=0.0) == C.FAILS
    assert C.decide(Interval(1.05, 1.02, 1.1, 3, "t"), 0.95, "below", opposite=1.0) == C.CONTRADICTS
    assert C.decide(Interval(0.99, 0.97, 1.01, 3, "t"), 0.95, "below", opposite=1.0) == C.FAILS


def test_null_decide_rarely_decides_on_pure_noise():
    # effect 0, threshold 0: a 95% interval should exclude 0 on one side only ~2.5% of the time
    rng = np.random.default_rng(0)
    outs = [C.decide(t_interval(rng.normal(0, 1, 3)), 0.0, opposite=None) for _ in range(2000)]
    assert outs.count(C.HOLDS) / len(outs) < 0.05
    assert outs.count(C.FAILS) / len(outs) < 0.05


def test_combine_paper_rules():
    h = C.Criterion("a", C.HOLDS, "", essential=True)
    f = C.Criterion("b", C.FAILS, "")
    u = C.Criterion("c", C.UNDECIDED, "", essential=True)
    fe = C.Criterion("d", C.FAILS, "", essential=True)
    assert C.combine([h, C.Criterion("e", C.HOLDS, "")]) == C.REPRODUCED
    assert C.combine([h, f]) == C.PARTLY
    assert C.combine([h, u]) == C.INCONCLUSIVE
    assert C.combine([h, u, fe]) == C.NOT_REPRODUCED
    assert C.combine([]) == C.INCONCLUSIVE


def test_combine_hypothesis_rules():
    h, f = C.Criterion("a", C.HOLDS, ""), C.Criterion("b", C.FAILS, "")
    u, x = C.Criterion("c", C.UNDECIDED, ""), C.Criterion("d", C.CONTRADICTS, "")
    assert C.combine([h, h], "hypothesis") == C.SUPPORTED
    assert C.combine([h, u], "hypothesis") == C.INCONCLUSIVE
    assert C.combine([h, f, u], "hypothesis") == C.NOT_SUPPORTED
    assert C.combine([h, f, x], "hypothesis") == C.CONTRADICTED
    with pytest.raises(ValueError, match="kind"):
        C.combine([h], "bogus")


def test_criterion_evidence_shows_interval_and_threshold():
    c = C.criterion("mislabeled fit", t_interval([0.9, 0.95, 0.92], unit="percent"), 0.5)
    assert c.outcome == C.HOLDS
    assert "92.3%" in c.evidence and "> 50.0%" in c.evidence and "t-interval over 3 seeds" in c.evidence


def test_formatting_by_unit():
    assert fmt(0.783, "percent") == "78.3%"
    assert fmt(-0.037, "points") == "−3.7 points" and fmt(-0.0001, "points") == "0.0 points"
    assert fmt(-0.191, "cosine") == "−0.19"
    assert fmt(4000.0, "count") == "4,000"
    assert fmt(None, "epoch") == "never"
    assert fmt(float("nan"), "ratio") == "—"
    assert str(Measured(0.9261, "ratio")) == "0.926"
    with pytest.raises(ValueError, match="unknown unit"):
        Measured(1.0, "furlongs")


def test_bootstrap_and_wilson_and_auc():
    assert auc([2, 3, 4], [0, 1]) == 1.0 and auc([1], [1]) == 0.5
    iv = bootstrap_interval(np.arange(100.0), unit="number")
    assert iv.low < 49.5 < iv.high
    w = wilson_interval(0, 20)
    assert w.low == 0.0 and 0.1 < w.high < 0.2  # Wilson upper bound for 0/20 ~ 16.1%
    ab = bootstrap_two_sample(np.arange(50.0), np.arange(50.0), auc)
    assert ab.low < 0.5 < ab.high


@pytest.mark.parametrize("n,m", [(7, 40), (40, 7), (25, 25), (1, 3)])
def test_auc_is_the_mann_whitney_u_exactly(n, m):
    """By hand: a = [1, 2], b = [0, 2, 3] -> pairs a > b: (1,0), (2,0); ties (2,2) count half: 2.5 of 6.  Then the
    rank formula (scipy's Mann-Whitney U over n·m) on tied data, from either sample's side: equal to the last bit."""
    from scipy.stats import mannwhitneyu

    assert auc([1, 2], [0, 2, 3]) == 2.5 / 6 and auc([0, 2, 3], [1, 2]) == 3.5 / 6
    rng = np.random.default_rng(n * 100 + m)
    for _ in range(20):
        a, b = rng.integers(0, 6, n) / 6, rng.integers(0, 6, m) / 6
        assert auc(a, b) == mannwhitneyu(a, b, method="asymptotic").statistic / (n * m)
    assert np.isnan(auc([np.nan, 1.0], [0.0])) and np.isnan(auc([], [1.0]))


def test_scale_text_names_everything():
    s = C.Scale("quick", "resnet9", "fashion-mnist", 4000, 0.1, 3, width=16)
    t = s.text()
    for part in ("quick profile", "ResNet-9 (width 16)", "Fashion-MNIST", "4,000", "10% label noise", "3 seeds"):
        assert part in t
    assert s.reduced and not C.Scale("paper", "mlp", "cifar10", 1, 0.1, 1).reduced


def test_percent_intervals_are_for_shares_and_differences_are_points():
    # a share's interval is clipped to [0, 100%]; a difference of shares (which may be negative) is in points and
    # is never clipped (a clipped lead once read "-11.5% [0.0%, -8.9%]")
    iv = t_interval([0.98, 1.0, 0.99], "percent")
    assert iv.high == 1.0 and iv.low < 0.98
    lead = t_interval([-0.14, -0.09, -0.115], "points")
    assert lead.low < lead.estimate < lead.high < 0
    with pytest.raises(ValueError, match="a difference of shares is unit 'points'"):
        t_interval([-0.14, -0.09, -0.115], "percent")


def test_precondition_gates_every_kind_and_needs_a_reason():
    """A precondition that fails or is undecided makes the verdict 'not testable at this scale', whatever the
    criteria say; one that holds leaves the verdict to the criteria."""
    ok = C.precondition("the baseline fits", t_interval([0.95, 0.97, 0.96], "percent"), 0.9, why="set-up")
    bad = C.precondition("the baseline fits", t_interval([0.05, 0.07, 0.06], "percent"), 0.9, why="set-up")
    unsure = C.precondition("the baseline fits", t_interval([0.5, 0.99, 0.95], "percent"), 0.9, why="set-up")
    fails = C.criterion("the effect", t_interval([-0.2, -0.3, -0.25], "points"), 0.0, essential=True, opposite=0.0)
    holds = C.criterion("the effect", t_interval([0.2, 0.3, 0.25], "points"), 0.0, essential=True)
    assert ok.outcome == C.HOLDS and bad.outcome == C.FAILS and unsure.outcome == C.UNDECIDED
    for kind in ("paper", "hypothesis"):
        assert C.combine([bad, holds], kind) == C.NOT_TESTABLE
        assert C.combine([unsure, fails], kind) == C.NOT_TESTABLE
    assert C.combine([ok, holds], "paper") == C.REPRODUCED
    assert C.combine([ok, fails], "paper") == C.NOT_REPRODUCED
    assert C.combine([ok, fails], "hypothesis") == C.CONTRADICTED
    with pytest.raises(ValueError, match="needs its reason"):
        C.precondition("x", t_interval([1, 1], "ratio"), 0.5, why="")
    assert C.NOT_TESTABLE in C.PAPER_STATUSES and C.NOT_TESTABLE in C.HYPOTHESIS_STATUSES
    assert C.NOT_TESTABLE in C.STATUS_MEANING


def test_precondition_named_on_the_verdict_line_box_and_summary_row():
    from memlib import notebook as nb
    from memlib import summary

    bad = C.precondition("standard dropout fits the mislabeled examples", t_interval([0.07, 0.08, 0.06], "percent"),
                         0.9, why="the baseline")
    v = C.Verdict("Claim", C.combine([bad], "paper"), "Summary.", criteria=[bad])
    line = v.status_line()
    assert line.startswith("not testable at this scale: standard dropout fits the mislabeled examples — 7.0%")
    assert "needs > 90.0%" in line and "(fails)" in line
    box = nb.verdict_markdown(v)
    assert "Verdict: NOT TESTABLE AT THIS SCALE" in box and "Not testable here, because:" in box
    assert "precondition: standard dropout fits the mislabeled examples: 7.0% [" in box and "needs > 90.0%" in box
    crit = nb.criteria_markdown(v)
    assert "(precondition)" in crit and "Why a precondition:* the baseline" in crit
    row = pd.DataFrame([{"claim": "02_dropout_comparison", "title": "T", "verdict": v.status, "kind": "paper",
                         "why": "; ".join(v.reason_lines()[:1]), "scale": "quick profile",
                         "reduced": True, "summary": ""}])
    md = summary.summary_markdown(row)
    assert "**not testable at this scale** — ✘ precondition: standard dropout fits" in md


def test_the_box_names_the_deciding_criteria_and_what_would_decide_an_inconclusive_one():
    from memlib import notebook as nb
    from memlib.experiments import resolve

    held = C.criterion("a holds", t_interval([0.8, 0.9, 0.85], "percent"), 0.5, essential=True, key="a")
    open_ = C.criterion("b is open", t_interval([0.55, 0.65, 0.75], "percent"), 0.5, essential=True, key="b")
    sup = C.criterion("c fails", t_interval([0.1, 0.2, 0.15], "percent"), 0.5, key="c")
    v = C.Verdict("Claim", C.combine([held, open_, sup]), "Summary.", criteria=[held, open_, sup])
    assert v.status == C.INCONCLUSIVE and [c.key for c in v.deciding_criteria()] == ["b"]
    assert v.seeds_to_decide() == 5  # t(0.975; 4) · 0.1 / √5 = 0.124 < 0.15; at 4 seeds 0.159
    v.config = resolve("lth_vs_dropout", "quick")
    box = nb.verdict_markdown(v)
    assert "**Decided by:**" in box and "b is open: 65.0% [" in box and "about **5 seeds**" in box
    assert "-p seeds=5" in box
    ok = C.Verdict("Claim", C.combine([held, sup]), "S.", criteria=[held, sup])
    assert ok.status == C.PARTLY and [c.key for c in ok.deciding_criteria()] == ["c"]
    done = C.Verdict("Claim", C.combine([held]), "S.", criteria=[held])
    assert [c.key for c in done.deciding_criteria()] == ["a"] and "(holds)" in done.reason_lines()[0]


def test_scale_is_decided_from_values_not_the_profile_name():
    from memlib.experiments import resolve

    paper = C.Scale.from_config(resolve("gradient_similarity", "paper"), n_train=50000, seeds=3)
    assert not paper.reduced and paper.differences == ()
    narrow = C.Scale.from_config(resolve("gradient_similarity", "paper", width=8), n_train=50000, seeds=3)
    assert narrow.reduced and narrow.differences == ("width 8 instead of 64",)
    q = resolve("gradient_similarity", "quick")
    quick = C.Scale.from_config(q, n_train=q.n_train)
    assert quick.reduced and any(d.startswith(f"n_train {q.n_train} instead of all") for d in quick.differences)
    # the paper profile of claim 4 is itself not the papers' setting: said on the scale
    ep = C.Scale.from_config(resolve("early_learning", "paper"), n_train=50000)
    assert any("ResNet-34" in d for d in ep.deviations)


def test_a_criterion_settled_to_inconclusive_shows_the_interval_that_settled_it():
    """Three criteria could decide against a hypothesis: one whose 95% interval lies below its threshold but whose
    1 − 5%/(3·2) interval does not is inconclusive, and its reason line shows that wider interval (crossing the
    threshold), never the 95% one beside the word "inconclusive"."""
    vals = [-0.30, -0.05, -0.20, -0.45, -0.10, -0.38]  # mean −0.246, 95% t-interval ≈ [−0.41, −0.08]
    iv = t_interval(vals, "points")
    assert iv.high < 0.02
    crits = [C.criterion(f"step {k}", iv if k == "a" else t_interval([0.1, 0.0, 0.05, 0.2, 0.15, 0.1], "points"),
                         0.02, key=k, subclaim="s") for k in ("a", "b", "c")]
    settled = C.settle(crits, "hypothesis", looks=2)
    a = next(c for c in settled if c.key == "a")
    assert a.outcome == C.UNDECIDED and a.against_level == pytest.approx(1 - 0.05 / 6)
    v = C.Verdict("Hypothesis", C.combine(crits, "hypothesis", looks=2), "S.", criteria=crits, kind="hypothesis",
                  looks=2)
    line = next(x for x in v.reason_lines() if x.split(" ", 1)[1].startswith("step a"))
    wide = iv.at(1 - 0.05 / 6)
    assert wide.low < 0.02 < wide.high  # the settling interval crosses the threshold ...
    assert "99.2%" in line and fmt(wide.high, "points") in line and "(inconclusive)" in line  # ... and is shown
    assert fmt(iv.high, "points") not in line
