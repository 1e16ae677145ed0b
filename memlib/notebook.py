"""Glue for the book's notebooks: resolve parameters, run (cached), verdict, and myst-nb ``glue``.

Notebooks stay narrative: a parameters cell, then calls into these helpers and the plot functions.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from .claims import OUTCOME_MARK, Verdict, get_claim
from .config import Config
from .experiments import resolve
from .experiments import get_experiment
from .measure import show as fmt  # noqa: F401  (notebooks format measured values with nb.fmt)
from .measure import setting_text
from .result import Result
from .store import Store


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


def decide(cfg: Config, store: Store | None = None) -> tuple[Config, Result, Verdict]:
    """Run ``cfg`` with the seeds its analysis plan asks for (:func:`memlib.staged.decide`): the configuration that
    ran (its final seed count), the result and the verdict."""
    from .staged import decide as staged

    return staged(cfg, store, report=print)


def glue(name: str, value: Any, display: bool = False) -> None:
    """myst-nb's glue, or nothing outside a book build."""
    try:
        from myst_nb import glue as _glue
    except ImportError:  # pragma: no cover - myst-nb comes with jupyter-book
        return
    _glue(name, value, display=display)


def glue_verdict(prefix: str, v: Verdict, measured: bool = True) -> None:
    """Glue ``<prefix>_status``, ``<prefix>_summary``, ``<prefix>_scale`` and (with ``measured``) every measured
    value as ``<prefix>_<name>`` (measured values are :class:`~memlib.measure.Measured`, intervals, ints or text)."""
    glue(f"{prefix}_status", v.status)
    glue(f"{prefix}_summary", v.summary)
    glue(f"{prefix}_scale", v.scale.text() if v.scale else "—")
    for k, val in (v.measured.items() if measured else ()):
        glue(f"{prefix}_{k}", fmt(val))


STATUS_CLASS = {"reproduced": "tip", "supported": "tip", "partly reproduced": "note", "inconclusive": "warning",
                "not reproduced": "danger", "not supported": "danger", "contradicted": "danger",
                "not testable at this scale": "warning"}


def verdict_markdown(v: Verdict, deciding: list[tuple[str, str, str]] = ()) -> str:
    """The verdict box of a chapter: a MyST admonition (class ``verdict-box``) with the verdict word, what the word
    means, the scale it holds at, the deciding numbers beside the paper's (``deciding`` rows: quantity, paper, this
    run; values are text, ints, :class:`~memlib.measure.Measured` or intervals), then the summary."""
    from .claims import STATUS_MEANING

    cls = STATUS_CLASS.get(v.status, "note")
    word = "Hypothesis" if v.kind == "hypothesis" else "Verdict"
    lines = [f"````{{admonition}} {word}: {v.status.upper()}", f":class: {cls} verdict-box", ""]
    meaning = STATUS_MEANING.get(v.status)
    if meaning:
        lines += [f"*{v.status.capitalize()}* means: {meaning}.", ""]
    reasons = v.reason_lines()
    if reasons:
        lines += ["**Not testable here, because:**" if v.status == "not testable at this scale" else
                  "**Decided by:**", ""]
        lines += [f"- {r}" for r in reasons]
        lines.append("")
    more = v.seeds_to_decide()
    if v.status == "inconclusive":
        lines.append(f"At the spread observed, about **{more} seeds** would be predicted to decide it: "
                     f"`{rerun_command(v.config.replace(seeds=more))}`." if more and v.config is not None else
                     "The seeds needed to decide it cannot be predicted from this run (an interval over examples, "
                     "or an estimate on its threshold).")
        lines.append("")
    seeds_line = v.stopping.text() if getattr(v, "stopping", None) is not None else ""
    plan_line = f"analysis plan `{v.plan_digest}` (appendix: Analysis plans)" if v.plan_digest else ""
    if seeds_line or plan_line:
        lines += ["**Seeds:** " + seeds_line + (". " if seeds_line else "") + ("Decided by the " + plan_line + "."
                                                                                 if plan_line else ""), ""]
    if v.scale:
        lines.append(f"**Scale:** {v.scale.text()}."
                     + (" Reduced-scale evidence, not a rerun of the paper's setting." if v.scale.reduced else ""))
        if v.scale.differences:
            lines.append(f"It differs from the `paper` profile in: {v.scale.differences_text()}.")
        if v.scale.deviations:
            lines.append("The `paper` profile itself departs from the papers: " + "; ".join(v.scale.deviations) + ".")
        lines.append("")
    if deciding:  # the deciding numbers before the prose, so they are within the page's first screen
        lines += ["| deciding quantity | the paper | this run |", "|---|---|---|"]
        lines += [f"| {_cell(q)} | {_cell(p)} | {_cell(r)} |" for q, p, r in deciding]
        lines.append("")
    lines += [v.summary, "````"]
    return "\n".join(lines)


def _cell(x: Any) -> str:
    """A table cell's text: formatted like :func:`fmt`, with pipes escaped so a cell never splits."""
    return fmt(x).replace("|", "\\|").replace("\n", " ")


def show_verdict(v: Verdict, deciding: list[tuple[str, str, str]] = ()) -> None:
    """Display :func:`verdict_markdown` (the notebook cell that shows the verdict box near the top of a page)."""
    from IPython.display import Markdown, display

    display(Markdown(verdict_markdown(v, deciding)))


def criteria_markdown(v: Verdict) -> str:
    """The criteria list: each criterion's outcome, what it requires, and the interval that decides it."""
    pre = [f"- {OUTCOME_MARK[c.outcome]} **{c.outcome}** (precondition): {c.text} — {c.evidence}. *Why a "
           f"precondition:* {c.why}" for c in v.criteria if c.precondition]
    rest = [f"- {OUTCOME_MARK[c.outcome]} **{c.outcome}**"
            f"{' (essential)' if c.essential and v.kind == 'paper' else ''}: {c.text} — {c.evidence}"
            for c in v.criteria if not c.precondition]
    if not pre:
        return "\n".join(rest)
    return "\n".join(["Preconditions (unless every one holds, the verdict is *not testable at this scale*):", "",
                      *pre, "", "Criteria:", "", *rest])


# How this was run --------------------------------------------------------------------------------------------
def rerun_command(cfg: Config, python: str = "python") -> str:
    """The exact command that reruns ``cfg``: its profile, plus ``-p key=value`` for every value that differs
    from the profile's (unhashed settings such as progress bars left out)."""
    import shlex

    from .experiments import REGISTRY

    base = resolve(cfg.experiment, cfg.profile)
    nb_name = next((k for k, v in REGISTRY.items() if v == cfg.experiment), cfg.experiment)
    short = nb_name.split("_", 1)[0]
    parts = [python, "-m", "memlib", "run", short, "--profile", cfg.profile]
    for k, val in cfg.values.items():
        if k in cfg.unhashed or base.values.get(k) == val:
            continue
        if isinstance(val, bool):
            val = str(val).lower()
        parts += ["-p", shlex.quote(f"{k}={val}")]
    return " ".join(parts)


def _when(prov: dict) -> str:
    """``finished_at`` of a provenance record as readable text (UTC offset kept), or a plain 'not recorded'."""
    at = prov.get("finished_at")
    if not at:
        return "not recorded"
    try:
        from datetime import datetime

        return datetime.strptime(at, "%Y-%m-%dT%H:%M:%S%z").strftime("%Y-%m-%d %H:%M %Z").strip()
    except ValueError:
        return str(at)


def describe_run(cfg: Config, result: Result) -> pd.DataFrame:
    """The settings and provenance of a run, for the page's "How this was run" section: when the result was
    computed, on what device, the exact command to rerun it, then every setting.  Values are text (never
    ``None``)."""
    prov = result.provenance
    dev = result.scalars.get("device") or prov.get("cuda") or "not recorded"
    wall = prov.get("wall_seconds")
    rows = [("computed at", _when(prov)),
            ("computed on", dev),
            ("served from the results store" if result.cached else "computed in this build",
             "yes (no training in this build)" if result.cached else "yes"),
            ("wall time of the computation", f"{wall:,.1f} s" if isinstance(wall, (int, float)) else "not recorded"),
            ("rerun with", rerun_command(cfg)),
            ("memlib commit", prov.get("git_commit") or "not recorded"),
            ("torch", prov.get("torch_version") or "not recorded"),
            ("profile", cfg.profile)]
    rows += [(k, v) for k, v in cfg.values.items() if k not in cfg.unhashed]
    return pd.DataFrame([(k, setting_text(v, k)) for k, v in rows], columns=["setting", "value"]).set_index("setting")
