"""How the quick scale is chosen: a recorded calibration sweep per claim (the book's appendix "How the quick scale
was chosen").

A claim's experiment declares a :class:`Plan`: the knobs that set capacity and optimization length (width, training
set size, batch size, epochs, dropout probability, ...) and the values to try.  :func:`calibrate` runs every setting
on its own **calibration seeds** (``CAL_SEED`` + 0, 1, ...; the verdicts use seeds from the profile's ``seed``, 0, so
the two never overlap), one seed per run, and keeps only two things per run: the claim's **preconditions**
(``memlib.claims.<claim>.preconditions`` — never the deciding quantities) and the **cost** (seconds of computation
per seed, with the machine's load beside it).  A pre-registered rule (:data:`RULE`) picks the quick setting.

The record (settings tried, precondition values, cost, seeds, machine, date, commit, rule, pick) is a small JSON file
under ``calibration/`` that is committed with the project; the quick profile's values for the swept knobs must equal
the record's pick (``tests/test_calibration.py``), so no quick value changes without a new calibration.

    python -m memlib calibrate 02 --executor ray      # runs the sweep (store hits are free) and writes the record
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from .claims import HOLDS, get_claim
from .experiments import REGISTRY, get_experiment, resolve
from .specs import CalibrationPlan as Plan
from .store import PACKAGE_DIR, Store, _git_commit

CAL_SEED = 1000  # calibration seeds are CAL_SEED, CAL_SEED + 1, ...; verdict seeds start at 0
RECORDS = PACKAGE_DIR.parent / "calibration"
RULE = ("the cheapest setting (mean measured seconds per seed) whose every precondition holds, on its point value, "
        "in every calibration seed; none if no setting qualifies")


def plan_of(experiment: str) -> Plan:
    exp = get_experiment(experiment)
    plan = getattr(exp, "CALIBRATION", None)
    if plan is None:
        raise ValueError(f"experiment {exp.NAME!r} declares no CALIBRATION plan")
    return plan


def record_path(experiment: str) -> Path:
    nb = next(k for k, v in REGISTRY.items() if v == get_experiment(experiment).NAME)
    return RECORDS / f"{nb}.json"


def _cost(result) -> float:
    """Seconds of computation behind a stored result (its parts' seconds where the experiment records them)."""
    for key in ("seconds", "train_seconds"):
        if isinstance(result.scalars.get(key), (int, float)):
            return float(result.scalars[key])
    return float(result.provenance.get("wall_seconds") or float("nan"))


def _beyond(c) -> bool:
    """A precondition's point value on the claimed side of its threshold (one seed has no interval)."""
    v = c.interval.estimate
    if v != v:  # NaN
        return False
    return v > c.threshold if c.direction == "above" else v < c.threshold


def measure(cfg, result) -> dict[str, Any]:
    """One calibration run's row: each precondition's point value and whether it is beyond its threshold, and the
    cost.  Nothing the verdict decides on is kept."""
    pre = get_claim(cfg.experiment).preconditions(result, cfg)
    row: dict[str, Any] = {"seconds": round(_cost(result), 1)}
    for i, c in enumerate(pre):
        row[f"pre{i}"] = None if c.interval.estimate != c.interval.estimate else round(c.interval.estimate, 4)
        row[f"pre{i}_ok"] = _beyond(c)
    row["all_ok"] = all(row[f"pre{i}_ok"] for i in range(len(pre)))
    return row


def precondition_names(experiment: str, cfg, result) -> list[dict[str, Any]]:
    return [{"name": f"pre{i}", "text": c.text, "threshold": c.threshold, "direction": c.direction}
            for i, c in enumerate(get_claim(experiment).preconditions(result, cfg))]


def pick(rows: list[dict[str, Any]], knobs: list[str]) -> dict[str, Any] | None:
    """:data:`RULE`: the cheapest setting whose preconditions hold in every one of its calibration seeds."""
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        by.setdefault(tuple(r[k] for k in knobs), []).append(r)
    ok = [(sum(r["seconds"] for r in rs) / len(rs), key) for key, rs in by.items() if all(r["all_ok"] for r in rs)]
    if not ok:
        return None
    cost, key = min(ok)
    return {**dict(zip(knobs, key)), "seconds_per_seed": round(cost, 1)}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def configs(experiment: str, plan: Plan | None = None) -> list[tuple[dict, Any]]:
    """Every (setting + calibration seed, Config) of a plan, resolved (and so validated) before anything runs."""
    plan = plan or plan_of(experiment)
    out = []
    for setting in plan.settings():
        for i in range(plan.seeds):
            point = {**plan.fixed, **setting, "seed": CAL_SEED + i, "seeds": 1, "progress": False}
            out.append((point, resolve(experiment, plan.base, point)))
    return out


def calibrate(experiment: str, store: Store | None = None, executor=None, plan: Plan | None = None,
              report=print) -> dict[str, Any]:
    """Run (or load) every calibration run of ``experiment`` and return its record (see the module docstring)."""
    from .executor import current
    from .sweep import run_grid

    plan = plan or plan_of(experiment)
    store = store or Store()
    executor = executor or current()
    grid = configs(experiment, plan)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.time()
    outcomes = run_grid(grid, store, executor, parallel=executor.name != "local",
                        report=lambda o: report(f"{'cached' if o.cached else 'done':6} {o.point} "
                                                f"({o.seconds:.0f} s){' ' + o.error if o.error else ''}"))
    failed = [o for o in outcomes if o.error]
    if failed:
        raise RuntimeError(f"{len(failed)} calibration run(s) failed, e.g. {failed[0].point}: {failed[0].error}")
    exp = get_experiment(experiment)
    rows, names = [], None
    for point, cfg in grid:
        result = store.get(exp.NAME, cfg.hashed_dict())
        names = names or precondition_names(exp.NAME, cfg, result)
        rows.append({**{k: point[k] for k in plan.grid}, "seed": point["seed"], **measure(cfg, result)})
    knobs = list(plan.grid)
    return {
        "experiment": exp.NAME, "base_profile": plan.base, "grid": {k: list(v) for k, v in plan.grid.items()},
        "fixed": plan.fixed, "seeds": sorted({p["seed"] for p, _ in grid}), "axes": list(plan.axes or knobs[:2]),
        "preconditions": names, "rule": RULE, "rows": rows, "pick": pick(rows, knobs),
        "machine": {**machine(), "load_average_at_start": round(load, 2)},
        "date": time.strftime("%Y-%m-%d", time.gmtime(t0)), "commit": _git_commit(PACKAGE_DIR.parent),
        "sweep_seconds": round(time.time() - t0, 1),
    }


def write(record: dict[str, Any]) -> Path:
    path = record_path(record["experiment"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
    return path


def load(experiment: str) -> dict[str, Any] | None:
    """A claim's committed calibration record, or ``None`` when it has none."""
    path = record_path(experiment)
    return json.loads(path.read_text()) if path.exists() else None


def disagreements(experiment: str) -> list[str]:
    """How the quick profile's values of the swept knobs differ from the record's pick (empty: they agree)."""
    rec = load(experiment)
    if rec is None:
        return [f"{experiment}: no calibration record at {record_path(experiment)}"]
    if rec["pick"] is None:
        return []  # nothing qualified: the profile cannot come from the record (the appendix says so)
    quick = resolve(experiment, rec["base_profile"]).values
    return [f"{experiment}: quick {k}={quick[k]!r}, calibration picked {v!r}" for k, v in rec["pick"].items()
            if k in rec["grid"] and quick[k] != v]
