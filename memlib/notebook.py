"""Glue for the book's notebooks: resolve parameters, run (cached), verdict, and myst-nb ``glue``.

Notebooks stay narrative: a parameters cell, then calls into these helpers and the plot functions.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from .claims import OUTCOME_MARK, Verdict, get_claim
from .config import Config, resolve
from .experiments import get_experiment
from .measure import Interval, Measured
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
    """Text of a measured value: :class:`~memlib.measure.Measured` and intervals format themselves; other
    values must already be text or integers (no format is guessed from a number's range)."""
    if isinstance(v, (Measured, Interval)):
        return str(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        raise TypeError(f"a bare float ({v!r}) has no declared format: wrap it in memlib.measure.Measured(value, "
                        f"unit)")
    if v is None:
        return "—"
    return str(v)


def glue_verdict(prefix: str, v: Verdict) -> None:
    """Glue ``<prefix>_status``, ``<prefix>_summary``, ``<prefix>_scale`` and every measured value as
    ``<prefix>_<name>`` (measured values are :class:`~memlib.measure.Measured`, intervals, ints or text)."""
    glue(f"{prefix}_status", v.status)
    glue(f"{prefix}_summary", v.summary)
    glue(f"{prefix}_scale", v.scale.text() if v.scale else "—")
    for k, val in v.measured.items():
        glue(f"{prefix}_{k}", fmt(val))


def verdict_markdown(v: Verdict, deciding: list[tuple[str, str, str]] = ()) -> str:
    """The verdict box of a chapter: a MyST admonition with the verdict word, the scale it holds at, the summary
    and the deciding numbers beside the paper's (``deciding`` rows: quantity, paper, this run)."""
    cls = {"reproduced": "tip", "supported": "tip", "partly reproduced": "note", "inconclusive": "warning",
           "not reproduced": "danger", "not supported": "danger", "contradicted": "danger"}.get(v.status, "note")
    lines = [f"```{{admonition}} Verdict: {v.status}", f":class: {cls} verdict-box", ""]
    if v.scale:
        lines.append(f"*At the scale of this run:* {v.scale.text()}.")
        if v.scale.reduced:
            lines.append("This is reduced-scale evidence, not a rerun of the paper's setting.")
        lines.append("")
    lines += [v.summary, ""]
    if deciding:
        lines += ["| | paper | this run |", "|---|---|---|"]
        lines += [f"| {q} | {p} | {r} |" for q, p, r in deciding]
        lines.append("")
    lines.append("```")
    return "\n".join(lines)


def show_verdict(v: Verdict, deciding: list[tuple[str, str, str]] = ()) -> None:
    """Display :func:`verdict_markdown` (the notebook cell that shows the verdict box near the top of a page)."""
    from IPython.display import Markdown, display

    display(Markdown(verdict_markdown(v, deciding)))


def criteria_markdown(v: Verdict) -> str:
    """The criteria list: each criterion's outcome, what it requires, and the interval that decides it."""
    return "\n".join(f"- {OUTCOME_MARK[c.outcome]} **{c.outcome}**{' (essential)' if c.essential else ''}: "
                     f"{c.text} — {c.evidence}" for c in v.criteria)


def describe_run(cfg: Config, result: Result) -> pd.DataFrame:
    """A small table of the settings and provenance of a run, for the page's 'how this was run' box."""
    prov = result.provenance
    rows = [("profile", cfg.profile)] + [(k, v) for k, v in cfg.values.items() if k != "progress"]
    rows += [("from cache", result.cached), ("wall time of the computation (s)", prov.get("wall_seconds")),
             ("device", result.scalars.get("device")), ("memlib commit", prov.get("git_commit")),
             ("torch", prov.get("torch_version"))]
    return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")
