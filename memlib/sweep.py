"""Parameter grids: ``python -m memlib sweep 03 -p noise_rate=0.1,0.2 -p seed=0..4 --executor ray``.

Each ``-p key=SPEC`` is one axis of the grid; SPEC is a comma list (``0.1,0.2,0.4``), an inclusive integer range
(``0..4``) or a mix (``0..2,7``).  ``--set key=value`` fixes a parameter without splitting it (for values that
contain commas themselves, such as claim 3's ``datasets``).  Every point is resolved and validated before anything
runs; then each point runs through its experiment's ``run(cfg, store)`` with the chosen executor.  With Ray, the
points run side by side (their parts all go to the cluster at once); locally, one after another.
"""
from __future__ import annotations

import contextvars
import itertools
import re
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .config import Config, ConfigError
from .experiments import resolve
from .experiments import REGISTRY, find_claim, get_experiment
from .store import Store

_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


def parse_axis(pair: str) -> tuple[str, list[str]]:
    """``"seed=0..2,7"`` -> ``("seed", ["0", "1", "2", "7"])``; values stay strings (resolve converts them)."""
    if "=" not in pair:
        raise ConfigError(f"grid axis {pair!r} must look like key=v1,v2 or key=a..b (e.g. -p seed=0..4)")
    key, spec = (s.strip() for s in pair.split("=", 1))
    if not key:
        raise ConfigError(f"grid axis {pair!r} has no parameter name")
    values: list[str] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise ConfigError(f"grid axis {pair!r} has an empty value; separate values with single commas")
        if ".." in item:
            m = _RANGE.match(item)
            if not m:
                raise ConfigError(f"range {item!r} in grid axis {key!r} must be two integers, e.g. {key}=0..4")
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise ConfigError(f"range {item!r} in grid axis {key!r} is empty (its end is below its start)")
            values += [str(v) for v in range(a, b + 1)]
        else:
            values.append(item)
    if len(set(values)) != len(values):
        raise ConfigError(f"grid axis {key!r} lists a value twice: {spec!r}")
    return key, values


def grid_points(axes: list[str], fixed: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every combination of the axes (the first axis varies slowest), each merged with ``fixed``."""
    parsed = [parse_axis(a) for a in axes]
    keys = [k for k, _ in parsed]
    dup = {k for k in keys if keys.count(k) > 1} | (set(keys) & set(fixed or {}))
    if dup:
        raise ConfigError(f"parameter {sorted(dup)[0]!r} is given twice (as a grid axis or with --set)")
    return [{**(fixed or {}), **dict(zip(keys, combo))} for combo in itertools.product(*(v for _, v in parsed))]


def experiment_of(name: str) -> str:
    """A claim's module name from its notebook name, module name, number (``03``, ``3``) or a unique part."""
    return REGISTRY[find_claim(name)]


def resolve_grid(experiment: str, profile: str | None, points: list[dict[str, Any]]) -> list[tuple[dict, Config]]:
    """Resolve every point (raising ConfigError naming the point before anything runs); drops duplicates."""
    out, seen = [], set()
    for point in points:
        try:
            cfg = resolve(experiment, profile, point)
        except ConfigError as e:
            raise ConfigError(f"grid point {point}: {e}") from None
        if cfg.key() not in seen:
            seen.add(cfg.key())
            out.append((point, cfg))
    return out


@dataclass
class PointOutcome:
    point: dict
    cfg: Config
    path: str | None = None
    error: str | None = None
    seconds: float = 0.0
    cached: bool = False
    extra: dict = field(default_factory=dict)


def run_grid(grid: list[tuple[dict, Config]], store: Store, executor, parallel: bool,
             report: Callable[[PointOutcome], None] = lambda o: None) -> list[PointOutcome]:
    """Run every point with ``executor``; ``parallel`` runs the points in threads (their parts then share the
    cluster).  A failed point is recorded and the others go on; Ctrl-C cancels everything outstanding."""
    from .executor import PartsFailed, cancel_all, reset_cancel, use

    def one(point: dict, cfg: Config) -> PointOutcome:
        t0 = time.perf_counter()
        exp = get_experiment(cfg.experiment)
        with use(executor):
            try:
                result = exp.run(cfg, store)
            except PartsFailed as e:
                return PointOutcome(point, cfg, error=str(e), seconds=time.perf_counter() - t0)
        return PointOutcome(point, cfg, str(store.path(exp.NAME, cfg.hashed_dict())),
                            seconds=time.perf_counter() - t0, cached=result.cached)

    outcomes: list[PointOutcome] = []
    if not parallel:
        for point, cfg in grid:
            outcomes.append(one(point, cfg))
            report(outcomes[-1])
        return outcomes
    if hasattr(executor, "connect"):
        executor.connect()  # once, from the main thread, before the points' threads use it
    reset_cancel()
    with ThreadPoolExecutor(max_workers=min(len(grid), 32)) as pool:
        futures = {pool.submit(contextvars.copy_context().run, one, p, c): i for i, (p, c) in enumerate(grid)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in done:
                    point, cfg = grid[futures[f]]
                    try:
                        outcomes.append(f.result())
                    except Exception as e:  # noqa: BLE001 - one point's bug must not hide the others' results
                        outcomes.append(PointOutcome(point, cfg, error=f"{type(e).__name__}: {e}"))
                    report(outcomes[-1])
        except KeyboardInterrupt:
            cancel_all()
            print("interrupted: cancelling outstanding parts ...", file=sys.stderr)
            wait(pending)
            raise
        finally:
            reset_cancel()
    return outcomes
