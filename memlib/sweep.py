"""Parameter grids: ``python -m memlib sweep 03 -p noise_rate=0.1,0.2 -p seed=0..4 --executor ray``.

Each ``-p key=SPEC`` is one axis of the grid; SPEC is a comma list (``0.1,0.2,0.4``), an inclusive integer range
(``0..4``) or a mix (``0..2,7``).  ``--set key=value`` fixes a parameter without splitting it (for values that
contain commas themselves, such as claim 3's ``datasets``).  Every point is resolved and validated before anything
runs; then each point runs through its experiment's ``run(cfg, store)`` with the chosen executor.  With Ray, the
points run side by side (their parts all go to the cluster at once); locally, one after another.
"""
from __future__ import annotations

import bisect
import contextvars
import itertools
import math
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .config import Config, ConfigError
from .experiments import resolve
from .experiments import REGISTRY, find_claim, get_experiment
from .store import Store

CONFIRM_ABOVE = 100      # a larger grid runs only with --yes (or a "y" at the prompt)
MAX_POINTS = 1_000_000   # a larger grid is refused: every point is validated (and kept) before anything runs
_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


class _Lazy(Sequence):
    """A sequence whose item ``i`` is computed when asked for (:meth:`_at`); slices and negative indices as a list's."""

    def _at(self, i: int):
        raise NotImplementedError

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._at(i)


class AxisValues(_Lazy):
    """An axis's values, in order, as strings, without building them: ``0..4294967295`` costs two integers."""

    def __init__(self, items: list[str | range]):
        self._items = items
        self._ends = list(itertools.accumulate(len(i) if isinstance(i, range) else 1 for i in items))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _at(self, i: int):
        k = bisect.bisect_right(self._ends, i)
        item = self._items[k]
        return str(item[i - (self._ends[k - 1] if k else 0)]) if isinstance(item, range) else item

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"AxisValues({self._items!r})"


def _overlap(items: list[str | range]) -> str | None:
    """A value that two items of an axis both give, or None."""
    ranges = sorted((r for r in items if isinstance(r, range)), key=lambda r: r.start)
    for a, b in zip(ranges, ranges[1:]):
        if b.start <= a[-1]:
            return str(b.start)
    singles = [v for v in items if isinstance(v, str)]
    seen = set()
    for v in singles:
        if v in seen:
            return v
        seen.add(v)
        if re.fullmatch(r"-?\d+", v) and str(int(v)) == v and any(int(v) in r for r in ranges):
            return v
    return None


def parse_axis(pair: str) -> tuple[str, AxisValues]:
    """``"seed=0..2,7"`` -> ``("seed", ["0", "1", "2", "7"])`` (a lazy sequence: a range is never expanded);
    values stay strings (resolve converts them)."""
    if "=" not in pair:
        raise ConfigError(f"grid axis {pair!r} must look like key=v1,v2 or key=a..b (e.g. -p seed=0..4)")
    key, spec = (s.strip() for s in pair.split("=", 1))
    if not key:
        raise ConfigError(f"grid axis {pair!r} has no parameter name")
    items: list[str | range] = []
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
            items.append(range(a, b + 1))
        else:
            items.append(item)
    dup = _overlap(items)
    if dup is not None:
        raise ConfigError(f"grid axis {key!r} lists a value twice ({dup}): {spec!r}")
    return key, AxisValues(items)


class Grid(_Lazy):
    """Every combination of the axes (the first axis varies slowest), each merged with ``fixed``; point ``i`` is
    computed when asked for, so ``len`` of a 4-billion-point grid costs nothing."""

    def __init__(self, axes: list[tuple[str, AxisValues]], fixed: Mapping[str, Any] | None = None):
        self.keys = [k for k, _ in axes]
        self.values = [v for _, v in axes]
        self.fixed = dict(fixed or {})

    def __len__(self) -> int:
        return math.prod(len(v) for v in self.values)

    def _at(self, i: int):
        combo = []
        for v in reversed(self.values):
            i, r = divmod(i, len(v))
            combo.append(v[r])
        return {**self.fixed, **dict(zip(self.keys, reversed(combo)))}

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(a == b for a, b in zip(self, other))


def grid_points(axes: list[str], fixed: Mapping[str, Any] | None = None) -> Grid:
    """Every combination of the axes (the first axis varies slowest), each merged with ``fixed``."""
    parsed = [parse_axis(a) for a in axes]
    keys = [k for k, _ in parsed]
    dup = {k for k in keys if keys.count(k) > 1} | (set(keys) & set(fixed or {}))
    if dup:
        raise ConfigError(f"parameter {sorted(dup)[0]!r} is given twice (as a grid axis or with --set)")
    return Grid(parsed, fixed)


def check_size(n: int, yes: bool, ask: Callable[[str], str] | None = None) -> bool:
    """Whether to run a grid of ``n`` points: up to :data:`CONFIRM_ABOVE` at once; more with ``yes`` or a "y" to
    ``ask`` (an interactive prompt); above :data:`MAX_POINTS` never (ConfigError)."""
    if n > MAX_POINTS:
        raise ConfigError(f"the grid has {n:,} points, more than the {MAX_POINTS:,} one sweep may run; narrow the "
                          "axes (-p) or split it into several sweeps")
    if n <= CONFIRM_ABOVE or yes:
        return True
    if ask is None:
        raise ConfigError(f"the grid has {n:,} points (more than {CONFIRM_ABOVE}); rerun with --yes to run them all")
    return ask(f"the grid has {n:,} points: run them all? [y/N] ").strip().lower() in ("y", "yes")


def experiment_of(name: str) -> str:
    """A claim's module name from its notebook name, module name, number (``03``, ``3``) or a unique part."""
    return REGISTRY[find_claim(name)]


def resolve_grid(experiment: str, profile: str | None,
                 points: Sequence[dict[str, Any]]) -> Sequence[tuple[dict, Config]]:
    """Resolve every point (raising ConfigError naming the point before anything runs); drops duplicates.

    A :class:`Grid` is checked axis by axis first, each value (each range's two ends) beside the other axes' first
    values, so that a bad value fails at once, not after the points before it; values that resolve alike (``0.1``
    and ``0.10``) are dropped there.  Its points then differ from each other, and the answer is a lazy sequence
    that resolves a point again when it is run: a million points cost no memory."""
    if isinstance(points, Grid):
        grid = _distinct_axes(experiment, profile, points)
        for point in grid:
            _resolve_point(experiment, profile, point)
        return _Resolved(experiment, profile, grid)
    out, seen = [], set()
    for point in points:
        cfg = _resolve_point(experiment, profile, point)
        if cfg.key() not in seen:
            seen.add(cfg.key())
            out.append((point, cfg))
    return out


def _resolve_point(experiment: str, profile: str | None, point: dict[str, Any]) -> Config:
    try:
        return resolve(experiment, profile, point)
    except ConfigError as e:
        raise ConfigError(f"grid point {point}: {e}") from None


def _distinct_axes(experiment: str, profile: str | None, grid: Grid) -> Grid:
    """``grid`` with each axis value checked alone (see :func:`resolve_grid`) and the values that resolve like an
    earlier one dropped (an axis over a parameter that is not hashed, such as ``progress``, keeps its first value)."""
    first = {k: v[0] for k, v in zip(grid.keys, grid.values)}
    axes = []
    for key, values in zip(grid.keys, grid.values):
        ranges = [item for item in values._items if isinstance(item, range)]
        kept: list[str | range] = []
        seen: list[Any] = []  # what the values kept resolve to
        for item in values._items:
            ends = [str(item[0]), str(item[-1])] if isinstance(item, range) else [item]
            cfgs = [_resolve_point(experiment, profile, {**grid.fixed, **first, key: v}) for v in ends]
            if key in cfgs[0].unhashed:
                kept = [values[0]]
                break
            value = cfgs[0].values[key]
            if isinstance(item, range):
                kept.append(item)
            elif value not in seen and (isinstance(value, str) or not any(value in r for r in ranges)):
                seen.append(value)
                kept.append(item)
        axes.append((key, AxisValues(kept)))
    return Grid(axes, grid.fixed)


class _Resolved(_Lazy):
    """The points of a checked :class:`Grid` with their Configs, each resolved when asked for."""

    def __init__(self, experiment: str, profile: str | None, grid: Grid):
        self.experiment, self.profile, self.grid = experiment, profile, grid

    def __len__(self) -> int:
        return len(self.grid)

    def _at(self, i: int) -> tuple[dict, Config]:
        point = self.grid[i]
        return point, resolve(self.experiment, self.profile, point)


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
            except Exception as e:  # noqa: BLE001 - one point's error must not stop the others
                return PointOutcome(point, cfg, error=_one_line(e), seconds=time.perf_counter() - t0)
        where = store.located(exp.NAME, cfg.hashed_dict())  # the store, or the fallback folder it was saved in
        return PointOutcome(point, cfg, str(where) if where else None, seconds=time.perf_counter() - t0,
                            cached=result.cached)

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
                        outcomes.append(PointOutcome(point, cfg, error=_one_line(e)))
                    report(outcomes[-1])
        except KeyboardInterrupt:
            cancel_all()
            print("interrupted: cancelling outstanding parts ...", file=sys.stderr)
            wait(pending)
            raise
        finally:
            reset_cancel()
    return outcomes


def _one_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")
