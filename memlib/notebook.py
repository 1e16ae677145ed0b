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


_NOT_PARAMETERS = {"profile", "overrides", "In", "Out", "exit", "quit"}


def injected(namespace: dict, experiment: str, declared: Any = ()) -> dict[str, Any]:
    """Parameters that reached a notebook's namespace without being declared in its parameters cell.

    papermill (``-p lr -1``) injects any name as a global, after the parameters cell, even one the notebook
    never reads.  Names of the experiment's schema found in ``namespace`` but not in ``declared`` are returned
    (so :func:`config` applies and validates them, as if declared); any other plain value (number, string,
    bool, list, dict, ``None``) under a public name is an unknown parameter and raises :class:`ConfigError`
    naming it.  Imports, functions and IPython's own names are not parameters.
    """
    from .config import ConfigError, _suggest
    from .experiments import get_experiment

    schema = {p.name for p in get_experiment(experiment).PARAMS}
    out = {}
    for k, v in namespace.items():
        if k.startswith("_") or k in _NOT_PARAMETERS or k in declared:
            continue
        if k in schema:
            out[k] = v
        elif v is None or isinstance(v, (bool, int, float, str, list, dict)):
            raise ConfigError(f"unknown parameter {k!r} for experiment {experiment!r}{_suggest(k, schema)}; "
                              f"valid parameters: {', '.join(sorted(schema))}")
    return out


def config(experiment: str, profile: str | None = None, overrides: dict | None = None,
           namespace: dict | None = None, **params: Any) -> Config:
    """Resolve a notebook's parameters cell (``None`` = take the profile's value).

    ``overrides`` (a dict, e.g. passed by ``python -m memlib run -p key=value``) wins over named parameters.
    ``namespace=globals()`` also takes schema parameters that papermill injected without the parameters cell
    declaring them, and rejects unknown ones by name (see :func:`injected`).
    """
    extra = injected(namespace, experiment, declared=params) if namespace is not None else {}
    return resolve(experiment, profile, {**extra, **params, **(overrides or {})})


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
