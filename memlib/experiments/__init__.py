"""Experiments, one module per claim of the talk.

Each module defines ``NAME``, ``NOTEBOOK``, ``TITLE``, ``PARAMS`` (its schema, see :mod:`memlib.config`),
``PROFILES`` (values per profile) and ``run(cfg, store=None) -> Result``; its verdict lives in
:mod:`memlib.claims` under the same module name.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from typing import Any, Mapping

from ..config import PROFILES, Config, ConfigError, _suggest, build, default_profile

# notebook name -> module name, in book order.
REGISTRY: dict[str, str] = {
    "01_gradient_similarity": "gradient_similarity",
    "02_dropout_comparison": "dropout_comparison",
    "03_outlier_percentiles": "outlier_percentiles",
    "04_early_learning": "early_learning",
    "05_lth_vs_dropout": "lth_vs_dropout",
}


def module_name(name: str) -> str:
    if name in REGISTRY:
        return REGISTRY[name]
    if name in REGISTRY.values():
        return name
    raise ConfigError(f"unknown experiment {name!r}; choose one of: {', '.join(REGISTRY)}")


def get_experiment(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{module_name(name)}")


def find_claim(name: str) -> str:
    """The notebook name of a claim given as its notebook name, module name, number (``01`` or ``1``) or a
    unique part of either name (``gradient``); a clear error listing the claims otherwise."""
    key = name.strip().lower().removesuffix(".ipynb")
    if key in REGISTRY:
        return key
    for nb, mod in REGISTRY.items():
        if key == mod or (key.isdigit() and int(key) == int(nb.split("_", 1)[0])):
            return nb
    prefix = [nb for nb, mod in REGISTRY.items() if key and mod.startswith(key)]  # "dropout" -> claim 2
    if len(prefix) == 1:
        return prefix[0]
    hits = [nb for nb, mod in REGISTRY.items() if key and (key in nb or key in mod)]
    if len(hits) == 1:
        return hits[0]
    listing = ", ".join(f"{nb.split('_', 1)[0]} ({nb})" for nb in REGISTRY)
    if hits:
        raise ConfigError(f"claim {name!r} is ambiguous: it matches {', '.join(hits)}; choose one of: {listing}")
    raise ConfigError(f"unknown claim {name!r}; choose one of: {listing}")


def resolve(experiment: str, profile: str | None = None, overrides: Mapping[str, Any] | None = None,
            **kw: Any) -> Config:
    """Resolve ``profile`` (default: ``$MEMLIB_PROFILE`` or ``quick``) plus overrides for an experiment.

    Overrides whose value is ``None`` are ignored, so a notebook's parameters cell can leave a parameter
    at ``None`` to mean "take the profile's value".
    """
    exp = get_experiment(experiment)
    profile = profile or default_profile()
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}{_suggest(profile, PROFILES)}; choose one of: "
                          f"{', '.join(PROFILES)}")
    values = dict(exp.PROFILES[profile])
    merged = {**(overrides or {}), **kw}
    schema = {p.name for p in exp.PARAMS}
    for k, v in merged.items():
        if k not in schema:
            raise ConfigError(
                f"unknown parameter {k!r} for experiment {exp.NAME!r}{_suggest(k, schema)}; "
                f"valid parameters: {', '.join(sorted(schema))}"
            )
        if v is not None:
            values[k] = v
    return build(exp.NAME, profile, exp.PARAMS, values, getattr(exp, "validate", None))
