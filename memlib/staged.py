"""A verdict with the seeds its analysis plan asks for: run the planned seeds, and while an essential criterion (every
step of a hypothesis) or a precondition is undecided, add the plan's stage of seeds, up to its last look.

Each look is decided on intervals widened for the planned looks (:func:`memlib.claims.settle`), so a false verdict
stays within its error rate over the whole sequence (``tools/error_rates.py`` simulates it).  The store keeps every
seed as its own part, so a later look trains only the seeds it adds, and a rebuild trains nothing.  Where the
configuration turns stages off (``seed_stages=false``: the smoke profile, or a run asking for exactly ``seeds``), it
runs ``seeds`` seeds once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .claims import UNDECIDED, Verdict, verdict_of
from .config import Config
from .experiments import get_experiment
from .plans import plan_of
from .result import Result
from .store import Store


@dataclass
class Stopping:
    """How the seeds of a verdict were decided: the seed count and undecided criteria at each look, and why it
    stopped (``decided``, ``last look`` or ``stages off``)."""

    looks: list[dict] = field(default_factory=list)
    planned_looks: int = 1
    reason: str = "stages off"

    @property
    def seeds(self) -> int:
        return self.looks[-1]["seeds"] if self.looks else 0

    def text(self) -> str:
        n = self.seeds
        if self.reason == "stages off":
            return f"{n} seed{'s' if n != 1 else ''} (a fixed count: seeds were not added in stages)"
        steps = " → ".join(str(x["seeds"]) for x in self.looks)
        why = ("every essential criterion and precondition was decided" if self.reason == "decided" else
               "the plan's last look was reached with " + ", ".join(self.looks[-1]["undecided"]) + " undecided")
        return (f"{n} seeds (look {len(self.looks)} of at most {self.planned_looks}: {steps}); stopped because {why}")


def undecided(v: Verdict) -> list[str]:
    """Keys of the criteria that more seeds could still decide: preconditions that do not hold yet are undecided
    (not failed), and essential criteria (every step of a hypothesis) that are undecided."""
    out = []
    for c in v.criteria:
        if c.precondition:
            if c.outcome == UNDECIDED:
                out.append(c.key or c.text[:40])
        elif c.outcome == UNDECIDED and (c.essential or v.kind == "hypothesis"):
            out.append(c.key or c.text[:40])
    return out


def decide(cfg: Config, store: Store | None = None, report=None) -> tuple[Config, Result, Verdict]:
    """The configuration that ran (its final ``seeds``), its result and its verdict (with ``v.stopping``)."""
    plan = plan_of(cfg.experiment)
    exp = get_experiment(cfg.experiment)
    looks = plan.looks(cfg)
    stop = Stopping(planned_looks=looks)
    n = cfg.seeds
    for look in range(1, looks + 1):
        run_cfg = cfg if n == cfg.seeds else cfg.replace(seeds=n)
        result = exp.run(run_cfg, store)
        v = verdict_of(result, run_cfg)
        open_keys = undecided(v)
        stop.looks.append({"seeds": n, "status": v.status, "undecided": open_keys})
        if looks == 1:
            break
        if not open_keys:
            stop.reason = "decided"
            break
        if look == looks:
            stop.reason = "last look"
            break
        n += plan.seeds.stage
        if report is not None:
            report(f"look {look}: {', '.join(open_keys)} undecided with {run_cfg.seeds} seeds; adding "
                   f"{plan.seeds.stage} (look {look + 1} of {looks})")
    v.stopping = stop
    return run_cfg, result, v


