"""The book's summary: every claim's verdict at a profile, computed from (cached) runs.

:func:`verdicts` gives one row per claim (its verdict, the kind of claim, the scale the verdict holds at);
:func:`summary_markdown` writes the summary page's tables (one screen tall: a row per claim, linked to its
chapter, paper-scale evidence apart from reduced-scale evidence) and :func:`vocabulary_markdown` the verdict
vocabulary, explained once.
"""
from __future__ import annotations

import pandas as pd

from .claims import HYPOTHESIS_STATUSES, PAPER_STATUSES, STATUS_MEANING
from .config import PROFILES
from .evidence import provenance_text
from .experiments import resolve
from .experiments import REGISTRY, get_experiment
from .staged import decide
from .store import Store


def verdicts(profile: str | None = None, store: Store | None = None) -> pd.DataFrame:
    """One row per claim: notebook, title, verdict, kind (paper / hypothesis), scale text, whether the scale is
    reduced (smoke or quick) and the summary, running (or loading) each experiment at its defaults."""
    store = store or Store()
    rows = []
    for nb, mod in REGISTRY.items():
        exp = get_experiment(mod)
        cfg = resolve(mod, profile)
        v = decide(cfg, store)[2]
        rows.append({"claim": nb, "title": exp.TITLE, "verdict": v.status, "kind": v.kind,
                     "why": "; ".join(v.reason_lines()[:1]), "plan": v.plan_digest,
                     "seeds": v.stopping.seeds if v.stopping is not None else cfg.seeds,
                     "scale": v.scale.text() if v.scale else cfg.profile + " profile",
                     "reduced": v.scale.reduced if v.scale else cfg.profile != "paper", "summary": v.summary})
    return pd.DataFrame(rows)


def chapter_link(nb: str, title: str, prefix: str = "/notebooks/") -> str:
    """A MyST link to a chapter: ``{doc}`01 · title </notebooks/01_...>```."""
    label = f"{nb.split('_', 1)[0]} · {title or nb}"
    return f"{{doc}}`{label.replace('`', '')} <{prefix}{nb}>`"


def summary_markdown(table: pd.DataFrame, bundles: pd.DataFrame | None = None) -> str:
    """The summary's tables: paper-scale evidence first, then reduced-scale evidence; a row per claim with its
    chapter link, the verdict word and the scale it holds at (the chapters hold the numbers and the reasons).

    ``bundles`` (:func:`memlib.evidence.bundle_evidence`) adds a row per imported result beside this build's own,
    with a column saying which build or bundle computed each row: device, date, commit, and whether by today's
    computing code or an earlier version (naming the modules changed since)."""
    has = bundles is not None and len(bundles) > 0
    extra = bundles[~bundles["this_build"]] if has else None
    # this build's own result may itself be an imported one (same store entry): say which bundle it came from
    came = {r["claim"]: f" (imported from bundle `{r['bundle']}`)" for r in bundles[bundles["this_build"]]
            .to_dict("records")} if has else {}
    out = []
    for reduced, heading, empty in [
            (False, "Paper-scale evidence", "No claim has been run at the `paper` profile in this build, and no "
             "result bundle of a `paper` run is imported (see `results/README.md`)."),
            (True, "Reduced-scale evidence (`smoke` / `quick` profiles)",
             "Every claim was run at the `paper` profile in this build.")]:
        part = table[table["reduced"] == reduced]
        more = extra[extra["reduced"] == reduced] if extra is not None else pd.DataFrame()
        out += [f"**{heading}**", ""]
        if part.empty and more.empty:
            out += [empty, ""]
            continue
        if extra is None:
            out += ["| claim | verdict | at what scale |", "|---|---|---|"]
        else:
            out += ["| claim | verdict | at what scale | computed by |", "|---|---|---|---|"]
        for r in part.itertuples():
            kind = " (the talk's hypothesis)" if r.kind == "hypothesis" else ""
            why = getattr(r, "why", "")
            why = f" — {why}" if why else ""
            plan = getattr(r, "plan", "")
            why += f" (plan `{plan}`, {r.seeds} seeds)" if plan else ""
            out.append(f"| {chapter_link(r.claim, r.title)} | **{r.verdict}**{kind}{why.replace('|', '/')} | "
                       f"{r.scale} |" + (f" this build{came.get(r.claim, '')} |" if extra is not None else ""))
        for r in more.to_dict("records"):
            kind = " (the talk's hypothesis)" if r["kind"] == "hypothesis" else ""
            link = chapter_link(r["claim"], r["title"]) if r["claim"] in REGISTRY else r["claim"]
            out.append(f"| {link} | **{r['verdict']}**{kind} | {r['scale']} | "
                       f"{provenance_text(r).replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


def vocabulary_markdown() -> str:
    """The verdict vocabulary, once: each word and what it means (a MyST definition list)."""
    lines = ["For the papers' claims:", ""]
    for s in PAPER_STATUSES:
        lines += [f"*{s}*", f": {STATUS_MEANING[s]}.", ""]
    lines += ["For the talk's own hypothesis:", ""]
    for s in HYPOTHESIS_STATUSES:
        lines += [f"*{s}*", f": {STATUS_MEANING[s]}.", ""]
    return "\n".join(lines)


MODEL_SHORT = {"resnet9": "ResNet-9", "mlp": "MLP", "smallcnn": "small CNN"}
DATA_SHORT = {"mnist": "MNIST", "mnist5k": "MNIST 5k", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
              "synthetic": "synthetic"}


def profile_cell(mod: str, profile: str) -> str:
    """What a claim runs at a profile, in a few words: model (width), data, examples, epochs, seeds."""
    v = resolve(mod, profile).values
    model = MODEL_SHORT.get(v.get("model"), v.get("model", "?"))
    if v.get("model") != "mlp" and v.get("width"):
        model += f" (width {v['width']})"
    n = v.get("n_train")
    names = v["datasets"].split(",") if "datasets" in v else [v.get("dataset", "?")]
    data = " + ".join(DATA_SHORT.get(d.strip(), d.strip()) for d in names)
    size = "all" if n == 0 else f"{n:,}" if n is not None else ""
    parts = [model, f"{data}{', ' + size + ' examples' + (' each' if len(names) > 1 else '') if size else ''}"]
    if "epochs" in v:
        parts.append(f"{v['epochs']} epochs")
    if "seeds" in v:
        parts.append(f"{v['seeds']} seed{'s' if v['seeds'] != 1 else ''}")
    return " · ".join(parts)


def profiles_markdown() -> str:
    """What each claim runs at each profile, from the experiments' profile tables (so the intro never drifts)."""
    lines = ["| claim | " + " | ".join(f"`{p}`" for p in PROFILES) + " |", "|---|" + "---|" * len(PROFILES)]
    for nb, mod in REGISTRY.items():
        title = get_experiment(mod).TITLE
        lines.append(f"| {chapter_link(nb, title)} | " + " | ".join(profile_cell(mod, p) for p in PROFILES) + " |")
    return "\n".join(lines)
