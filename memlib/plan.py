"""Each claim's analysis plan, fixed before the data it governs (the book's appendix "Analysis plans").

A plan (:class:`AnalysisPlan`, one per claim in :data:`PLANS`) declares, in one place:

* every **criterion** (its key in the claim's ``check``, threshold, direction, essential or supporting, the sub-claim
  it decides, the paper's value where the paper gives one, else a smallest effect of interest) and every
  **precondition** (threshold, direction, the sub-claims it guards);
* the **calibration** grid, its calibration seeds and the rule that picks the quick setting (:mod:`memlib.calibration`
  reads preconditions only, never a criterion);
* the **seed rule**: how many seeds the verdict starts with (from the calibration's measured seed spread, see
  :func:`planned_seeds`), how many it adds per stage while an essential criterion or a precondition is undecided, and
  how many looks at most; the criteria are decided on intervals widened for the looks (Bonferroni over looks,
  :func:`memlib.claims.settle`).

The claims' ``check`` functions make their criteria by key from the plan (:class:`memlib.claims.Planned`: threshold,
direction, essential flag, sub-claim and guards are read here, never repeated there), and every verdict is checked
against its plan when it is made (:meth:`AnalysisPlan.validate`): a criterion whose threshold, direction, essential
flag or sub-claim differs from the plan, that the plan does not declare, or that is missing, is an error.  A plan's
:meth:`~AnalysisPlan.digest` is shown on every verdict box and summary row.  Changing a plan is an amendment: a new
dated version with its reason appended to ``plans/<claim>.json`` (``python -m memlib plan NN --amend "reason"``), and
``tests/test_plan.py`` fails while the declared plan differs from the log's last version.  Nothing in a plan may be chosen by looking at a verdict
or at a deciding quantity of any seed.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .jsonio import read_json, write_json_atomic

LOG_DIR = Path(__file__).resolve().parent.parent / "plans"
ALPHA = 0.05  # two-sided; each side of a criterion is decided at ALPHA / 2 (divided further for families and looks)


@dataclass(frozen=True)
class Spec:
    """One criterion or precondition as planned.  ``paper``: the paper's value of the quantity (in the criterion's
    unit); ``effect``: where the paper gives none, the smallest distance from the threshold worth detecting."""

    key: str
    threshold: float
    direction: str = "above"
    essential: bool = False
    subclaim: str = ""
    precondition: bool = False
    guards: tuple[str, ...] = ()
    paper: float | None = None
    effect: float | None = None
    over: str = "seeds"  # what its interval is over: "seeds" (planned by the seed rule) or "examples"

    @property
    def distance(self) -> float | None:
        """The planned distance between the threshold and the effect the paper reports (or the smallest effect)."""
        if self.paper is not None:
            return abs(self.paper - self.threshold)
        return self.effect


def criterion(key, threshold, direction="above", *, essential=False, subclaim="", paper=None, effect=None,
              over="seeds") -> Spec:
    return Spec(key, float(threshold), direction, essential, subclaim, paper=paper, effect=effect, over=over)


def precondition(key, threshold, direction="above", *, guards=(), over="seeds") -> Spec:
    return Spec(key, float(threshold), direction, precondition=True, guards=tuple(guards), over=over)


@dataclass(frozen=True)
class SeedRule:
    """Seeds of a verdict: at least ``floor`` to start (more where the calibration's spread asks), ``stage`` more at
    each further look while undecided, ``looks`` looks at most (so at most initial + (looks − 1) × stage seeds);
    ``max_initial`` is what the book's budget allows to start with."""

    floor: int = 3
    stage: int = 2
    looks: int = 2
    max_initial: int = 4

    def cap(self, initial: int) -> int:
        return initial + (self.looks - 1) * self.stage


def grid_settings(grid: dict[str, tuple]) -> list[dict[str, Any]]:
    """Every combination of a grid's values (knob -> values), the first knob varying slowest."""
    import itertools

    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


@dataclass(frozen=True)
class Calibration:
    """What a claim's calibration sweeps: ``grid`` (knob -> values, on top of the ``base`` profile), how many
    calibration seeds, the two knobs the appendix draws (``axes``: x, y) and ``why`` (in words)."""

    grid: dict[str, tuple]
    seeds: int = 3
    base: str = "quick"
    axes: tuple[str, str] | None = None
    why: str = ""

    def settings(self) -> list[dict[str, Any]]:
        return grid_settings(self.grid)


@dataclass(frozen=True)
class MapGrid:
    """Where a claim's verdict is mapped (the appendix "Where each claim holds", :mod:`memlib.verdict_map`): every
    combination of ``grid`` (knob -> values, on top of the ``base`` profile), each cell a full verdict by this plan;
    ``shows`` is the criterion whose estimate and interval each cell prints, ``paper`` the paper's setting of the
    grid's knobs (named beside the map, not part of it)."""

    grid: dict[str, tuple]
    shows: str
    base: str = "quick"
    paper: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> list[dict[str, Any]]:
        return grid_settings(self.grid)


@dataclass(frozen=True)
class AnalysisPlan:
    claim: str  # the experiment's NAME
    kind: str  # "paper" or "hypothesis"
    specs: tuple[Spec, ...]
    calibration: Calibration
    seeds: SeedRule = field(default_factory=SeedRule)
    notes: str = ""
    map: MapGrid | None = None

    # ------------------------------------------------------------------ reading
    def canonical(self) -> dict[str, Any]:
        d = asdict(self)
        d["calibration"]["grid"] = {k: list(v) for k, v in self.calibration.grid.items()}
        if self.map is None:
            del d["map"]  # a plan without a map reads (and digests) as before maps existed
        else:
            d["map"]["grid"] = {k: list(v) for k, v in self.map.grid.items()}
        return json.loads(json.dumps(d, sort_keys=True))

    def digest(self) -> str:
        """The first 12 hex digits of the SHA-256 of the plan's canonical JSON."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def spec(self, key: str) -> Spec:
        for s in self.specs:
            if s.key == key:
                return s
        raise KeyError(f"the analysis plan of {self.claim} declares no criterion {key!r}")

    @property
    def criteria(self) -> list[Spec]:
        return [s for s in self.specs if not s.precondition]

    @property
    def preconditions(self) -> list[Spec]:
        return [s for s in self.specs if s.precondition]

    def looks(self, cfg=None) -> int:
        """The looks a run of ``cfg`` plans: the rule's looks when seeds are added in stages, else 1."""
        return self.seeds.looks if cfg is None or sequential(cfg) else 1

    def validate(self, criteria, complete: bool = False) -> None:
        """Raise ``ValueError`` unless every criterion in ``criteria`` (:class:`memlib.claims.Criterion`) has a key this
        plan declares, with the same threshold, direction, essential flag, sub-claim and guards; with ``complete``,
        every declared key must also be present (keys of a dataset a run does not include excepted: ``optional``)."""
        seen = set()
        for c in criteria:
            if not c.key:
                raise ValueError(f"{self.claim}: criterion {c.text[:60]!r} has no key in the analysis plan")
            s = self.spec(c.key)
            seen.add(c.key)
            got = (c.threshold, c.direction, bool(c.precondition), c.subclaim if not c.precondition else "",
                   tuple(c.guards), bool(c.essential) if not c.precondition else False)
            want = (s.threshold, s.direction, s.precondition, s.subclaim, s.guards, s.essential)
            if c.threshold is None or not math.isclose(got[0], want[0], abs_tol=1e-12) or got[1:] != want[1:]:
                raise ValueError(f"{self.claim}: criterion {c.key!r} differs from its analysis plan: "
                                 f"(threshold, direction, precondition, subclaim, guards, essential) = {got}, planned "
                                 f"{want}")
        if complete:
            missing = [s.key for s in self.specs if s.key not in seen and s.key not in OPTIONAL.get(self.claim, ())]
            if missing:
                raise ValueError(f"{self.claim}: the verdict lacks the planned criteria {missing}")


def sequential(cfg) -> bool:
    """Whether a run adds seeds in planned stages (the ``seed_stages`` parameter; off at the smoke profile)."""
    try:
        return bool(cfg["seed_stages"])
    except (KeyError, TypeError):
        return False


# ------------------------------------------------------------------------------------------------ seed planning

def half_width(sd: float, n: int, level: float) -> float:
    """Predicted half-width of a t-interval of the mean of ``n`` seeds with spread ``sd`` at ``level``."""
    from scipy import stats

    if n < 2 or not math.isfinite(sd):
        return math.inf
    return float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)


def seeds_to_decide(interval, threshold: float, level: float, limit: int = 200) -> int | None:
    """The seed count at which a t-interval over seeds with ``interval``'s spread and estimate would be predicted to
    clear ``threshold`` at ``level`` (None when the interval is not a t-interval over seeds, the estimate sits on
    the threshold, or more than ``limit`` seeds would be needed)."""
    from scipy import stats

    if getattr(interval, "kind", "") != "t" or interval.n < 2 or not math.isfinite(interval.low + interval.high):
        return None
    est = interval.estimate
    half = max(est - interval.low, interval.high - est)
    sd = half * math.sqrt(interval.n) / float(stats.t.ppf(0.5 + interval.level / 2, interval.n - 1))
    gap = abs(est - threshold)
    if gap == 0 or sd == 0:
        return None
    return next((k for k in range(interval.n, limit + 1) if half_width(sd, k, level) < gap), None)


def decision_level(rule: SeedRule) -> float:
    """The interval level a criterion is decided on for the claim, with the planned looks: 1 − 5%/looks."""
    return 1 - ALPHA / max(1, rule.looks)


def planned_seeds(plan: AnalysisPlan, seed_sd: dict[str, float], limit: int = 50) -> dict[str, Any]:
    """The seed rule applied to measured seed spreads (``seed_sd``: key -> SD across calibration seeds): for each
    essential criterion over seeds, the smallest ``n`` whose predicted half-width at the decision level is at most
    half the planned distance (threshold to paper's value, or the smallest effect); the start is the largest of
    those, at least ``floor``, at most ``max_initial`` (the budget; what it cannot buy is reported)."""
    rule, level = plan.seeds, decision_level(plan.seeds)
    per: dict[str, Any] = {}
    for s in plan.criteria:
        if not (s.essential or plan.kind == "hypothesis") or s.over != "seeds" or s.key not in seed_sd:
            continue
        sd, target = seed_sd[s.key], (s.distance or 0.0) / 2
        n = next((k for k in range(2, limit + 1) if half_width(sd, k, level) <= target), None) if target > 0 else None
        per[s.key] = {"seed_sd": sd, "target_half_width": target, "seeds_needed": n}
    needed = [v["seeds_needed"] for v in per.values()]
    want = max([rule.floor] + [n if n is not None else limit for n in needed])
    start = min(want, rule.max_initial)
    for v in per.values():
        v["predicted_half_width"] = half_width(v["seed_sd"], start, level)
    return {"level": level, "wanted": want, "initial": start, "cap": rule.cap(start), "per_criterion": per,
            "budget_short": want > rule.max_initial}


# ------------------------------------------------------------------------------------------------ the log

def log_path(plan: AnalysisPlan) -> Path:
    from .experiments import REGISTRY

    nb = next(k for k, v in REGISTRY.items() if v == plan.claim)
    return LOG_DIR / f"{nb}.json"


def versions(plan: AnalysisPlan) -> list[dict[str, Any]]:
    """The plan's amendment log: ``[{version, date, reason, digest, plan}, ...]``, oldest first."""
    p = log_path(plan)
    return read_json(p) if p.exists() else []


def amend(plan: AnalysisPlan, reason: str) -> dict[str, Any]:
    """Append the declared plan to its log as a new dated version (refused when unchanged or without a reason)."""
    if not reason.strip():
        raise ValueError("an amendment needs its reason")
    log = versions(plan)
    if log and log[-1]["digest"] == plan.digest():
        raise ValueError(f"the plan of {plan.claim} is unchanged since version {log[-1]['version']}")
    entry = {"version": len(log) + 1, "date": time.strftime("%Y-%m-%d", time.gmtime()), "reason": reason.strip(),
             "digest": plan.digest(), "plan": plan.canonical()}
    path = log_path(plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, log + [entry], indent=1)
    return entry


# ------------------------------------------------------------------------------------------------ the plans
# Keys the run may lack (a criterion of a dataset the run does not include).
OPTIONAL: dict[str, tuple[str, ...]] = {}

PLANS: dict[str, AnalysisPlan] = {}


def register(plan: AnalysisPlan) -> AnalysisPlan:
    if plan.map is not None:
        plan.spec(plan.map.shows)  # a map prints a declared criterion (KeyError otherwise)
    PLANS[plan.claim] = plan
    return plan


# ------------------------------------------------------------------------------------------------ the appendix

def plan_markdown(plan: AnalysisPlan, title: str) -> str:
    """The appendix's text for one plan: digest, versions with their reasons, criteria, preconditions, calibration
    grid and seed rule."""
    log = versions(plan)
    state = ("" if log and log[-1]["digest"] == plan.digest() else
             " **The declared plan is not in its log** (a test fails until it is amended).")
    sign = {"above": ">", "below": "<"}
    rows = ["| key | sub-claim | criterion | role | planned distance |", "|---|---|---|---|---|"]
    for s in plan.criteria:
        role = "essential" if s.essential else ("step" if plan.kind == "hypothesis" else "supporting")
        dist = (f"paper's value {s.paper:g}" if s.paper is not None else
                f"smallest effect {s.effect:g}" if s.effect is not None else "—")
        rows.append(f"| `{s.key}` | {s.subclaim} | {sign[s.direction]} {s.threshold:g} (over {s.over}) | {role} | "
                    f"{dist} |")
    pre = "; ".join(f"`{s.key}` {sign[s.direction]} {s.threshold:g}, guards "
                    f"{', '.join(s.guards) if s.guards else 'every sub-claim'}" for s in plan.preconditions)
    cal = plan.calibration
    grid = "; ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in cal.grid.items())
    r = plan.seeds
    m = plan.map
    mapped = ("" if m is None else " Verdict map (descriptive): every combination of "
              + " × ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in m.grid.items())
              + f" on the `{m.base}` profile, each cell decided by this plan, printing `{m.shows}`.")
    hist = "; ".join(f"version {e['version']} ({e['date']}, `{e['digest']}`): {e['reason']}" for e in log) or "none"
    return (f"### {title}\n\nDigest `{plan.digest()}` ({plan.kind}).{state} Versions: {hist}.\n\n"
            + "\n".join(rows) + f"\n\nPreconditions: {pre or 'none'}. Calibration: {grid}, on {cal.seeds} "
            f"calibration seeds (the `{cal.base}` profile otherwise). Seeds: at least {r.floor} to start (more where "
            f"the calibration's seed spread asks, at most {r.max_initial} within the book's budget), {r.stage} more "
            f"at each further look while an essential criterion or a precondition is undecided, {r.looks} looks at "
            f"most; each look decided on the {decision_level(r):.1%} interval for the claim." + mapped
            + (f" {plan.notes[0].upper() + plan.notes[1:]}." if plan.notes else ""))
