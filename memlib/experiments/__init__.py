"""Experiments, one module per claim of the talk.

Each module defines ``NAME``, ``NOTEBOOK``, ``TITLE``, ``PARAMS`` (its schema, see :mod:`memlib.config`),
``PROFILES`` (values per profile) and ``run(cfg, store=None) -> Result``; its verdict lives in
:mod:`memlib.claims` under the same module name.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..config import ConfigError

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


def is_implemented(name: str) -> bool:
    return importlib.util.find_spec(f"{__name__}.{module_name(name)}") is not None


def get_experiment(name: str) -> ModuleType:
    mod = module_name(name)
    if not is_implemented(mod):
        raise ConfigError(f"experiment {name!r} is not implemented yet")
    return importlib.import_module(f"{__name__}.{mod}")
