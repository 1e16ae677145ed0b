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

import pandas as pd

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
OUTCOME_MARK = {HOLDS: "✔", FAILS: "✘", CONTRADICTS: "✘✘", UNDECIDED: "?"}


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

    @property
    def met(self) -> bool:
        return self.outcome == HOLDS

    def line(self) -> str:
        """'<text> — <evidence>' (for a verdict line naming a failed precondition)."""
        return f"{self.text} — {self.evidence}"


def criterion(text: str, interval: Interval, threshold: float, direction: str = "above", *,
              essential: bool = False, opposite: float | None = None, paper: str = "", note: str = "") -> Criterion:
    """A criterion decided by :func:`decide`, its evidence written from the interval and threshold."""
    from ..measure import fmt

    out = decide(interval, threshold, direction, opposite)
    sign = ">" if direction == "above" else "<"
    ev = f"{interval.text()}; needs {sign} {fmt(threshold, interval.unit)}"
    if note:
        ev += f"; {note}"
    return Criterion(text, out, ev, essential, interval, threshold, paper, direction=direction, opposite=opposite)


def precondition(text: str, interval: Interval, threshold: float, direction: str = "above", *, why: str,
                 note: str = "", paper: str = "") -> Criterion:
    """A precondition (a manipulation check): decided like :func:`criterion`; unless it *holds*, the verdict is
    :data:`NOT_TESTABLE`.  ``why`` says why it is a property of the set-up and not the claim's own deciding
    quantity (nor implied by it)."""
    if not why:
        raise ValueError("a precondition needs its reason (why=...): why it is not the claim's deciding quantity")
    c = criterion(text, interval, threshold, direction, note=note, paper=paper)
    c.precondition, c.why = True, why
    return c


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


def settle(criteria: list[Criterion], kind: str = "paper") -> list[Criterion]:
    """The criteria with their outcomes against the claim decided for the family (see the module docstring).

    A criterion that *fails* or *contradicts* on its 95% interval, and is one of ``m > 1`` criteria that could do
    so, is decided again on the ``1 − 5%/m`` interval (:meth:`memlib.measure.Interval.at`): it keeps its outcome
    only if the wider interval still lies on that side, else it is *inconclusive* (or *fails* where it no longer
    contradicts).  Returns copies; the evidence names the wider interval.  Settling is monotone: a criterion
    already settled in a family at least as large keeps its outcome (claim 4's chapter re-combines its parts)."""
    fail_fam, con_fam = families(criteria, kind)
    fail_ids, con_ids = {id(c) for c in fail_fam}, {id(c) for c in con_fam}
    out = []
    for c in criteria:
        against = c.outcome in (FAILS, CONTRADICTS) and c.interval is not None and c.threshold is not None
        level = family_level(len(fail_fam))
        if against and id(c) in fail_ids and level > c.against_level:
            c = _decide_against(c, level, family_level(len(con_fam)) if id(c) in con_ids else None,
                                len(fail_fam))
        out.append(c)
    return out


def _decide_against(c: Criterion, level: float, con_level: float | None, m: int) -> Criterion:
    from ..measure import fmt

    wide = c.interval.at(level)
    outcome = decide(wide, c.threshold, c.direction)  # fails or inconclusive: a wider interval cannot hold
    if c.outcome == CONTRADICTS and con_level is not None and c.opposite is not None:
        if decide(c.interval.at(con_level), c.threshold, c.direction, c.opposite) == CONTRADICTS:
            outcome = CONTRADICTS
    note = (f"; against the claim decided on the {level:.2%} interval (1 − 5%/{m}: {m} criteria could decide "
            f"against it) [{fmt(wide.low, wide.unit)}, {fmt(wide.high, wide.unit)}]: {outcome}")
    evidence = c.evidence.split("; against the claim decided on")[0] + note
    return dataclasses.replace(c, outcome=outcome, evidence=evidence, against_level=level)


def combine(criteria: list[Criterion], kind: str = "paper") -> str:
    """One status from criteria (see the module docstring): :data:`NOT_TESTABLE` when a precondition does not
    hold, else the rule of ``kind`` over the other criteria, their outcomes against the claim settled for the
    family (:func:`settle`)."""
    _check_kind(kind)
    if failed_preconditions(criteria):
        return NOT_TESTABLE
    criteria = [c for c in settle(criteria, kind) if not c.precondition]
    if not criteria:
        return INCONCLUSIVE
    outs = [c.outcome for c in criteria]
    if kind == "hypothesis":
        if CONTRADICTS in outs:
            return CONTRADICTED
        if all(o == HOLDS for o in outs):
            return SUPPORTED
        if FAILS in outs:
            return NOT_SUPPORTED
        return INCONCLUSIVE
    ess = [c for c in criteria if c.essential] or criteria
    if any(c.outcome in (FAILS, CONTRADICTS) for c in ess):
        return NOT_REPRODUCED
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

    def __post_init__(self):
        # the criteria as the status was decided: outcomes against the claim settled for the family (combine)
        self.criteria = settle(self.criteria, self.kind)

    def criteria_frame(self) -> pd.DataFrame:
        return pd.DataFrame([("precondition: " * c.precondition + c.text, c.outcome, c.evidence)
                             for c in self.criteria], columns=["criterion", "outcome", "evidence"])

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

    def _repr_markdown_(self) -> str:
        lines = [f"**Verdict: {self.status}**" + (f" (at {self.scale.text()})" if self.scale else "") + ".",
                 "", self.summary, ""]
        for c in self.criteria:
            tag = " *(precondition)*" if c.precondition else (
                " *(essential)*" if c.essential and self.kind == "paper" else "")
            lines.append(f"- {OUTCOME_MARK[c.outcome]} **{c.outcome}**{tag}: {c.text} — {c.evidence}")
        return "\n".join(lines)


def get_claim(module: str):
    return importlib.import_module(f"{__name__}.{module}")
