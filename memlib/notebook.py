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


_NOT_PARAMETERS = {"profile", "overrides"}
_INJECTED_HEADER = "# Parameters\n"  # how papermill's injected-parameters cell begins


def _papermill_names(history: list) -> set[str] | None:
    """Names assigned in the cells papermill injected, from IPython's input history ``In`` (None: no history)."""
    import ast

    if not isinstance(history, list):
        return None
    names: set[str] = set()
    for src in history:
        if isinstance(src, str) and src.startswith(_INJECTED_HEADER):
            try:
                tree = ast.parse(src)
            except SyntaxError:
                continue
            names |= {t.id for node in tree.body if isinstance(node, ast.Assign)
                      for t in node.targets if isinstance(t, ast.Name)}
    return names


def injected(namespace: dict, experiment: str, declared: Any = ()) -> dict[str, Any]:
    """Parameters that reached a notebook's namespace without being declared in its parameters cell.

    papermill (``-p lr -1``) injects any name as a global, after the parameters cell, even one the notebook
    never reads.  In a kernel, the injected names are read from the injected cell in IPython's history
    (``In``); for a namespace without history (a script, a test), every public plain value (number, string,
    bool, list, dict, ``None``) counts.  Schema parameters among them that are not in ``declared`` are
    returned, so :func:`config` applies and validates them as if declared; any other name raises
    :class:`ConfigError` naming it.
    """
    from .config import ConfigError, _suggest
    from .experiments import get_experiment

    schema = {p.name for p in get_experiment(experiment).PARAMS}
    names = _papermill_names(namespace.get("In"))
    if names is None:
        names = {k for k, v in namespace.items() if not k.startswith("_") and k not in ("In", "Out")
                 and (v is None or isinstance(v, (bool, int, float, str, list, dict)))}
    out = {}
    for k in sorted(names - _NOT_PARAMETERS - set(declared)):
        if k not in schema:
            raise ConfigError(f"unknown parameter {k!r} for experiment {experiment!r}{_suggest(k, schema)}; "
                              f"valid parameters: {', '.join(sorted(schema))}")
        out[k] = namespace.get(k)
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
