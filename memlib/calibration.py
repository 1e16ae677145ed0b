"""How the quick scale is chosen: a recorded calibration sweep per claim (the book's appendix "How the quick scale
was chosen").

Each claim's analysis plan (:mod:`memlib.plans`) holds its :class:`~memlib.plan.Calibration`: the knobs that set
capacity, data and (where the claim does not fix it) optimization length, and the values to try.  :func:`calibrate` runs the settings
on their own **calibration seeds** (``CAL_SEED`` + 0, 1, ...; the verdicts use seeds from the profile's ``seed``, 0, so
the two never overlap), one seed per run, and keeps only two things per run: the claim's **preconditions**
(``memlib.claims.<claim>.preconditions`` — never the deciding quantities) and the **cost** (seconds of computation
per seed, with the machine's load beside it).  A pre-registered rule (:data:`RULE`) picks the quick setting: settings
are tried from the cheapest (estimated compute: images trained x width squared), the first whose preconditions hold
in every calibration seed is picked, and what is dearer is not run (a setting is dropped at its first failing seed).
At the pick, the record also keeps each planned criterion's **seed spread** (``seed_sd``: the standard deviation of
its value across the calibration seeds — the spread only, never a mean or its side of a threshold), from which the
plan's seed rule fixes how many seeds the verdict starts with (``seed_plan``, :func:`memlib.plan.planned_seeds`).

Records are append-only: a new calibration writes a new dated file ``calibration/<claim>.<date>.json`` beside the
earlier ones, which stay (the appendix shows them as superseded); the newest is the one in force.

The record (settings tried, precondition values, cost, seeds, machine, date, commit, rule, pick) is a small JSON file
under ``calibration/`` that is committed with the project; the quick profile's values for the swept knobs must equal
the record's pick and the quick ``seeds`` the record's seed plan (``tests/test_calibration.py``), so no quick value
changes without a new calibration.

    python -m memlib calibrate 02 --executor ray      # runs the sweep (store hits are free) and writes the record
"""
from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from .claims import get_claim
from .experiments import REGISTRY, get_experiment, resolve
from .jsonio import read_json, write_json_atomic
from .plan import Calibration, planned_seeds
from .plans import plan_of as analysis_plan
from .keys import PACKAGE_DIR
from .store import Store, _git_commit

CAL_SEED = 1000  # calibration seeds are CAL_SEED, CAL_SEED + 1, ...; verdict seeds start at 0
RECORDS = PACKAGE_DIR.parent / "calibration"
# A calibration seed's precondition must clear its threshold by this share of the room left to the end of its scale
# (1 for "above", 0 for "below"): > 90% needs 92.5%, > 50% needs 62.5%, < 20% needs 15%.  The verdicts decide
# preconditions on a 95% t-interval over their seeds, so a point value just past the threshold in two calibration
# seeds would often leave the chapter not testable (adopted 2026-12-01; every earlier pick also clears it).
MARGIN = 0.25
RULE = ("settings are tried from the cheapest (estimated compute: training images x epochs x width squared, ties in "
        "the plan's order); the first whose every precondition holds, on its point value and by a margin of a quarter "
        "of the room between its threshold and the end of its scale (1 above, 0 below), in every calibration seed "
        "is picked, and dearer settings are not run; none if no setting qualifies")


def plan_of(experiment: str) -> Calibration:
    """The calibration part of a claim's analysis plan (:mod:`memlib.plans`)."""
    return analysis_plan(experiment).calibration


def estimated_cost(values: dict[str, Any]) -> float:
    """Compute a setting costs, up to a constant: training images x epochs x width squared."""
    return float(values.get("n_train") or 1) * float(values.get("epochs") or 1) * float(values.get("width") or 1) ** 2


def record_path(experiment: str) -> Path:
    nb = next(k for k, v in REGISTRY.items() if v == get_experiment(experiment).NAME)
    return RECORDS / f"{nb}.json"


def _cost(result) -> float:
    """Seconds of computation behind a stored result (its parts' seconds where the experiment records them)."""
    for key in ("seconds", "train_seconds"):
        if isinstance(result.scalars.get(key), (int, float)):
            return float(result.scalars[key])
    return float(result.provenance.get("wall_seconds") or float("nan"))


def _clears(v: float, threshold: float, direction: str) -> bool:
    """A point value on the claimed side of ``threshold`` by :data:`MARGIN` of the room left (NaN never does)."""
    if v != v:  # NaN
        return False
    if direction == "above":
        return v > threshold and v >= threshold + MARGIN * max(0.0, 1.0 - threshold)
    return v < threshold and v <= threshold - MARGIN * max(0.0, threshold)


def _beyond(c) -> bool:
    """A precondition's point value past its threshold by the rule's margin (one seed has no interval)."""
    return _clears(c.interval.estimate, c.threshold, c.direction)


def repick(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The pick of today's :data:`RULE` over a record's rows (a record written under an earlier rule keeps the
    values it measured; only which of them qualify is decided again)."""
    pre = rec["preconditions"] or []
    rows = [{**r, "all_ok": all(r.get(p["name"]) is not None and _clears(r[p["name"]], p["threshold"], p["direction"])
                                for p in pre)} for r in rec["rows"]]
    return pick(rows, list(rec["grid"]))


def measure(cfg, result) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One calibration run's row (each precondition's point value, whether it is beyond its threshold, and the cost;
    nothing the verdict decides on) and the preconditions' descriptions."""
    pre = get_claim(cfg.experiment).preconditions(result, cfg)
    row: dict[str, Any] = {"seconds": round(_cost(result), 1)}
    for i, c in enumerate(pre):
        row[f"pre{i}"] = None if c.interval.estimate != c.interval.estimate else round(c.interval.estimate, 4)
        row[f"pre{i}_ok"] = _beyond(c)
    row["all_ok"] = all(row[f"pre{i}_ok"] for i in range(len(pre)))
    names = [{"name": f"pre{i}", "text": c.text, "threshold": c.threshold, "direction": c.direction}
             for i, c in enumerate(pre)]
    return row, names


def pick(rows: list[dict[str, Any]], knobs: list[str]) -> dict[str, Any] | None:
    """:data:`RULE` applied to finished rows (in the order they were tried, cheapest first): the first setting whose
    preconditions held in every one of its calibration seeds and that has every seed (a setting dropped at a failing
    seed does not qualify)."""
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        by.setdefault(tuple(r[k] for k in knobs), []).append(r)
    for key, rs in by.items():
        if all(r["all_ok"] for r in rs) and rs and rs[0].get("of_seeds", len(rs)) == len(rs):
            return {**dict(zip(knobs, key)), "seconds_per_seed": round(sum(r["seconds"] for r in rs) / len(rs), 1)}
    return None


def machine() -> dict[str, Any]:
    from .device import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}


def configs(experiment: str, plan: Calibration | None = None) -> list[tuple[dict, Any]]:
    """Every (setting + calibration seed, Config) of a plan in the order the rule tries them (cheapest setting
    first), resolved (and so validated) before anything runs."""
    plan = plan or plan_of(experiment)
    out = []
    for setting in plan.settings():
        for i in range(plan.seeds):
            point = {**setting, "seed": CAL_SEED + i, "seeds": 1, "progress": False}
            out.append((point, resolve(experiment, plan.base, point)))
    order = {id(c): n for n, (_, c) in enumerate(out)}
    return sorted(out, key=lambda pc: (estimated_cost(pc[1].values), order[id(pc[1])]))


def calibrate(experiment: str, store: Store | None = None, executor=None, plan: Calibration | None = None,
              report=print) -> dict[str, Any]:
    """Run (or load) the calibration runs of ``experiment`` by :data:`RULE` and return its record (see the module
    docstring).  A setting's seeds run one after another (each run's parts side by side on the executor), so a
    setting is dropped at its first failing seed and the sweep stops at the first setting that qualifies."""
    from .executor import current
    from .sweep import run_grid

    plan = plan or plan_of(experiment)
    store = store or Store()
    executor = executor or current()
    exp = get_experiment(experiment)
    knobs = list(plan.grid)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.time()
    rows, names, spreads = [], [], {}
    runs = configs(experiment, plan)
    settings = list(dict.fromkeys(tuple(p[k] for k in knobs) for p, _ in runs))  # cheapest first
    for setting in settings:
        for point, cfg in [(p, c) for p, c in runs if tuple(p[k] for k in knobs) == setting]:
            (out,) = run_grid([(point, cfg)], store, executor, parallel=False)
            report(f"{'cached' if out.cached else 'done':6} {point} ({out.seconds:.0f} s)")
            if out.error:
                raise RuntimeError(f"calibration run {point} failed: {out.error}")
            result = store.get(exp.NAME, cfg.hashed_dict())
            row, names = measure(cfg, result)
            rows.append({**{k: point[k] for k in knobs}, "seed": point["seed"], "of_seeds": plan.seeds, **row})
            spreads.setdefault(setting, []).append(criterion_values(cfg, result))
            if not rows[-1]["all_ok"]:
                break  # one failing seed rules the setting out
        else:
            break  # every seed held: this setting is the pick, dearer ones are not run
    tried = {tuple(r[k] for k in knobs) for r in rows}
    chosen = pick(rows, knobs)
    seed_sd = spread(spreads[tuple(chosen[k] for k in knobs)]) if chosen else {}
    aplan = analysis_plan(experiment)
    return {
        "experiment": exp.NAME, "base_profile": plan.base, "grid": {k: list(v) for k, v in plan.grid.items()},
        "why": plan.why, "seeds": [CAL_SEED + i for i in range(plan.seeds)], "axes": list(plan.axes or knobs[:2]),
        "preconditions": names, "rule": RULE, "rows": rows, "pick": chosen, "plan_digest": aplan.digest(),
        "seed_sd": seed_sd, "seed_plan": planned_seeds(aplan, seed_sd) if chosen else None,
        "not_run": [dict(zip(knobs, s)) for s in (tuple(x[k] for k in knobs) for x in plan.settings())
                    if s not in tried],
        "machine": {**machine(), "load_average_at_start": round(load, 2)},
        "date": time.strftime("%Y-%m-%d", time.gmtime(t0)), "commit": _git_commit(PACKAGE_DIR.parent),
        "sweep_seconds": round(time.time() - t0, 1),
    }


def criterion_values(cfg, result) -> dict[str, float]:
    """One calibration run's value of each planned criterion over seeds (its verdict's point estimates on one
    seed).  Only their spread across calibration seeds is kept (:func:`spread`)."""
    v = get_claim(cfg.experiment).check(result, cfg)
    return {c.key: float(c.interval.estimate) for c in v.criteria
            if c.key and not c.precondition and c.interval is not None and math.isfinite(c.interval.estimate)}


def spread(values: list[dict[str, float]]) -> dict[str, float]:
    """The standard deviation of each criterion's value across calibration seeds (keys every seed has)."""
    import statistics

    keys = set.intersection(*(set(v) for v in values)) if values else set()
    return {k: round(statistics.stdev([v[k] for v in values]), 6) for k in sorted(keys) if len(values) >= 2}


def records(experiment: str) -> list[Path]:
    """A claim's calibration records, oldest first: the undated first record, then ``<claim>.<date>.json``."""
    base = record_path(experiment)

    def order(p: Path) -> tuple[str, int]:  # <stem>.<date>.json, then <stem>.<date>.2.json, ...
        date, _, n = p.name[len(base.stem) + 1:-len(".json")].partition(".")
        return date, int(n) if n.isdigit() else 1

    dated = sorted(base.parent.glob(f"{base.stem}.*.json"), key=order)
    return ([base] if base.exists() else []) + dated


def write(record: dict[str, Any]) -> Path:
    """Add ``record`` as a new dated file (append-only: an earlier record is never replaced; a second record on the
    same day gets a suffix).  Written atomically (temp file, fsync, rename)."""
    base = record_path(record["experiment"])
    path, i = base.with_name(f"{base.stem}.{record['date']}.json"), 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.stem}.{record['date']}.{i}.json")
    return write_json_atomic(path, record, indent=1)


def load(experiment: str, path: Path | None = None) -> dict[str, Any] | None:
    """A claim's calibration record in force (its newest), or ``None`` when it has none."""
    found = records(experiment)
    path = path or (found[-1] if found else None)
    return read_json(path) if path is not None else None


def record_markdown(experiment: str) -> str:
    """The appendix's text for one claim: what was swept and why, the preconditions, the machine, the pick."""
    exp = get_experiment(experiment)
    nb = record_path(exp.NAME).stem
    head = f"### {nb.split('_', 1)[0]} · {exp.TITLE}\n\n"
    rec = load(exp.NAME)
    if rec is None:
        return head + (f"No calibration record yet: this chapter's quick profile was set by hand (`python -m memlib "
                       f"calibrate {nb.split('_', 1)[0]}`).")
    pick = rec["pick"]
    pick_text = (", ".join(f"{k} = {v}" for k, v in pick.items() if k != "seconds_per_seed")
                 + f" ({pick['seconds_per_seed']:.0f} s per seed)") if pick else (
        "**none**: no setting met every precondition in every calibration seed, so this chapter's verdict at quick "
        "can only be *not testable at this scale*")
    pre = "; ".join(f"`{p['name']}`: {p['text']} ({'>' if p['direction'] == 'above' else '<'} {p['threshold']:g})"
                    for p in rec["preconditions"] or [])
    not_run = "; ".join(", ".join(f"{k} = {v}" for k, v in s.items()) for s in rec.get("not_run", []))
    m = rec["machine"]
    if rec.get("rule") != RULE:  # written under an earlier rule: say whether today's picks the same
        again = repick(rec)
        same = again is not None and pick is not None and all(again[k] == pick[k] for k in rec["grid"])
        pick_text += (". It was picked under an earlier rule (the record's own); the rule above "
                      + ("picks the same setting from the same rows" if same else
                         f"would pick {again or 'none'} from the same rows: the quick profile needs a new calibration"))
    plan = plan_of(exp.NAME)
    later = (f"The plan since: {plan.why}. " if plan.why and plan.why != rec.get("why") else "")
    return (head + "Swept: " + "; ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in rec["grid"].items())
            + f", on calibration seeds {', '.join(map(str, rec['seeds']))} (everything else: the `quick` profile's). "
            + (f"Why these: {rec['why']}. " if rec.get("why") else "") + later
            + (f"Not run (dearer than the pick): {not_run}. " if not_run else "")
            + f"Preconditions: {pre}. Run on {m['cpu']} ({m['cores']} cores, load {m['load_average_at_start']} at "
            f"the start) on {rec['date']}, commit `{(rec['commit'] or 'unknown')[:10]}`; the sweep took "
            f"{rec['sweep_seconds'] / 60:.0f} min. **Pick:** {pick_text}." + seed_plan_markdown(rec)
            + superseded_markdown(exp.NAME))


def seed_plan_markdown(rec: dict[str, Any]) -> str:
    """The record's seed spreads and the seed count the plan's rule fixed from them (empty for older records)."""
    sp = rec.get("seed_plan")
    if not sp:
        return ("" if "seed_sd" in rec else " This record predates seed planning: it holds no seed spreads, and the "
                "chapter's seed count was set by hand.")
    per = "; ".join(f"`{k}`: SD {v['seed_sd']:.3g} across calibration seeds, needs a half-width ≤ "
                    f"{v['target_half_width']:.3g}, predicted {v['predicted_half_width']:.3g} at {sp['initial']} "
                    f"seeds ({v['seeds_needed'] or 'more than 50'} needed)" for k, v in sp["per_criterion"].items())
    short = (f" The rule asked for {sp['wanted']} seeds; the book's budget starts at {sp['initial']}, so the first "
             "look may not decide and seeds are added in stages." if sp.get("budget_short") else "")
    return (f" **Seeds:** the verdict starts with {sp['initial']} seeds and adds seeds in stages up to {sp['cap']} "
            f"while undecided (each look decided on the {sp['level']:.1%} interval). {per}.{short}")


def superseded_markdown(experiment: str) -> str:
    """The claim's earlier records, kept: their date, commit and pick."""
    older = records(experiment)[:-1]
    if not older:
        return ""
    items = []
    for path in older:
        r = read_json(path)
        p = r.get("pick") or {}
        items.append(f"`{path.name}` ({r.get('date')}, commit `{(r.get('commit') or 'unknown')[:10]}`: pick "
                     + (", ".join(f"{k} = {v}" for k, v in p.items() if k != "seconds_per_seed") or "none") + ")")
    return " Superseded records, kept: " + "; ".join(items) + "."


def disagreements(experiment: str) -> list[str]:
    """How the quick profile's values of the swept knobs differ from the record's pick (empty: they agree)."""
    rec = load(experiment)
    if rec is None:
        return [f"{experiment}: no calibration record at {record_path(experiment)}"]
    if rec["pick"] is None:
        return []  # nothing qualified: the profile cannot come from the record (the appendix says so)
    quick = resolve(experiment, rec["base_profile"]).values
    out = [f"{experiment}: quick {k}={quick[k]!r}, calibration picked {v!r}" for k, v in rec["pick"].items()
           if k in rec["grid"] and quick[k] != v]
    sp = rec.get("seed_plan")
    if sp and quick["seeds"] != sp["initial"]:
        out.append(f"{experiment}: quick seeds={quick['seeds']!r}, the seed plan starts at {sp['initial']!r}")
    return out
