"""The papers' reference numbers and verdicts computed from measured results.

Each claim module defines ``REFERENCE`` (what the paper/talk reports, with citation) and
``check(result, cfg) -> Verdict``.  Verdict statuses are computed from the run, never typed by hand.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly reproduced", "not reproduced"
SUPPORTED, REFUTED, UNDECIDED = "supported", "refuted", "undecided"


@dataclass
class Verdict:
    claim: str
    status: str
    summary: str
    measured: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    criteria: list[tuple[str, bool, str]] = field(default_factory=list)  # (criterion, passed, numbers)

    def criteria_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.criteria, columns=["criterion", "met", "measured"])

    def _repr_markdown_(self) -> str:
        lines = [f"**Verdict: {self.status}.** {self.summary}", ""]
        for c, ok, m in self.criteria:
            lines.append(f"- {'✔' if ok else '✘'} {c} — {m}")
        return "\n".join(lines)


def status_from(criteria: list[tuple[str, bool, str]], essential: int = 1) -> str:
    """Reproduced if all criteria hold, partly if the first ``essential`` hold, else not reproduced."""
    if all(ok for _, ok, _ in criteria):
        return REPRODUCED
    if all(ok for _, ok, _ in criteria[:essential]):
        return PARTLY
    return NOT_REPRODUCED


def get_claim(module: str):
    return importlib.import_module(f"{__name__}.{module}")
