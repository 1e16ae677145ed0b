"""Helpers shared by experiment modules: per-seed parts cached separately, and table concatenation."""
from __future__ import annotations

from typing import Callable

import pandas as pd
from tqdm.std import tqdm

from ..config import Config
from ..store import Result, Store


def seed_list(cfg: Config) -> list[int]:
    return [cfg.seed + i for i in range(cfg.seeds if "seeds" in cfg.values else 1)]


def part_params(cfg: Config, **extra) -> dict:
    """Cache key parameters of one part of an experiment (e.g. one seed)."""
    d = cfg.hashed_dict()
    d.pop("seeds", None)
    d.update(extra)
    return d


def run_parts(cfg: Config, store: Store, part: str, keys: list[dict], compute: Callable[[dict], Result]) -> list[Result]:
    """Run (or load) each part; every finished part is stored at once, so an interruption loses one part.

    A progress bar over the parts is shown when the configuration asks for progress and there is more than one.
    """
    show = bool(cfg.values.get("progress", True)) and len(keys) > 1
    out = []
    for k in tqdm(keys, desc=f"{cfg.experiment} ({part}s)", disable=not show):
        out.append(store.cached(f"{cfg.experiment}/{part}", part_params(cfg, **k), lambda k=k: compute(k)))
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
