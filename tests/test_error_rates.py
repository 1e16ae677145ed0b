"""Error rates of the verdicts, by simulation on hand-made results (the fakes of each claim's tests), and the power
of each kind of criterion.

``test_error_rate_*``: under a model where every deciding quantity sits exactly at its threshold (no effect: the
least favourable case for both errors; for claim 5's "contradicted", at its no-effect value), with every
precondition holding, a verdict against the claim (*not reproduced* / *not supported* / *contradicted*) and a
verdict for it (*reproduced* or *partly reproduced* / *supported*) must each occur at most 5% of the time.  The rule
(:mod:`memlib.claims`, Bonferroni over the criteria that could decide against the claim) bounds both at 2.5%.
Monte-Carlo tolerance: with ``n`` repetitions a count above ``bound(n)`` (the 99.9% quantile of Binomial(n, 5%))
would occur with probability below 0.1% if the true rate were 5%; the simulations are seeded, so the tests are
deterministic.

``test_power_*``: the same criteria pass on a simulated result where the effect is there.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).parent))

from memlib.claims import (CONTRADICTED, HOLDS, NOT_REPRODUCED, NOT_SUPPORTED, NOT_TESTABLE, PARTLY, REPRODUCED,
                           SUPPORTED)

RATE = 0.05
FOR_CLAIM = (REPRODUCED, PARTLY, SUPPORTED)
AGAINST = (NOT_REPRODUCED, NOT_SUPPORTED, CONTRADICTED)


def bound(n: int) -> int:
    """The largest count of false verdicts in ``n`` repetitions compatible with a rate of at most 5%: P(count >
    bound) < 0.1% at exactly 5%."""
    return int(binom.ppf(0.999, n, RATE))


def assert_rates(statuses, against=AGAINST, for_claim=FOR_CLAIM):
    n = len(statuses)
    s = pd.Series(statuses)
    assert not (s == NOT_TESTABLE).any(), "a precondition failed: the simulation must test the criteria"
    a, f = int(s.isin(against).sum()), int(s.isin(for_claim).sum())
    assert a <= bound(n), f"{a} of {n} verdicts against the claim (bound {bound(n)}): {s.value_counts().to_dict()}"
    assert f <= bound(n), f"{f} of {n} verdicts for the claim (bound {bound(n)}): {s.value_counts().to_dict()}"
    return a, f


# ------------------------------------------------------------------------------------------ the rule itself

def test_error_rate_family_rule_bonferroni_over_four_criteria():
    """The rule alone, 1,000 repetitions of four essential criteria on 3 seeds each, every true mean at its
    threshold: with plain 95% intervals "not reproduced" (any of four fails) is about 1 − 0.975⁴ = 9.6%; with the
    failing side decided on the 1 − 5%/4 interval it is at most 2.5%.  "Reproduced" (all four hold) ~ 0."""
    from memlib.claims import combine, criterion
    from memlib.measure import t_interval

    rng = np.random.default_rng(0)
    n = 1000
    draws = rng.standard_normal((n, 4, 3))
    statuses = [combine([criterion(str(i), t_interval(d[i]), 0.0, essential=True) for i in range(4)])
                for d in draws]
    a, f = assert_rates(statuses)
    assert a / n <= 0.025 + 3 * np.sqrt(0.025 * 0.975 / n)
    # the same draws, each criterion decided alone: the union is about four times one tail
    single = np.mean([any(t_interval(x).high <= 0 for x in d) for d in draws])
    assert 0.07 < single < 0.125


# ------------------------------------------------------------------------------------------ claim 1

def _claim1(rng, cosine_mean=0.0):
    from test_gradient_similarity_experiment import _curve, _result

    return _result([_curve(6, 10), _curve(5, 11), _curve(7, 12)], lambda s, e, l: rng.normal(cosine_mean, 0.3))


def test_error_rate_gradient_similarity_cosines_without_sign():
    """Claim 1: cosines with no sign preference (share of negative cells 50% = the threshold); memorized seeds."""
    from memlib.claims import gradient_similarity as claim

    rng = np.random.default_rng(10)
    assert_rates([claim.check(_claim1(rng)).status for _ in range(60)])


def test_power_gradient_similarity_negative_cosines():
    from memlib.claims import gradient_similarity as claim

    rng = np.random.default_rng(11)
    for _ in range(5):
        v = claim.check(_claim1(rng, cosine_mean=-0.3))
        assert v.criteria[1].outcome == HOLDS and v.status in (REPRODUCED, PARTLY), v._repr_markdown_()


# ------------------------------------------------------------------------------------------ claim 2

def _claim2(seed, clean=0.7, noisy=0.2, untied_gap=0.4):
    """Example-tied dropout, memorization dropped: clean ``clean``, mislabeled ``noisy`` (at the thresholds by
    default: gap 50 points, mislabeled 20%), and the untied control's gap ``untied_gap`` (by default 10 points
    below example-tied dropout's at the thresholds: the matched null at its threshold too); no clean example
    forgotten (the atypicality criteria are supporting and stay undecided)."""
    from test_dropout_comparison import _fake_result

    r = _fake_result(etd_noisy=noisy, rng_seed=seed, untied_clean=0.8, untied_noisy=0.8 - untied_gap)
    acc = r.tables["accuracy"]
    rows = (acc.method == "example_tied") & (acc["mode"] == "drop")
    rng = np.random.default_rng(seed + 10_000)
    acc.loc[rows, "train_clean_acc"] = clean + 0.02 * rng.standard_normal(int(rows.sum()))
    r.tables["examples"] = r.tables["examples"].assign(forgotten=False)
    return r


def test_error_rate_dropout_comparison_at_the_thresholds():
    from memlib.claims import dropout_comparison as claim

    assert_rates([claim.check(_claim2(i)).status for i in range(100)])


def test_power_dropout_comparison_memorization_dropped():
    from memlib.claims import dropout_comparison as claim

    for i in range(5):
        v = claim.check(_claim2(i, clean=0.9, noisy=0.03, untied_gap=0.1))
        assert all(c.outcome == HOLDS for c in v.criteria if c.essential), v._repr_markdown_()


# ------------------------------------------------------------------------------------------ claim 3

def _claim3(rng, effect=0.0):
    """Two datasets, 5 seeds x 9 windows: accuracy 0.8 + noise, plus ``effect`` in the paper's best third."""
    from test_outliers import _curve, _r

    bump = {"fashion-mnist": [0, 0, 0, effect, effect, effect, 0, 0, 0], "mnist5k": [effect] * 3 + [0] * 6}
    return _r(pd.concat([_curve(ds, (0.8 + np.array(bump[ds]) + 0.01 * rng.standard_normal((5, 9))).tolist())
                         for ds in ("fashion-mnist", "mnist5k")]))


def test_error_rate_outlier_percentiles_flat_curve():
    """Claim 3: a flat curve (every difference between thirds 0 = the threshold); four comparisons."""
    from memlib.claims import outlier_percentiles as claim

    rng = np.random.default_rng(30)
    assert_rates([claim.check(_claim3(rng)).status for _ in range(80)])


def test_power_outlier_percentiles_best_third():
    from memlib.claims import outlier_percentiles as claim

    rng = np.random.default_rng(31)
    for _ in range(5):
        assert claim.check(_claim3(rng, effect=0.03)).status == REPRODUCED


# ------------------------------------------------------------------------------------------ claim 4

C4_AT = dict(true_peak=0.40, mem_at_peak=0.20, final_mem=0.50, elr_ratio=0.50)  # the essential thresholds
C4_CLEAR = dict(true_peak=0.60, mem_at_peak=0.05, final_mem=0.90, elr_ratio=0.10)  # each clearly on the claimed side


def _claim4(rng, true_peak=0.40, mem_at_peak=0.20, final_mem=0.50, elr_ratio=0.50, test_drop=0.02, true_gain=0.10,
            test_gain=0.01, settling=np.log(1.25), grad_ratio=1.2, rewind=0.005, sd=0.03, eval_sd=0.01):
    """Claim 4 with every deciding quantity at its threshold by default (essential: ``true_peak``, ``mem_at_peak``,
    ``final_mem``, ``elr_ratio``; supporting: ``test_drop``, ELR's ``true_gain``, ``test_gain`` and its smaller drop
    (0), the early phase's ``settling``, ``grad_ratio`` and ``rewind`` gain), each with seed noise ``sd`` and, on the
    curves, evaluation noise ``eval_sd``.

    The least favourable configuration for the estimators: cross-entropy's true-class fraction sits on a flat
    plateau at ``true_peak`` over epochs 1-6 (evaluations 1-6 of 8), ``mem_at_peak`` memorized over the same epochs,
    so that whichever evaluation the peak is chosen on, the evaluation it is read at has the threshold as its
    expectation (a maximum over the plateau would lean for the claim); the last two evaluations fall away (30%
    true class at epoch 7, never chosen) to ``final_mem`` memorized at epoch 8.  Test accuracy is flat at 72% over
    the plateau and ends ``test_drop`` lower; ELR's curve is cross-entropy's level plus ``test_gain``, with the same
    drop in expectation.  The early phase's distance per iteration is a 1/√t decay (its late change clearly
    negative, so the estimator's absolute value adds no bias) raised by exp(``settling``) over the window's first
    tenth: ``settling`` is the expectation of the deciding number."""
    from test_early_learning import _fake_result, _history, _phase
    from memlib.experiments.early_learning import CE, CLEAN, ELR
    from memlib.experiments.base import Result

    c = lambda v: float(np.clip(v, 0.0, 1.0))  # noqa: E731
    e = lambda s=sd: s * rng.standard_normal()  # noqa: E731
    ev = lambda n: list(eval_sd * rng.standard_normal(n))  # noqa: E731

    def phase(seed, arm):
        noise = np.exp(0.05 * rng.standard_normal(41))
        speed = lambda t: t ** -0.5 * (np.exp(settling) if t <= 4 else 1.0) * noise[t]  # noqa: E731
        grad = lambda t: (grad_ratio if t <= 4 else 1.0) * (1 + 0.05 * rng.standard_normal())  # noqa: E731
        return _phase(seed, arm, np.sqrt, lambda t: t ** 2.0, np.sqrt, lambda t: t ** 1.5, grad,
                      step=lambda t: 0.1 * speed(t))

    r = _fake_result(rewind_gain=tuple(rewind + rng.normal(0, 0.01, 3)), phase=phase)
    rows, clean = [], [0.5] + [0.95] * 8
    for s in range(3):
        p, m, f = true_peak + e(), mem_at_peak + e(), c(final_mem + e())
        ce_true_end = 0.30 + e()
        ce_end, elr_end = 0.70 + e(), 0.70 + test_gain + e()
        ce_top, elr_top = ce_end + test_drop + e(0.01), elr_end + test_drop + e(0.01)
        rows += _history(CE, s, [0.1] + [c(p + x) for x in ev(6)] + [0.30, c(ce_true_end)],
                         [0.1] + [c(m + x) for x in ev(6)] + [0.35, f],
                         [0.5] + [ce_top + x for x in ev(6)] + [ce_end, ce_end], clean=clean)
        rows += _history(ELR, s, [0.1] + [0.5] * 7 + [c(ce_true_end + true_gain + e())],
                         [0.1] + [0.05] * 7 + [c(f * (elr_ratio + e()))],
                         [0.5] + [elr_top + x for x in ev(6)] + [elr_end, elr_end], clean=clean)
        rows += _history(CLEAN, s, [float("nan")] * 9, [float("nan")] * 9, [0.1] + [0.9] * 8, clean=clean)
    return Result({**r.tables, "history": pd.DataFrame(rows)}, r.scalars)


def test_error_rate_early_learning_at_the_thresholds():
    """Claim 4 (the chapter's verdict), against the claim: every deciding quantity at its threshold (the four
    essential ones and the supporting ones), 400 runs: "not reproduced" at most 5% (the rule: 2.5%)."""
    from memlib.claims import early_learning as claim

    rng = np.random.default_rng(40)
    statuses = [claim.check(_claim4(rng)).status for _ in range(400)]
    a, _ = assert_rates(statuses)


@pytest.mark.parametrize("at", list(C4_AT))
def test_error_rate_early_learning_for_the_claim(at):
    """Claim 4, for the claim: the least favourable configuration is one essential quantity at its threshold and the
    other three clearly on the claimed side (all four at their thresholds would have to hold together, which is
    rarer), 200 runs each: "reproduced" or "partly reproduced" at most 5% (the rule: 2.5%)."""
    from memlib.claims import early_learning as claim

    rng = np.random.default_rng(42 + list(C4_AT).index(at))
    kw = {**C4_CLEAR, at: C4_AT[at]}
    assert_rates([claim.check(_claim4(rng, **kw)).status for _ in range(200)])


def test_power_early_learning_and_elr():
    from memlib.claims import early_learning as claim

    rng = np.random.default_rng(41)
    for _ in range(5):
        v = claim.check(_claim4(rng, **C4_CLEAR))
        assert all(c.outcome == HOLDS for c in v.criteria if c.essential), v._repr_markdown_()


# ------------------------------------------------------------------------------------------ claim 5

def test_error_rate_lth_no_effect():
    """Claim 5 with no effect at all (ratios 1, gaps 0): "contradicted" and "supported" each at most 5%."""
    from memlib.claims import lth_vs_dropout as claim
    from test_lth_vs_dropout import made_result

    rng = np.random.default_rng(50)
    assert_rates([claim.check(made_result(rng, noise=0.05)).status for _ in range(40)], against=(CONTRADICTED,))


def test_error_rate_lth_at_the_margins():
    """Claim 5 with every step exactly at its margin: "not supported" (or contradicted) and "supported" each at
    most 5%."""
    from memlib.claims import lth_vs_dropout as claim
    from test_lth_vs_dropout import made_result

    rng = np.random.default_rng(51)
    at = dict(moved_ratio=0.95, enrichment=1.05, etd_gap=0.02, ord_gap=0.02, clean_gap=0.02, noise=0.03)
    assert_rates([claim.check(made_result(rng, **at)).status for _ in range(40)])


def test_power_lth_clear_effect():
    from memlib.claims import lth_vs_dropout as claim
    from test_lth_vs_dropout import CLEAR, made_result

    rng = np.random.default_rng(52)
    for _ in range(3):
        assert claim.check(made_result(rng, **CLEAR)).status == SUPPORTED
