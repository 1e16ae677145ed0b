"""The book's summary: every implemented claim's verdict at a profile, computed from (cached) runs."""
from __future__ import annotations

import pandas as pd

from .claims import get_claim
from .config import resolve
from .experiments import REGISTRY, get_experiment, is_implemented
from .store import Store


def verdicts(profile: str | None = None, store: Store | None = None) -> pd.DataFrame:
    """One row per claim: status and summary, running (or loading) each experiment at its defaults."""
    store = store or Store()
    rows = []
    for nb, mod in REGISTRY.items():
        if not is_implemented(mod):
            rows.append({"claim": nb, "title": "", "verdict": "not implemented yet", "summary": ""})
            continue
        exp = get_experiment(mod)
        cfg = resolve(mod, profile)
        v = get_claim(mod).check(exp.run(cfg, store), cfg)
        rows.append({"claim": nb, "title": exp.TITLE, "verdict": v.status, "summary": v.summary})
    return pd.DataFrame(rows)
