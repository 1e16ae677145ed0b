"""The papers' reference numbers, and verdicts computed from measured results.

Each claim module defines ``REFERENCE`` (what the paper or talk reports, with citation) and
``check(result, cfg) -> Verdict``.  Statuses are computed from the run, never typed by hand.

How a verdict is decided (the one rule, explained once in the book's introduction):

1. Every quantitative criterion is decided on an **interval** (:mod:`memlib.measure`): over seeds, or over
   examples where the quantity is per example.  The rule is symmetric: a criterion **holds** when the whole
   interval clears its threshold on the claimed side, **fails** when the whole interval lies on the other side,
   and is **inconclusive** when the interval straddles the threshold.  One seed gives an unbounded interval, so
   it never decides anything.  A criterion may also name an *opposite* threshold (e.g. an effect of the wrong
   sign): an interval wholly beyond it **contradicts** the claim.
2. Criteria combine in one way per kind of claim:

   - the papers' claims (``kind="paper"``): *reproduced* when every criterion holds; *partly reproduced* when
     the essential criteria hold and another does not; *not reproduced* when an essential criterion fails;
     *inconclusive* otherwise (an essential criterion undecided, none failed);
   - the talk's own hypothesis (``kind="hypothesis"``): *supported* when every step holds; *contradicted* when a
     step is contradicted; *not supported* when a step fails; *inconclusive* otherwise.

   **Error rates.**  A criterion says *fails* (or *contradicts*) only on an interval wide enough for every
   criterion that could turn the verdict against the claim: with ``m`` of them (the essential criteria of a paper's
   claim; every step of a hypothesis for *not supported*, the steps with an opposite threshold for *contradicted*)
   the side against the claim is decided on the ``1 − 5%/m`` interval (Bonferroni, :func:`settle`), the side for it
   on the plain 95% one.  So when every deciding quantity sits exactly at its threshold (no effect, the least
   favourable case), a claim reads *not reproduced* / *not supported* / *contradicted* with probability at most
   2.5% (one tail, shared among the ``m`` criteria), and *reproduced* / *partly reproduced* / *supported* at most
   2.5% (one tail of one criterion that must hold).  ``tests/*::test_error_rate_*`` check both rates by
   simulation, per claim.  Supporting criteria of a paper's claim (not essential) cannot change the verdict word
   towards "not reproduced" and are decided on the plain 95% interval.

   Before any of that, the **preconditions** (manipulation checks, :func:`precondition`): properties of the set-up
   under which the comparison means something (e.g. "standard dropout fits the mislabeled examples" before asking
   whether example-tied dropout forgets them), decided on intervals like every criterion.  When one does not hold
   (fails *or* is undecided), the verdict is *not testable at this scale*, whatever the other criteria say: the
   run could not have shown the claim, so it neither confirms nor blames it.  A precondition is never the claim's
   own deciding quantity nor implied by it; each says why (``why``).
3. Every verdict carries its **scale** (profile, model, dataset and size, noise rate, seeds): a verdict at a
   reduced scale is evidence about that scale, not about the paper's.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
from dataclasses import dataclass, field
from typing import Any


from ..catalog import dataset_title, model_title
from ..measure import LEVEL, Interval, setting_text

# Verdict vocabulary ----------------------------------------------------------------------------------------
REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE = ("reproduced", "partly reproduced", "not reproduced",
                                                     "inconclusive")
SUPPORTED, NOT_SUPPORTED, CONTRADICTED = "supported", "not supported", "contradicted"
NOT_TESTABLE = "not testable at this scale"
PAPER_STATUSES = (REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)
HYPOTHESIS_STATUSES = (SUPPORTED, NOT_SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE)
STATUS_MEANING = {
    REPRODUCED: "every criterion holds: its interval clears the threshold",
    PARTLY: "the essential criteria hold, at least one other does not",
    NOT_REPRODUCED: "an essential criterion fails: its interval lies on the wrong side of the threshold",
    INCONCLUSIVE: "an essential criterion's interval straddles its threshold, and none fails",
    SUPPORTED: "every step of the hypothesis holds",
    NOT_SUPPORTED: "a step fails: its effect is clearly below the margin the hypothesis needs",
    CONTRADICTED: "a step is contradicted: its effect is clearly in the opposite direction",
    NOT_TESTABLE: "a precondition of the comparison does not hold in this run (it fails, or its interval straddles "
                  "its threshold), so the run could not have shown the claim: it neither confirms nor blames it",
}

# Criterion outcomes ----------------------------------------------------------------------------------------
HOLDS, FAILS, CONTRADICTS, UNDECIDED = "holds", "fails", "contradicts", "inconclusive"
UNTESTED = "not tested"  # a criterion of a sub-claim whose precondition does not hold
OUTCOME_MARK = {HOLDS: "✔", FAILS: "✘", CONTRADICTS: "✘✘", UNDECIDED: "?", UNTESTED: "–"}


def decide(interval: Interval, threshold: float, direction: str = "above", opposite: float | None = None) -> str:
    """The outcome of "the quantity is ``direction`` ``threshold``" for ``interval``.

    ``direction`` is ``"above"`` or ``"below"``.  Holds when the whole interval is strictly on the claimed side;
    fails when the whole interval is on the other side (touching the threshold counts as the other side);
    inconclusive otherwise (including an unbounded or empty interval).  With ``opposite``, an interval wholly
    beyond it (on the far side from the claim) *contradicts*.
    """
    if direction not in ("above", "below"):
        raise ValueError(f"direction must be 'above' or 'below', got {direction!r}")
    lo, hi = interval.low, interval.high
    if math.isnan(lo) or math.isnan(hi):
        return UNDECIDED
    if direction == "below":
        lo, hi, threshold = -hi, -lo, -threshold
        opposite = None if opposite is None else -opposite
    if lo > threshold:
        return HOLDS
    if hi <= threshold:
        if opposite is not None and hi < opposite:
            return CONTRADICTS
        return FAILS
    return UNDECIDED


@dataclass
class Criterion:
    """One criterion of a verdict: what must hold, its outcome, and the evidence (interval and threshold)."""

    text: str
    outcome: str
    evidence: str
    essential: bool = False
    interval: Interval | None = None
    threshold: float | None = None
    paper: str = ""
    precondition: bool = False
    why: str = ""  # a precondition's reason: why it is a property of the set-up, not the claim's deciding quantity
    direction: str = "above"
    opposite: float | None = None
    against_level: float = LEVEL  # the interval level its outcome against the claim was decided on (see settle)
    for_level: float = LEVEL  # the interval level its outcome for the claim was decided on (see settle: looks)
    key: str = ""  # its name in the claim's analysis plan (memlib.plan)
    subclaim: str = ""  # the sub-claim it decides (a precondition: empty)
    guards: tuple[str, ...] = ()  # a precondition's sub-claims (empty: every sub-claim of the verdict)

    @property
    def met(self) -> bool:
        return self.outcome == HOLDS

    def line(self) -> str:
        """'<text> — <evidence>' (for a verdict line naming a failed precondition)."""
        return f"{self.text} — {self.evidence}"


def criterion(text: str, interval: Interval, threshold: float, direction: str = "above", *,
              essential: bool = False, opposite: float | None = None, paper: str = "", note: str = "",
              key: str = "", subclaim: str = "") -> Criterion:
    """A criterion decided by :func:`decide`, its evidence written from the interval and threshold.  ``key`` is its
    name in the claim's analysis plan, ``subclaim`` the sub-claim it decides (see :func:`precondition`)."""
    from ..measure import fmt

    out = decide(interval, threshold, direction, opposite)
    sign = ">" if direction == "above" else "<"
    ev = f"{interval.text()}; needs {sign} {fmt(threshold, interval.unit)}"
    if note:
        ev += f"; {note}"
    return Criterion(text, out, ev, essential, interval, threshold, paper, direction=direction, opposite=opposite,
                     key=key, subclaim=subclaim)


def precondition(text: str, interval: Interval, threshold: float, direction: str = "above", *, why: str,
                 note: str = "", paper: str = "", key: str = "", guards: tuple[str, ...] = ()) -> Criterion:
    """A precondition (a manipulation check): decided like :func:`criterion`; unless it *holds*, the criteria of
    the sub-claims it ``guards`` (every criterion when empty) are *not tested*, and a verdict that needs them is
    :data:`NOT_TESTABLE`.  ``why`` says why it is a property of the set-up and not a deciding quantity of any
    sub-claim (nor implied by one)."""
    if not why:
        raise ValueError("a precondition needs its reason (why=...): why it is not the claim's deciding quantity")
    c = criterion(text, interval, threshold, direction, note=note, paper=paper, key=key)
    c.precondition, c.why, c.guards = True, why, tuple(guards)
    return c


class Planned:
    """A claim's criteria and preconditions made from its analysis plan (:mod:`memlib.plans`): each is named by its
    key, and its threshold, direction, essential flag, sub-claim and guards are read from the plan, so a check says
    only what it measures and how it words it."""

    def __init__(self, claim: str):
        self.claim = claim

    def spec(self, key: str):
        from ..plans import PLANS

        return PLANS[self.claim].spec(key)

    def threshold(self, key: str) -> float:
        return self.spec(key).threshold

    def criterion(self, key: str, text: str, interval: Interval, *, paper: str = "", note: str = "",
                  opposite: float | None = None) -> Criterion:
        s = self.spec(key)
        if s.precondition:
            raise ValueError(f"{self.claim}: {key!r} is a precondition in the analysis plan; make it with precondition")
        return criterion(text, interval, s.threshold, s.direction, essential=s.essential, opposite=opposite,
                         paper=paper, note=note, key=key, subclaim=s.subclaim)

    def precondition(self, key: str, text: str, interval: Interval, *, why: str, paper: str = "",
                     note: str = "") -> Criterion:
        s = self.spec(key)
        if not s.precondition:
            raise ValueError(f"{self.claim}: {key!r} is a criterion in the analysis plan; make it with criterion")
        return precondition(text, interval, s.threshold, s.direction, why=why, note=note, paper=paper, key=key,
                            guards=s.guards)


def failed_preconditions(criteria: list[Criterion]) -> list[Criterion]:
    """The preconditions among ``criteria`` that do not hold (failed or undecided)."""
    return [c for c in criteria if c.precondition and c.outcome != HOLDS]


def _check_kind(kind: str) -> None:
    if kind not in ("paper", "hypothesis"):
        raise ValueError(f"kind must be 'paper' or 'hypothesis', got {kind!r}")


def family_level(m: int) -> float:
    """The interval level on which one of ``m`` criteria is decided against the claim: 1 − 5%/m (Bonferroni)."""
    return 1 - (1 - LEVEL) / max(1, m)


def families(criteria: list[Criterion], kind: str = "paper") -> tuple[list[Criterion], list[Criterion]]:
    """The criteria that could turn the verdict against the claim by *failing*, and by being *contradicted*:
    a paper's essential criteria (all of them when none is marked) for both; a hypothesis' every step, and its
    steps with an opposite threshold.  Preconditions are in neither."""
    _check_kind(kind)
    tested = [c for c in criteria if not c.precondition]
    if kind == "paper":
        ess = [c for c in tested if c.essential] or tested
        return ess, ess
    return tested, [c for c in tested if c.opposite is not None]


def untested(criteria: list[Criterion]) -> list[Criterion]:
    """The criteria with those of a sub-claim whose precondition does not hold marked :data:`UNTESTED` (copies).
    A precondition without ``guards`` guards every criterion."""
    failed = failed_preconditions(criteria)
    if not failed:
        return list(criteria)
    everything = any(not c.guards for c in failed)
    guarded = {g for c in failed for g in c.guards}
    out = []
    for c in criteria:
        if not c.precondition and (everything or c.subclaim in guarded):
            why = "; ".join(p.text for p in failed if not p.guards or c.subclaim in p.guards)
            c = dataclasses.replace(c, outcome=UNTESTED,
                                    evidence=c.evidence + f"; not tested: its precondition does not hold ({why})")
        out.append(c)
    return out


def settle(criteria: list[Criterion], kind: str = "paper", looks: int = 1) -> list[Criterion]:
    """The criteria with their outcomes settled for the family and the looks (see the module docstring).

    A criterion of a sub-claim whose precondition does not hold is :data:`UNTESTED` (:func:`untested`).  A
    criterion that *fails* or *contradicts* on its 95% interval, and is one of ``m`` criteria that could do so, is
    decided again on the ``1 − 5%/(m·looks)`` interval (:meth:`memlib.measure.Interval.at`): it keeps its outcome
    only if the wider interval still lies on that side, else it is *inconclusive* (or *fails* where it no longer
    contradicts).  With ``looks > 1`` (seeds added in stages until decided, :mod:`memlib.plan`), a criterion that
    *holds* is decided again on the ``1 − 5%/looks`` interval, so that a false "holds" at any of the looks stays
    within 2.5% (Bonferroni over looks).  Returns copies; the evidence names the wider interval.  Settling is
    monotone: a criterion already settled at a level at least as wide keeps its outcome."""
    looks = max(1, int(looks))
    criteria = untested(criteria)
    fail_fam, con_fam = families(criteria, kind)
    fail_ids, con_ids = {id(c) for c in fail_fam}, {id(c) for c in con_fam}
    out = []
    for c in criteria:
        decidable = c.interval is not None and c.threshold is not None and not c.precondition
        against = c.outcome in (FAILS, CONTRADICTS) and decidable
        level = 1 - (1 - LEVEL) / (max(1, len(fail_fam)) * looks) if id(c) in fail_ids else family_level(looks)
        if against and level > c.against_level:
            con_level = (1 - (1 - LEVEL) / (max(1, len(con_fam)) * looks)) if id(c) in con_ids else None
            c = _decide_against(c, level, con_level, len(fail_fam) if id(c) in fail_ids else 1, looks)
        elif c.outcome == HOLDS and decidable and looks > 1 and family_level(looks) > c.for_level:
            c = _decide_for(c, family_level(looks), looks)
        out.append(c)
    return out


def _decide_for(c: Criterion, level: float, looks: int) -> Criterion:
    from ..measure import fmt

    wide = c.interval.at(level)
    outcome = decide(wide, c.threshold, c.direction)  # holds or inconclusive: a wider interval cannot fail
    note = (f"; for the claim decided on the {level:.2%} interval (1 − 5%/{looks}: {looks} planned looks) "
            f"[{fmt(wide.low, wide.unit)}, {fmt(wide.high, wide.unit)}]: {outcome}")
    return dataclasses.replace(c, outcome=outcome, evidence=c.evidence + note, for_level=level)


def _decide_against(c: Criterion, level: float, con_level: float | None, m: int, looks: int = 1) -> Criterion:
    from ..measure import fmt

    wide = c.interval.at(level)
    outcome = decide(wide, c.threshold, c.direction)  # fails or inconclusive: a wider interval cannot hold
    if c.outcome == CONTRADICTS and con_level is not None and c.opposite is not None:
        if decide(c.interval.at(con_level), c.threshold, c.direction, c.opposite) == CONTRADICTS:
            outcome = CONTRADICTS
    why = f"{m} criteria could decide against it" + (f", {looks} planned looks" if looks > 1 else "")
    note = (f"; against the claim decided on the {level:.2%} interval (1 − 5%/{m * looks}: {why}) "
            f"[{fmt(wide.low, wide.unit)}, {fmt(wide.high, wide.unit)}]: {outcome}")
    evidence = c.evidence.split("; against the claim decided on")[0] + note
    return dataclasses.replace(c, outcome=outcome, evidence=evidence, against_level=level)


def combine(criteria: list[Criterion], kind: str = "paper", looks: int = 1) -> str:
    """One status from criteria (see the module docstring), their outcomes settled (:func:`settle`): a criterion
    that decides against the claim decides the word; otherwise a needed criterion that was not tested (its
    precondition does not hold) makes it :data:`NOT_TESTABLE`; otherwise the rule of ``kind``."""
    _check_kind(kind)
    gated = bool(failed_preconditions(criteria))
    criteria = [c for c in settle(criteria, kind, looks) if not c.precondition]
    if not criteria:
        return NOT_TESTABLE if gated else INCONCLUSIVE
    outs = [c.outcome for c in criteria]
    if kind == "hypothesis":
        if CONTRADICTS in outs:
            return CONTRADICTED
        if FAILS in outs:
            return NOT_SUPPORTED
        if UNTESTED in outs:
            return NOT_TESTABLE
        if all(o == HOLDS for o in outs):
            return SUPPORTED
        return INCONCLUSIVE
    ess = [c for c in criteria if c.essential] or criteria
    if any(c.outcome in (FAILS, CONTRADICTS) for c in ess):
        return NOT_REPRODUCED
    if any(c.outcome == UNTESTED for c in ess):
        return NOT_TESTABLE
    if any(c.outcome == UNDECIDED for c in ess):
        return INCONCLUSIVE
    return REPRODUCED if all(o == HOLDS for o in outs) else PARTLY


# Scale -----------------------------------------------------------------------------------------------------


# Settings that say nothing about scale: where and how it ran, and which seeds (their number counts).
NOT_SCALE = frozenset({"seed", "device", "precision", "progress", "trainer", "executor"})


@dataclass(frozen=True)
class Scale:
    """At what scale a verdict holds: profile, model, data, noise, seeds; and how the resolved values differ from
    the ``paper`` profile's (``differences``) and how that profile differs from the papers (``deviations``)."""

    profile: str
    model: str
    dataset: str
    n_train: int
    noise_rate: float
    seeds: int
    width: int | None = None
    note: str = ""
    differences: tuple[str, ...] = ()
    deviations: tuple[str, ...] = ()

    @property
    def reduced(self) -> bool:
        """Decided from the values as well as the profile's name: ``--profile paper -p width=8`` is reduced."""
        return bool(self.differences) or self.profile != "paper"

    def model_text(self) -> str:
        m = model_title(self.model)
        return f"{m} (width {self.width})" if self.width else m

    def text(self) -> str:
        parts = [f"{self.profile} profile", self.model_text(),
                 f"{dataset_title(self.dataset)}, {self.n_train:,} training examples",
                 f"{self.noise_rate:.0%} label noise", f"{self.seeds} seed{'s' if self.seeds != 1 else ''}"]
        if self.note:
            parts.append(self.note)
        return " · ".join(parts)

    def differences_text(self) -> str:
        """'width 8 instead of 64; epochs 30 instead of 50' (empty at the paper profile's values)."""
        return "; ".join(self.differences)

    @classmethod
    def from_config(cls, cfg, n_train: int, seeds: int | None = None, note: str = "", **kw) -> "Scale":
        """The scale of a run of ``cfg``; ``kw`` gives what the configuration does not say directly (claim 3 has
        several datasets and clean labels: ``dataset=...``, ``noise_rate=0.0``)."""
        vals = dict(profile=cfg.profile, n_train=n_train, seeds=cfg.seeds if seeds is None else seeds, note=note,
                    **kw)
        for name in ("model", "width", "dataset", "noise_rate"):
            if name not in vals:
                vals[name] = cfg[name]
        vals["differences"], vals["deviations"] = paper_differences(cfg)
        return cls(**vals)


def paper_differences(cfg) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """How ``cfg``'s resolved values differ from its experiment's ``paper`` profile ("width 8 instead of 64"), and
    how that profile itself departs from the papers (the experiment's ``PAPER_DEVIATIONS``)."""
    from ..experiments import get_experiment, resolve

    exp = get_experiment(cfg.experiment)
    paper = resolve(cfg.experiment, "paper").values
    diffs = tuple(f"{k} {setting_text(v, k)} instead of {setting_text(paper.get(k), k)}"
                  for k, v in cfg.values.items() if k not in cfg.unhashed and k not in NOT_SCALE and paper.get(k) != v)
    return diffs, tuple(getattr(exp, "PAPER_DEVIATIONS", ()))


# Verdict ---------------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    claim: str
    status: str
    summary: str
    measured: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    criteria: list[Criterion] = field(default_factory=list)
    scale: Scale | None = None
    kind: str = "paper"
    looks: int = 1  # the planned looks of its seed stages (memlib.plan): outcomes are settled for them
    plan_digest: str = ""  # the digest of the analysis plan it was decided by (verdict_of)
    stopping: Any = None  # how its seeds were decided (memlib.staged.Stopping), when it ran in stages
    config: Any = None  # the configuration it was decided on (verdict_of)

    def __post_init__(self):
        # the criteria as the status was decided: outcomes settled for the family and the looks (combine)
        self.criteria = settle(self.criteria, self.kind, self.looks)

    @property
    def preconditions(self) -> list[Criterion]:
        return [c for c in self.criteria if c.precondition]

    @property
    def failed_preconditions(self) -> list[Criterion]:
        return failed_preconditions(self.criteria)

    def status_line(self) -> str:
        """The verdict word, and when it is :data:`NOT_TESTABLE` the precondition(s) that did not hold with their
        numbers: 'not testable at this scale: standard dropout fits ... — 7.3% [...]; needs > 90%'."""
        failed = self.failed_preconditions
        if self.status != NOT_TESTABLE or not failed:
            return self.status
        return f"{self.status}: " + "; ".join(f"{c.line()} ({c.outcome})" for c in failed)

    def deciding_criteria(self) -> list[Criterion]:
        """The criteria (at most three) that decided the word: the preconditions that do not hold (not testable), the
        essential criteria (every step of a hypothesis) against the claim, else the undecided ones, else those that
        hold; for *partly reproduced*, the supporting criteria that do not hold."""
        tested = [c for c in self.criteria if not c.precondition]
        needed = tested if self.kind == "hypothesis" else ([c for c in tested if c.essential] or tested)
        if self.status == NOT_TESTABLE:
            picks = self.failed_preconditions
        elif self.status in (NOT_REPRODUCED, NOT_SUPPORTED, CONTRADICTED):
            picks = [c for c in needed if c.outcome == CONTRADICTS] + [c for c in needed if c.outcome == FAILS]
        elif self.status == INCONCLUSIVE:
            picks = [c for c in needed if c.outcome == UNDECIDED]
        elif self.status == PARTLY:
            picks = [c for c in tested if c.outcome != HOLDS and not c.essential]
        else:
            picks = needed
        return picks[:3]

    def reason_lines(self) -> list[str]:
        """One line per deciding criterion: outcome, what it asks, the interval and the threshold."""
        from ..measure import fmt

        out = []
        for c in self.deciding_criteria():
            if c.interval is None or c.threshold is None:
                out.append(f"{OUTCOME_MARK[c.outcome]} {c.text}: {c.outcome}")
                continue
            # the interval the outcome was decided on: an outcome settled to inconclusive (see settle) shows the
            # wider interval that settled it, not the 95% one that lies beyond the threshold
            level = (c.for_level if c.outcome == HOLDS else c.against_level if c.outcome in (FAILS, CONTRADICTS)
                     else max(c.for_level, c.against_level))
            iv = c.interval.at(level) if level != c.interval.level and c.interval.n >= 2 else c.interval
            sign = ">" if c.direction == "above" else "<"
            text = iv.text()
            if iv.level != round(iv.level, 2):  # 1 − 5%/16 is 99.7%, not "100%"
                text = text.replace(f"({iv.level:.0%} ", f"({iv.level:.1%} ", 1)
            out.append(f"{OUTCOME_MARK[c.outcome]} {'precondition: ' * c.precondition}{c.text}: {text}; needs "
                       f"{sign} {fmt(c.threshold, c.interval.unit)} ({c.outcome})")
        return out

    def seeds_to_decide(self) -> int | None:
        """For an *inconclusive* verdict: the seed count at which every undecided essential criterion would be
        predicted to be decided at the observed spread and estimate (None when some cannot be predicted)."""
        from ..plan import ALPHA, seeds_to_decide

        if self.status != INCONCLUSIVE:
            return None
        needs = []
        fam = len([c for c in self.criteria if not c.precondition and (c.essential or self.kind == "hypothesis")])
        for c in self.deciding_criteria():
            above = (c.interval.estimate > c.threshold) == (c.direction == "above")
            level = 1 - ALPHA / self.looks if above else 1 - ALPHA / (max(1, fam) * self.looks)
            needs.append(seeds_to_decide(c.interval, c.threshold, level))
        return None if not needs or None in needs else max(needs)

    def _repr_markdown_(self) -> str:
        lines = [f"**Verdict: {self.status}**" + (f" (at {self.scale.text()})" if self.scale else "") + ".",
                 "", self.summary, ""]
        for c in self.criteria:
            tag = " *(precondition)*" if c.precondition else (
                " *(essential)*" if c.essential and self.kind == "paper" else "")
            lines.append(f"- {OUTCOME_MARK[c.outcome]} **{c.outcome}**{tag}: {c.text} — {c.evidence}")
        return "\n".join(lines)


def looks_of(cfg) -> int:
    """The looks a run of ``cfg`` plans (its analysis plan's seed stages; 1 without a configuration or stages)."""
    if cfg is None:
        return 1
    from ..plans import plan_of

    return plan_of(cfg.experiment).looks(cfg)


def verdict_of(result, cfg) -> Verdict:
    """The claim's verdict on ``result`` (its ``check``), checked against the claim's analysis plan (every criterion
    as planned, none missing; settled for the looks the plan gives ``cfg``) and stamped with the plan's digest."""
    from ..experiments import get_experiment
    from ..plans import plan_of

    v = get_claim(get_experiment(cfg.experiment).NAME).check(result, cfg)
    plan = plan_of(cfg.experiment)
    plan.validate(v.criteria, complete=True)
    if v.looks != plan.looks(cfg):  # a check deciding each look too narrowly would break the error rates
        raise ValueError(f"{plan.claim}: check settled its verdict for {v.looks} look(s), the plan gives "
                         f"{plan.looks(cfg)}: pass looks_of(cfg) to combine and Verdict")
    v.plan_digest, v.config = plan.digest(), cfg
    return v


def get_claim(module: str):
    return importlib.import_module(f"{__name__}.{module}")
