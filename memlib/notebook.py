"""Glue for the book's notebooks: resolve parameters, run (cached), verdict, and myst-nb ``glue``.

Notebooks stay narrative: a parameters cell, then calls into these helpers and the plot functions.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from .claims import Verdict, get_claim
from .config import Config, resolve
from .experiments import get_experiment
from .store import Result, Store


def config(experiment: str, profile: str | None = None, overrides: dict | None = None, **params: Any) -> Config:
    """Resolve a notebook's parameters cell (``None`` = take the profile's value).

    ``overrides`` (a dict, e.g. passed by ``python -m memlib run -p key=value``) wins over named parameters.
    """
    return resolve(experiment, profile, {**params, **(overrides or {})})


def run(cfg: Config, store: Store | None = None) -> Result:
    return get_experiment(cfg.experiment).run(cfg, store)


def verdict(cfg: Config, result: Result) -> Verdict:
    return get_claim(get_experiment(cfg.experiment).NAME).check(result, cfg)


def glue(name: str, value: Any, display: bool = False) -> None:
    """myst-nb's glue, or nothing outside a book build."""
    try:
        from myst_nb import glue as _glue
    except ImportError:  # pragma: no cover - myst-nb comes with jupyter-book
        return
    _glue(name, value, display=display)


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1%}" if 0 <= v <= 1 else f"{v:,.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def glue_verdict(prefix: str, v: Verdict) -> None:
    """Glue ``<prefix>_status``, ``<prefix>_summary`` and every measured number as ``<prefix>_<name>``."""
    glue(f"{prefix}_status", v.status)
    glue(f"{prefix}_summary", v.summary)
    for k, val in v.measured.items():
        glue(f"{prefix}_{k}", fmt(val))


def describe_run(cfg: Config, result: Result) -> pd.DataFrame:
    """A small table of the settings and provenance of a run, for the page's 'how this was run' box."""
    prov = result.provenance
    rows = [("profile", cfg.profile)] + [(k, v) for k, v in cfg.values.items() if k != "progress"]
    rows += [("from cache", result.cached), ("wall time of the computation (s)", prov.get("wall_seconds")),
             ("device", result.scalars.get("device")), ("memlib commit", prov.get("git_commit")),
             ("torch", prov.get("torch_version"))]
    return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")
