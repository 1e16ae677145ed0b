"""Where each claim holds: a claim's verdict over its analysis plan's map grid (``python -m memlib map 02``).

Each cell of the grid (:class:`memlib.plan.MapGrid`: e.g. label-noise rate x width, on top of the ``quick`` profile)
is a full verdict decided exactly as the chapter's own: the plan's criteria and preconditions, its seeds in stages
(:func:`memlib.staged.decide`), its error control.  Cells run one after another on the executor (each cell's parts
side by side), every part goes to the results store as it finishes, so an interrupted map resumes where it stopped
and a map whose cells are stored trains nothing.

A finished map is kept as a result bundle (:func:`export_map`: the cells' results, their profile and overrides, and a
``map`` record in the manifest naming the claim, grid and plan digest).  The book never computes a map: the appendix
"Where each claim holds" reads the map bundles in ``results/`` (:func:`page_parts`, :func:`read_map`), checks each
whole (:func:`memlib.bundle.check_bundle`) and decides every cell's verdict again from its stored result with today's
checks.  The map is descriptive: the chapter's headline verdict stays the one at its planned quick setting.
"""
from __future__ import annotations

import contextvars
import json
import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .bundle import MAP_RECORD, is_map
from .config import Config, ConfigError
from .experiments import REGISTRY, find_claim, get_experiment, module_name, resolve
from .plan import ALPHA
from .store import Store

FALSE_FOR = ALPHA / 2  # the plans' bound on a false verdict for the claim, per verdict (memlib.claims.settle)


@dataclass
class Cell:
    """One cell of a map: its setting (the grid's knobs), its configuration at the planned seeds, the most seeds its
    stages may reach, the estimated compute of its planned seeds and of that cap (core-seconds), and whether its
    planned seeds are stored."""

    setting: dict[str, Any]
    cfg: Config
    cap: int
    seconds: float
    worst: float
    stored: bool


def plan_map(claim: str):
    """The claim's notebook name, analysis plan and map grid; :class:`ConfigError` for a claim without one."""
    from .plans import plan_of

    nb = find_claim(claim)
    plan = plan_of(module_name(nb))
    if plan.map is None:
        mapped = [n.split("_", 1)[0] for n in REGISTRY if plan_of(REGISTRY[n]).map is not None]
        raise ConfigError(f"{nb} declares no verdict map in its analysis plan (memlib/plans.py); claims with one: "
                          f"{', '.join(mapped)}")
    return nb, plan, plan.map


def seconds_per_unit(experiment: str, store: Store | None = None) -> tuple[float | None, str]:
    """Measured core-seconds per seed per unit of :func:`memlib.calibration.estimated_cost`, and where it was
    measured: the parts this store holds of the claim (each seed's parts summed: every arm, window or model it
    trains), else the runs of the claim's newest calibration record; ``(None, ...)`` without either."""
    from . import calibration as cal
    from .jsonio import MalformedJSON, read_json

    store = store or Store()
    exp = get_experiment(experiment)
    names = {p.name for p in exp.PARAMS} - {"seeds", "progress", "seed_stages"}
    seeds: dict[str, list] = {}
    root = store.root / exp.NAME
    for d in root.glob("*/*") if root.is_dir() else ():  # <claim>/<part kind>/<key>: one seed's part
        try:
            conf, summ = read_json(d / "config.json"), read_json(d / "summary.json")
        except (MalformedJSON, OSError):
            continue
        secs = summ.get("train_seconds", summ.get("seconds"))
        if "seed" not in conf or not isinstance(secs, (int, float)):
            continue
        group = json.dumps({k: v for k, v in conf.items() if k in names}, sort_keys=True, default=str)
        seeds.setdefault(group, [conf, 0.0])[1] += float(secs)
    rates = [secs / cal.estimated_cost(conf) for conf, secs in seeds.values() if secs > 0]
    if rates:
        return float(pd.Series(rates).median()), (f"the training seconds of the {len(rates)} seed(s) of this claim "
                                                  "in the results store, evaluation and probes not counted")
    rec = cal.load(experiment)
    if rec:
        base = resolve(experiment, rec.get("base_profile", "quick")).values
        rates = [r["seconds"] / cal.estimated_cost({**base, **r}) for r in rec.get("rows", [])
                 if isinstance(r.get("seconds"), (int, float)) and r["seconds"] > 0]
        if rates:
            return float(pd.Series(rates).median()), (f"the calibration record of {rec.get('date')} (measured "
                                                      "under that day's load)")
    return None, "nothing measured yet"


def cells(claim: str, profile: str | None = None, store: Store | None = None,
          overrides: dict | None = None, rate: float | None = None) -> list[Cell]:
    """Every cell of the claim's map (on ``profile`` with ``overrides``: a parameter the grid does not set), resolved
    and validated before anything runs, in the grid's order; ``rate``: :func:`seconds_per_unit`'s (measured here when
    not given)."""
    from .calibration import estimated_cost
    from .plan import sequential

    nb, plan, grid = plan_map(claim)
    mod = module_name(nb)
    profile = profile or grid.base
    store = store or Store()
    if rate is None:
        rate, _ = seconds_per_unit(mod, store)
    name = get_experiment(mod).NAME
    out = []
    fixed = {"progress": False, **(overrides or {})}  # the map's own bar, not one bar per part and epoch
    clash = sorted(set(fixed) & set(grid.grid))
    if clash:
        raise ConfigError(f"{', '.join(clash)} is a knob of the map's grid ({nb}): it cannot also be fixed")
    for setting in grid.settings():
        cfg = resolve(mod, profile, {**fixed, **setting})
        unit = estimated_cost(cfg.values) * rate if rate else math.nan
        cap = plan.seeds.cap(cfg.seeds) if sequential(cfg) else cfg.seeds
        out.append(Cell(setting, cfg, cap, unit * cfg.seeds, unit * cap,
                        store.get(name, cfg.hashed_dict()) is not None))
    return out


def dry_run_text(claim: str, profile: str | None = None, store: Store | None = None, cores: int = 1,
                 overrides: dict | None = None) -> str:
    """What ``memlib map NN --dry-run`` prints: each cell with its seeds and estimated cost, and the total."""
    store = store or Store()
    nb, plan, grid = plan_map(claim)
    rate, source = seconds_per_unit(module_name(nb), store)
    cs = cells(claim, profile, store, overrides, rate)
    lines = [f"map {nb} ({cs[0].cfg.profile} profile): {len(cs)} cells ({' x '.join(grid.grid)}), each a full verdict "
             f"by the plan {plan.digest()}; compute estimated in core-seconds from {source}, scaled by training "
             "images x epochs x width squared"]
    for c in cs:
        setting = ", ".join(f"{k}={v}" for k, v in c.setting.items())
        cost = "stored: free" if c.stored else f"~{c.seconds:,.0f} s (up to ~{c.worst:,.0f} s with {c.cap} seeds)"
        lines.append(f"  {setting:32} {c.cfg.seeds} seeds -> at most {c.cap}: {cost}")
    todo = [c for c in cs if not c.stored]
    low, high = sum(c.seconds for c in todo), sum(c.worst for c in todo)
    lines.append(f"to run: {len(todo)} of {len(cs)} cells, ~{low:,.0f} to ~{high:,.0f} core-seconds "
                 f"(~{low / 60 / cores:,.0f} to ~{high / 60 / cores:,.0f} min on {cores} core{'s' * (cores > 1)})")
    return "\n".join(lines)


def cell_row(setting: dict, cfg: Config, v, shows: str) -> dict[str, Any]:
    """A map cell as the appendix reads it: the setting, the verdict word, seeds, the shown criterion's estimate and
    interval (at its decision's level) and outcome, and the lines that decided the word."""
    c = next(c for c in v.criteria if c.key == shows)
    iv = c.interval
    level = 1 - ALPHA / max(1, v.looks)  # the level a criterion must clear for the claim (widened for the looks)
    if iv.n >= 2 and not math.isclose(level, iv.level):
        iv = iv.at(level)
    return {**setting, "status": v.status, "seeds": int(cfg.seeds), "shows": shows, "text": c.text,
            "estimate": iv.estimate, "low": iv.low, "high": iv.high, "level": iv.level, "unit": iv.unit,
            "outcome": c.outcome, "threshold": c.threshold, "reason": " · ".join(v.reason_lines()),
            "plan": v.plan_digest}


def run_map(claim: str, profile: str | None = None, store: Store | None = None, executor=None,
            progress: bool = True, parallel: int = 1, overrides: dict | None = None) -> pd.DataFrame:
    """Decide every cell (stored seeds are loaded, missing ones trained), ``parallel`` cells at a time; one row per
    cell (:func:`cell_row`).  Progress: a bar over the estimated compute, so its remaining-time estimate follows the
    measured seconds per estimated second; a line per finished cell."""
    from tqdm.auto import tqdm

    from .executor import current, use
    from .staged import decide

    store = store or Store()
    executor = executor or current()
    nb, _, grid = plan_map(claim)
    cs = cells(claim, profile, store, overrides)
    todo = sum(c.seconds for c in cs if not c.stored and math.isfinite(c.seconds))
    bar = tqdm(total=round(todo) or None, unit="est-s", desc=f"map {nb.split('_', 1)[0]}", disable=not progress,
               leave=False)
    t0 = time.perf_counter()
    rows: list[dict | None] = [None] * len(cs)

    def one(i: int) -> None:
        c = cs[i]
        t = time.perf_counter()
        with use(executor):
            cfg, _, v = decide(c.cfg, store)
        rows[i] = cell_row(c.setting, cfg, v, grid.shows)
        if not c.stored and math.isfinite(c.seconds):
            bar.update(round(c.seconds))
        done = sum(r is not None for r in rows)
        setting = ", ".join(f"{k}={v}" for k, v in c.setting.items())
        bar.write(f"[{done}/{len(cs)}] {setting}: {v.status} ({cfg.seeds} seed{'s' * (cfg.seeds != 1)}, "
                  f"{time.perf_counter() - t:.0f} s)")

    if hasattr(executor, "connect") and parallel > 1:
        executor.connect()  # once, from the main thread, before the cells' threads use it
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for f in [pool.submit(contextvars.copy_context().run, one, i) for i in range(len(cs))]:
            f.result()  # a failed cell raises here; the cells stored so far stay stored
    bar.close()
    out = pd.DataFrame(rows)
    out.attrs["seconds"] = time.perf_counter() - t0
    return out


def map_selections(claim: str, rows: pd.DataFrame, profile: str | None = None, store: Store | None = None,
                   overrides: dict | None = None) -> list:
    """The bundle selections of a decided map: each cell's result at the seeds it stopped with."""
    from .evidence import selection

    nb, _, grid = plan_map(claim)
    store = store or Store()
    out = []
    for r in rows.to_dict("records"):
        over = {**(overrides or {}), **{k: r[k] for k in grid.grid}}
        cfg = resolve(module_name(nb), profile or grid.base, over)
        if r["seeds"] != cfg.seeds:
            over["seeds"] = r["seeds"]
        out += selection(store, nb, profile or grid.base, over)
    return out


def export_map(claim: str, rows: pd.DataFrame, out: Path | str, profile: str | None = None,
               store: Store | None = None, overrides: dict | None = None) -> Path:
    """Write a decided map as one result bundle at ``out`` (:func:`memlib.bundle.export`) with a ``map`` record."""
    from .bundle import export

    nb, plan, grid = plan_map(claim)
    store = store or Store()
    record = {"claim": nb, "profile": profile or grid.base, "grid": {k: list(v) for k, v in grid.grid.items()},
              "overrides": dict(overrides or {}), "shows": grid.shows, "plan_digest": plan.digest(),
              "seconds": round(rows.attrs.get("seconds", 0), 1)}
    return export(store, map_selections(claim, rows, profile, store, overrides), out, extra={MAP_RECORD: record})


# ----------------------------------------------------------------------------------------- reading maps back

def read_map(path: Path | str) -> tuple[dict, pd.DataFrame]:
    """A map bundle checked whole (:func:`memlib.bundle.check_bundle`, against an empty store so that a result this
    machine computed under the same key is no conflict), and one row per cell decided with today's checks."""
    from .bundle import BundleError, check_bundle
    from .claims import verdict_of
    from .store import read_entry

    with tempfile.TemporaryDirectory(prefix="memlib-map-") as tmp:
        checked = check_bundle(path, Store(Path(tmp) / "store"), Path(tmp) / "staging")
        rec = checked.manifest.get(MAP_RECORD)
        if not isinstance(rec, dict) or not isinstance(rec.get("grid"), dict):
            raise BundleError(f"{path}: not a verdict map (its manifest has no map record with a grid)")
        nb, _, grid = plan_map(str(rec.get("claim")))
        rows = []
        for entry, d in checked.staged:
            cfg = resolve(module_name(nb), entry["profile"], entry.get("overrides", {}))
            setting = {k: cfg.values[k] for k in grid.grid}
            row = cell_row(setting, cfg, verdict_of(read_entry(d), cfg), grid.shows)
            prov = entry.get("provenance", {})
            row.update(device=prov.get("device"), date=str(prov.get("date") or "")[:10],
                       commit=prov.get("memlib_commit"))
            rows.append(row)
    info = {**rec, "claim": nb, "root": checked.root, "bundle": Path(path).name,
            "created_with": checked.manifest.get("created_with", {})}
    return info, pd.DataFrame(rows)


def map_bundles(folder: Path | str) -> list[Path]:
    """The bundles in ``folder`` whose manifest says they are verdict maps (others are left to the chapters).  Only
    the manifest is read here: a damaged map is still listed, so that :func:`read_map` refuses it by name."""
    from .bundle import BUNDLE_MANIFEST, MAX_RECORD_BYTES, BundleError, read_bundle
    from .jsonio import MalformedJSON, read_json

    out = []
    folder = Path(folder)
    for p in sorted(folder.iterdir()) if folder.is_dir() else ():
        if p.name.startswith(".") or not (p.suffix == ".tar" or (p.is_dir() and not p.is_symlink())):
            continue
        try:
            manifest = read_json(p / BUNDLE_MANIFEST, max_bytes=MAX_RECORD_BYTES) if p.is_dir() else read_bundle(p)[0]
        except (BundleError, MalformedJSON, OSError):
            continue  # not a bundle whose manifest says anything: import reports it
        if isinstance(manifest, dict) and is_map(manifest):
            out.append(p)
    return out


def chance_text(n_cells: int) -> str:
    """How many of ``n_cells`` verdicts could read *reproduced* (or *supported*) by chance where the claim is false."""
    p_any = 1 - (1 - FALSE_FOR) ** n_cells
    return (f"{n_cells} cells are {n_cells} verdicts: where a claim does not hold, each reads *reproduced* (or "
            f"*supported*) by chance at most {FALSE_FOR:.1%} of the time, so about {n_cells * FALSE_FOR:.2f} such "
            f"cells are expected by chance alone, and at least one with probability up to {p_any:.0%}")


# ----------------------------------------------------------------------------------------- the appendix

RESULTS = Path(__file__).resolve().parent.parent / "results"


def cell_table(rows: pd.DataFrame, knobs: list[str]) -> str:
    """The cells as markdown: a narrow table (setting, verdict, seeds), then what decided each word, one item per
    cell (a list, not a table column, so that it reads on a phone)."""
    out = ["| " + " | ".join(k.replace("_", " ") for k in knobs) + " | verdict | seeds |",
           "|" + "---|" * (len(knobs) + 2)]
    why = ["", "What decided each cell:", ""]
    for r in rows.sort_values(knobs).to_dict("records"):
        setting = ", ".join(f"{k.replace('_', ' ')} {r[k]}" for k in knobs)
        out.append("| " + " | ".join(str(r[k]) for k in knobs) + f" | {r['status']} | {r['seeds']} |")
        why.append(f"- **{setting}** ({r['status']}): " + ("; ".join(str(r["reason"]).split(" · ")) or "—"))
    return "\n".join(out + why)


def page_parts(folder: Path | str = RESULTS):
    """What the appendix shows, claim by claim: ``(markdown, figure or None, markdown)``.  A claim whose map bundle is
    missing says how to compute it; a bundle that cannot be read or checked says why (never a silent gap)."""
    import matplotlib.pyplot as plt

    from .measure import fmt
    from .plans import plan_of
    from .plots.verdict_map import map_figure

    found: dict[str, list] = {}
    for p in map_bundles(folder):
        try:
            info, rows = read_map(p)
            found.setdefault(info["claim"], []).append((info, rows, None))
        except Exception as e:  # noqa: BLE001 - shown on the page, one line, the other maps still shown
            found.setdefault("?", []).append(({"bundle": p.name}, None, f"{type(e).__name__}: {e}"))
    for nb, mod in REGISTRY.items():
        plan = plan_of(mod)
        if plan.map is None:
            continue
        exp = get_experiment(mod)
        grid = plan.map
        knobs = list(grid.grid)
        head = f"### {nb.split('_', 1)[0]} · {exp.TITLE}\n\n"
        paper = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in grid.paper.items())
        if nb not in found:
            yield (head + f"No map bundle of this claim is in `results/` yet: `python -m memlib map "
                   f"{nb.split('_', 1)[0]} --executor ray --export results/map-{nb.split('_', 1)[0]}-quick-cpu` "
                   f"computes it ({len(grid.settings())} cells).", None, "")
            continue
        for info, rows, _ in found[nb]:
            crit = plan.spec(grid.shows)
            made = info.get("created_with", {})
            device = ", ".join(sorted({str(d) for d in rows["device"].dropna()}))
            dates = ", ".join(sorted({str(d) for d in rows["date"] if d}))
            stale = ("" if info.get("plan_digest") == plan.digest() else
                     f" It was computed under plan `{info.get('plan_digest')}`; today's plan is `{plan.digest()}`, "
                     "and the cells below are decided again by today's.")
            unit = str(rows["unit"].iloc[0])
            levels = ", ".join(f"{x:.1%}" for x in sorted(set(rows["level"].round(4))))
            text = (head + f"Each cell is a full verdict by this claim's analysis plan `{plan.digest()}` at the "
                    f"`{info['profile']}` profile with the cell's {' and '.join(k.replace('_', ' ') for k in knobs)}; "
                    f"the number is `{grid.shows}` ({rows['text'].iloc[0]}; needs "
                    f"{'>' if crit.direction == 'above' else '<'} {fmt(crit.threshold, unit)}), with its {levels} "
                    "interval: the level it must clear for the claim, widened for the planned looks (the table "
                    "below gives each deciding interval at the level it was decided on). The outlined cell is the "
                    f"chapter's own setting"
                    + (f"; the paper's setting ({paper}) lies outside this grid." if paper else ".")
                    + f" Computed on {device} ({dates}, memlib {str(made.get('memlib_commit') or '?')[:12]}), "
                    f"bundle `{info['bundle']}` with root hash `{info['root'][:16]}…`; "
                    f"{info.get('seconds', 0):,.0f} s to compute.{stale} Descriptive: {chance_text(len(rows))}.")
            own = resolve(mod, info["profile"]).values
            fig = map_figure(rows, knobs[-1], knobs[0], {k: own[k] for k in knobs},
                             f"Claim {int(nb.split('_', 1)[0])}: verdict by "
                             f"{' and '.join(k.replace('_', ' ') for k in knobs)}")
            plt.close(fig)
            yield text, fig, cell_table(rows, knobs)
    for info, _, problem in found.get("?", []):
        yield f"**The map bundle `{info['bundle']}` is not shown**: {problem}", None, ""
