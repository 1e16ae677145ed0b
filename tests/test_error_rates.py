"""Error rates of the verdicts, by simulation through each claim's own ``check`` with the staged seeds of its analysis
plan (the simulations live in ``tools/error_rates.py``; ``python tools/error_rates.py --reps 2000`` prints them).

``test_error_rate_*``: for every claim and every least favourable configuration (every deciding quantity at its
threshold, preconditions holding: a verdict *against* the claim is false; for claim 5 also every step at no effect:
*contradicted* is false; one essential criterion, or step, at its threshold and the others clearly on the claimed
side, each in turn: a verdict *for* the claim is false), 2,000 staged verdicts, each at most 3.5% false (the rule
bounds both sides at 2.5%; with 2,000 repetitions a true 5% exceeds 3.5% with probability below 0.1%).  The
simulations are seeded, so the tests are deterministic.

``test_batched_*``: the simulation decides many repetitions with one ``check`` call (each repetition's seeds one block
of the result's seeds; every criterion's interval recomputed per block); these tests check that it gives exactly the
statuses, look by look, of ``check`` on each repetition's own result.

``test_power_*``: at the papers' effect sizes (the plans' ``paper`` values, else their smallest effect of interest) with
the seed spreads of the calibration records where present, the staged verdict usually decides for the claim.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import error_rates as ER  # noqa: E402

REPS = 2000
CASES = [(name, i, c.label) for name in ER.CLAIMS for i, c in enumerate(ER.configurations(ER.SIMS[name]()))]


# ------------------------------------------------------------------------------------------ the rule itself

def test_family_rule_bonferroni_over_four_criteria():
    """The rule alone, 1,000 repetitions of four essential criteria on 3 seeds each, every true mean at its
    threshold: with plain 95% intervals "not reproduced" (any of four fails) is about 1 − 0.975⁴ = 9.6%; with the
    failing side decided on the 1 − 5%/4 interval it is at most 2.5%.  "Reproduced" (all four hold) ~ 0."""
    from memlib.claims import combine, criterion
    from memlib.measure import t_interval

    rng = np.random.default_rng(0)
    n = 1000
    draws = rng.standard_normal((n, 4, 3))
    statuses = np.array([combine([criterion(str(i), t_interval(d[i]), 0.0, essential=True) for i in range(4)])
                         for d in draws])
    against = np.isin(statuses, ER.AGAINST).mean()
    assert against <= 0.025 + 3 * np.sqrt(0.025 * 0.975 / n)
    assert np.isin(statuses, ER.FOR_CLAIM).mean() <= 0.01
    # the same draws, each criterion decided alone: the union is about four times one tail
    single = np.mean([any(t_interval(x).high <= 0 for x in d) for d in draws])
    assert 0.07 < single < 0.125


def test_settling_again_for_more_looks_is_settling_once():
    """The simulation settles a verdict that ``check`` made for one look again for the plan's looks; that is the same
    as settling the raw criteria for those looks once (settling is monotone), for both sides and both kinds."""
    from memlib.claims import criterion, settle
    from memlib.measure import t_interval

    rng = np.random.default_rng(1)
    for kind in ("paper", "hypothesis"):
        for _ in range(300):
            crit = [criterion(str(i), t_interval(rng.normal(rng.normal(0, 1.5), 1, 4)), 0.0, essential=i < 3,
                              opposite=-0.5 if i % 2 else None) for i in range(5)]
            once = [c.outcome for c in settle(crit, kind, 3)]
            twice = [c.outcome for c in settle(settle(crit, kind, 1), kind, 3)]
            assert once == twice


# ------------------------------------------------------------------------------------------ batched == check

@pytest.mark.parametrize("name", ER.CLAIMS)
def test_batched_simulation_gives_checks_statuses(name):
    """Every configuration, 6 repetitions (claim 1, the slowest check: 3): the same status after the same looks
    whether each look is decided by ``check`` on the repetition's own result or in one batch."""
    sim = ER.SIMS[name]()
    reps = 3 if name == "gradient_similarity" else 6
    for i, config in enumerate(ER.configurations(sim)):
        same, n = ER.agreement(name, config, reps, seed=77 + i)
        assert same == n, f"{name}, {config.label}: {n - same} of {n} repetitions differ"


# ------------------------------------------------------------------------------------------ error rates

@pytest.mark.parametrize("name,index,label", CASES, ids=[f"{n}-{i}" for n, i, _ in CASES])
def test_error_rate(name, index, label):
    """2,000 staged verdicts in one least favourable configuration: false verdicts against and for the claim each at
    most 3.5%, and every precondition holding (the criteria are tested)."""
    config = ER.configurations(ER.SIMS[name]())[index]
    r = ER.simulate(name, config, REPS, seed=10_000 + 100 * ER.CLAIMS.index(name) + index)
    counts = r.statuses.value_counts().to_dict()
    assert r.not_testable == 0, f"{name}, {label}: a precondition did not hold: {counts}"
    if config.side in ("against", "contradicted"):
        assert r.against <= ER.TARGET, f"{name}, {label}: false against {r.against:.4f}: {counts}"
    assert r.for_claim <= ER.TARGET, f"{name}, {label}: false for {r.for_claim:.4f}: {counts}"


# ------------------------------------------------------------------------------------------ power

POWER = {"gradient_similarity": 0.8, "dropout_comparison": 0.8, "outlier_percentiles": 0.5, "early_learning": 0.8,
         "lth_vs_dropout": 0.5}


@pytest.mark.parametrize("name", ER.CLAIMS)
def test_power(name):
    """At the papers' effect sizes, with the calibration records' seed spreads where present: the staged verdict
    decides for the claim in most repetitions (the least each claim reaches is ``POWER``)."""
    sim = ER.SIMS[name]()
    reps = 60 if name == "gradient_similarity" else 200
    r = ER.simulate(name, ER.power_configuration(sim), reps, seed=20_000 + ER.CLAIMS.index(name))
    assert r.against <= 0.02, r.statuses.value_counts().to_dict()
    assert r.for_claim >= POWER[name], f"{name}: for the claim in {r.for_claim:.2f}: {r.statuses.value_counts()}"
