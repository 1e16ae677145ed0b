"""Helpers shared by experiment modules: parts (seeds, methods, ...) run by an executor and cached separately,
and table concatenation."""
from __future__ import annotations

from typing import Callable

import pandas as pd
from tqdm.std import tqdm

from ..config import Config
from ..executor import PartFn, PartsFailed
from ..executor import current as current_executor
from ..result import Result
from ..store import Store


def seed_list(cfg: Config) -> list[int]:
    return [cfg.seed + i for i in range(cfg.seeds)]


def part_params(cfg: Config, **extra) -> dict:
    """Cache key parameters of one part of an experiment (e.g. one seed)."""
    d = cfg.hashed_dict()
    d.pop("seeds", None)
    d.update(extra)
    return d


def run_parts(cfg: Config, store: Store, part: str, keys: list[dict], compute: PartFn,
              params: Callable[..., dict] = part_params, executor=None,
              cost: Callable[[dict], float] | None = None) -> list[Result]:
    """Run (or load) each part of an experiment; returns their Results in the order of ``keys``.

    ``compute(cfg, key)`` computes one part.  It must be picklable (a module-level function, or a
    ``functools.partial`` of one) so that an executor can run it elsewhere: parts missing from the store go to
    ``executor`` (default: :func:`memlib.executor.current`, i.e. ``local`` unless ``$MEMLIB_EXECUTOR`` or
    :func:`memlib.executor.use` says otherwise), and this process stores each result as it arrives, under
    ``<experiment>/<part>`` and ``params(cfg, **key)``.  So an interruption loses only the parts in progress,
    and a rerun submits only the parts not stored yet.  A progress bar over the parts is shown when the
    configuration asks for progress and there is more than one.  Raises :class:`memlib.executor.PartsFailed`
    (after storing every part that succeeded) when some parts failed for good.

    ``cost(key)``, when given, is a part's relative cost (e.g. the networks it trains): missing parts are
    submitted costliest first (longest first: on two workers, a long part submitted last runs alone at the end),
    and the results still come back in the order of ``keys``.
    """
    kind = f"{cfg.experiment}/{part}"
    ex = executor or current_executor()  # first: an executor may fix the thread count the store keys on
    out: list[Result | None] = [store.get(kind, params(cfg, **k)) for k in keys]
    todo = [i for i, r in enumerate(out) if r is None]
    if cost is not None:
        todo.sort(key=lambda i: -cost(keys[i]))  # stable: parts of equal cost keep their order
    show = cfg.progress and len(keys) > 1
    if todo:

        def on_done(j: int, produce: Callable[[], Result]) -> None:
            i = todo[j]
            out[i] = store.cached(kind, params(cfg, **keys[i]), produce)

        with tqdm(total=len(keys), initial=len(keys) - len(todo), desc=f"{cfg.experiment} ({part}s)",
                  disable=not show) as bar:
            failures = ex.run(compute, cfg, [keys[i] for i in todo], on_done, kind, bar)
        if failures:
            raise PartsFailed(kind, failures, len(keys))
    return out


SHARED_SCALARS = ("n_train", "n_noisy", "data_source", "device")


def merge_scalars(parts: list[Result], extra_shared: tuple[str, ...] = (), seconds: str = "train_seconds") -> dict:
    """Scalars of a run made of parts: its seeds, the parts' total training seconds, their mean images/s (where
    they report it), and the values all parts share (data size, noise, source, device, ``extra_shared``)."""
    first = parts[0].scalars
    out = {"seeds": sorted({p.scalars["seed"] for p in parts}),
           "train_seconds": sum(p.scalars[seconds] for p in parts)}
    rates = [p.scalars["images_per_second"] for p in parts if "images_per_second" in p.scalars]
    if rates:
        out["images_per_second"] = sum(rates) / len(rates)
    out.update({k: first[k] for k in SHARED_SCALARS + tuple(extra_shared)})
    return out


def concat(results: list[Result], table: str) -> pd.DataFrame:
    """One table from every part's table of that name."""
    frames = [r.tables[table] for r in results]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
