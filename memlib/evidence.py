"""Results from imported bundles (:mod:`memlib.bundle`), as the book shows them beside its own runs.

:func:`bundle_evidence` gives one row per imported result: its claim, the verdict today's :mod:`memlib.claims`
computes from it, the scale that verdict holds at, and where, when and by which code it was computed.  The scale
(and so whether a row is paper-scale evidence) is derived from the values of the configuration stored with the
result, as the verdicts derive their own, never from the profile its record names: a configuration today's memlib
cannot rebuild exactly is shown as not checked, never as paper scale.  A result
computed by other computing code than today's (its code fingerprint differs, so the results store would not serve
it) is still shown, labelled as computed by an earlier version of memlib with the computing modules that changed
since; a result that cannot be read or checked any more is shown with the reason, never skipped.

:func:`selection` picks stored results for :func:`memlib.bundle.export` (a claim at a profile, or everything) and
records each one's profile and overrides, so that the importing side can rebuild its configuration.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from .bundle import entry_dir, imported, is_map, plain
from .claims import get_claim
from .config import PROFILES, Config, ConfigError, default_profile
from .experiments import REGISTRY, find_claim, get_experiment, resolve
from .jsonio import read_json
from .keys import module_hashes
from .store import BadEntry, Store, read_entry

COLUMNS = ["claim", "title", "verdict", "kind", "scale", "reduced", "summary", "device", "date", "commit", "bundle",
           "current", "changed", "version", "problem", "this_build"]


def profile_and_overrides(module: str, config: dict, profile: str | None = None) -> tuple[str, dict]:
    """The profile a stored configuration was resolved from (``profile``, else the one it differs least from) and
    the values that differ from that profile's (its overrides)."""
    stored = plain(config)
    diffs = {}
    for p in ([profile] if profile else reversed(PROFILES)):  # ties: the paper profile first
        base = plain(resolve(module, p).hashed_dict())
        diffs[p] = {k: v for k, v in stored.items() if k != "experiment" and base.get(k) != v}
    best = min(diffs, key=lambda p: len(diffs[p]))
    return best, diffs[best]


def selection(store: Store, claim: str | None = None, profile: str | None = None,
              overrides: dict | None = None) -> list[dict[str, Any]]:
    """What ``memlib export`` writes: the stored result of ``claim`` at ``profile`` with ``overrides`` (a
    :class:`ConfigError` when it is not stored), or with no claim every stored result of every claim."""
    from .experiments import module_name

    if claim is not None:
        nb = find_claim(claim)
        mod = module_name(nb)
        cfg = resolve(mod, profile, overrides)
        name = get_experiment(mod).NAME
        d = store.path(name, cfg.hashed_dict())
        if not d.exists():
            raise ConfigError(f"no stored result of {nb} at the {cfg.profile} profile"
                              f"{' with ' + str(overrides) if overrides else ''} in {store.root} (this machine "
                              f"keys results on its device and thread count too); run it first: python -m memlib "
                              f"run {nb.split('_', 1)[0]} --profile {cfg.profile}")
        prof, over = profile_and_overrides(mod, cfg.hashed_dict(), cfg.profile)
        return [{"kind": name, "key": d.name, "claim": nb, "profile": prof, "overrides": over}]
    out = []
    for nb, mod in REGISTRY.items():
        name = get_experiment(mod).NAME
        for d in store.runs(name):
            try:
                config = read_json(d / "config.json")
                prof, over = profile_and_overrides(mod, config)
            except (OSError, ValueError, AttributeError):
                continue  # export verifies every entry it writes; an unreadable one is not selected
            out.append({"kind": name, "key": d.name, "claim": nb, "profile": prof, "overrides": over})
    return out


def changed_modules(recorded: dict[str, str] | None, today: dict[str, str]) -> list[str] | None:
    """Computing modules whose code differs between a bundle's record and today (None: not recorded)."""
    if recorded is None:
        return None
    names = sorted(set(recorded) | set(today))
    return [n + ("" if n in recorded and n in today else " (added)" if n in today else " (removed)")
            for n in names if recorded.get(n) != today.get(n)]


def version_text(current: bool, changed: list[str] | None, recorded_fp: str | None, today_fp: str) -> str:
    if current:
        return f"computed by today's computing code (code fingerprint {today_fp})"
    if changed is None:
        which = "which computing modules changed is not recorded in the bundle"
    elif changed:
        which = "computing modules changed since: " + ", ".join(changed)
    else:
        which = "no computing module's code differs, only the set of modules hashed"
    return (f"computed by an earlier version of memlib (code fingerprint {recorded_fp or 'not recorded'}, today "
            f"{today_fp}); {which}")


def bundle_evidence(claim: str | None = None, store: Store | None = None,
                    build: Config | str | None = None) -> pd.DataFrame:
    """One row per imported result (of ``claim``: ``01``, a notebook or module name; default every claim), columns
    :data:`COLUMNS`.  ``this_build`` marks a result that is also what this build's own run loads (the same store
    entry; ``build``: that run's Config, or its profile, default ``$MEMLIB_PROFILE``), which a page then need not
    show twice."""
    store = store or Store()
    claim = find_claim(claim) if claim is not None else None  # "01", "gradient", a module or notebook name
    today_fp, today_mods = store.fingerprint, module_hashes()
    by_name = {get_experiment(mod).NAME: (nb, mod) for nb, mod in REGISTRY.items()}
    rows = []
    for rec in imported(store):
        if "problem" in rec:
            rows.append(_row(claim="?", title="?", bundle=rec["record"], problem=rec["problem"]))
            continue
        if is_map(rec["manifest"]):
            continue  # a verdict map's cells: the appendix "Where each claim holds" shows them (memlib.verdict_map)
        for e in rec["manifest"]["entries"]:
            if e.get("kind") not in by_name:
                continue  # a part of an experiment, not a result a claim is checked on
            nb, mod = by_name[e["kind"]]
            if claim is not None and claim != nb:
                continue
            rows.append(_evidence_row(store, rec["bundle"], e, nb, mod, today_fp, today_mods, build))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(**kw) -> dict:
    row = dict.fromkeys(COLUMNS, "")
    row.update(reduced=True, current=False, changed=None, this_build=False, verdict="not checked", kind="paper",
               scale="not checked")
    row.update(kw)
    return row


def _evidence_row(store: Store, bundle: str, e: dict, nb: str, mod: str, today_fp: str, today_mods: dict,
                  build: Config | str | None) -> dict:
    exp = get_experiment(mod)
    prov = e.get("provenance", {})
    fp = prov.get("source_fingerprint")
    current = fp == today_fp
    changed = None if current else changed_modules(prov.get("modules"), today_mods)
    row = _row(claim=nb, title=exp.TITLE, device=str(prov.get("device") or "not recorded"),
               date=str(prov.get("date") or "not recorded"), commit=str(prov.get("memlib_commit") or "not recorded"),
               bundle=bundle, current=current, changed=changed, version=version_text(current, changed, fp, today_fp))
    try:
        d = entry_dir(store, e["kind"], e["key"])
        result = read_entry(d, e["config"])  # the stored config.json is the record's configuration
    except BadEntry as err:
        return {**row, "problem": f"the imported result is damaged or gone ({err}); run python -m memlib verify"}
    try:  # the configuration rebuilt from its own values: the profile it differs least from, plus the differences
        prof, over = profile_and_overrides(mod, e["config"])
        cfg = resolve(mod, prof, over)
    except (ConfigError, AttributeError, TypeError) as err:
        return {**row, "problem": f"today's memlib cannot rebuild its configuration ({err})"}
    differs = sorted(k for k in set(plain(cfg.hashed_dict())) | set(e["config"])
                     if plain(cfg.hashed_dict()).get(k, ...) != e["config"].get(k, ...))
    if differs:
        return {**row, "problem": "today's memlib cannot rebuild its configuration exactly (it differs in: "
                f"{', '.join(differs)}), so its scale cannot be told"}
    try:
        v = get_claim(mod).check(result, cfg)
    except Exception as err:  # noqa: BLE001 - older tables today's verdict cannot read: shown, not dropped
        return {**row, "problem": f"today's verdict code cannot read it ({type(err).__name__}: {err})"}
    scale = v.scale.text() if v.scale else f"{cfg.profile} profile"
    if over:
        scale += " · overrides: " + ", ".join(f"{k}={val}" for k, val in sorted(over.items()))
    own = build if isinstance(build, Config) and build.experiment == mod else resolve(
        mod, build if isinstance(build, str) else default_profile())
    here = store.path(exp.NAME, own.hashed_dict()) == d
    return {**row, "verdict": v.status, "kind": v.kind, "scale": scale, "reduced": v.scale.reduced if v.scale
            else cfg.profile != "paper", "summary": v.summary, "this_build": here}


def date_text(at: str) -> str:
    """``2026-11-30T20:05:46+0000`` as ``2026-11-30 20:05 UTC+0000`` (other text as it is)."""
    from datetime import datetime

    try:
        return datetime.strptime(at, "%Y-%m-%dT%H:%M:%S%z").strftime("%Y-%m-%d %H:%M UTC%z")
    except ValueError:
        return at


def commit_text(commit: str) -> str:
    return commit if commit == "not recorded" else commit[:10] + ("+dirty" if commit.endswith("+dirty") else "")


def provenance_text(row: Any) -> str:
    """Where, when and by which code an imported result was computed, in one line."""
    text = (f"bundle `{row['bundle']}`: {row['device']}, {date_text(str(row['date']))[:10]}, memlib commit "
            f"{commit_text(str(row['commit']))}; {row['version']}")
    return text + (f". **Not checked:** {row['problem']}" if row["problem"] else "")


def chapter_markdown(cfg: Config, store: Store | None = None) -> str:
    """A chapter's view of the imported results of its claim (``cfg``: the chapter's own configuration): one box
    per result (verdict, scale, where, when and by which code), or one line saying that none is imported."""
    table = bundle_evidence(cfg.experiment, store, cfg)
    own = table[table["this_build"]]
    table = table[~table["this_build"]]
    lines = [f"*Result bundles:* this page's own result is the one imported from bundle `{r['bundle']}` (computed "
             f"on {r['device']} on {date_text(str(r['date']))})." for r in own.to_dict("records")]
    if table.empty and not lines:
        lines = ["*Result bundles:* no result of this claim from another machine is imported (a `paper` run on a "
                 "GPU, exported with `python -m memlib export` and committed in `results/`, would be shown here)."]
    out = [" ".join(lines), ""] if lines else []
    for r in table.to_dict("records"):
        older = not r["current"] or r["problem"]
        head = "Paper-scale evidence" if not r["reduced"] else "Reduced-scale evidence"
        out += [f"````{{admonition}} {head} from a result bundle: {str(r['verdict']).upper()}",
                f":class: {'warning' if older else 'note'}", "",
                f"**Scale:** {r['scale']}.", "",
                f"**Computed** on {r['device']} on {date_text(str(r['date']))}, memlib commit "
                f"{commit_text(str(r['commit']))} (bundle `{r['bundle']}`).", "",
                f"**Code:** {r['version']}.", "",
                f"**Not checked:** {r['problem']}" if r["problem"] else str(r["summary"]), "````", ""]
    return "\n".join(out)
