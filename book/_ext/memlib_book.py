"""Sphinx extension for the memlib book (loaded through ``_config.yml``'s ``sphinx.local_extensions``).

- **Executed notebooks published with the book.**  myst-nb writes every executed page to
  ``<build>/jupyter_execute/<docname>.ipynb``; after an HTML build they are copied to ``_executed/<docname>.ipynb``
  in the site, with one archive of them all, ``_executed/executed-notebooks.zip``.  Each notebook page's download
  menu offers the executed copy (instead of the source notebook without outputs) and the archive.
- **Launch buttons only when the repository is known.**  ``MEMLIB_REPOSITORY_URL`` (the Pages workflow sets it
  from the CI context, e.g. ``https://github.com/owner/repo``) turns on the repository button and the Binder and
  Colab launch buttons; a local build without it shows none.  ``MEMLIB_REPOSITORY_BRANCH`` (default ``main``).
- **No widget payload.**  The static pages show no live widgets, so the ipywidgets state and the widget
  manager's JavaScript are not shipped.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

EXECUTED_DIR = "_executed"
ARCHIVE = "executed-notebooks.zip"


def _repository(app, config) -> None:
    url = os.environ.get("MEMLIB_REPOSITORY_URL", "").strip().rstrip("/")
    opts = dict(config.html_theme_options or {})
    if url:
        opts.update(repository_url=url, repository_branch=os.environ.get("MEMLIB_REPOSITORY_BRANCH", "main"),
                    path_to_docs="", use_repository_button=True,
                    launch_buttons={"notebook_interface": "jupyterlab", "binderhub_url": "https://mybinder.org",
                                    "colab_url": "https://colab.research.google.com"})
    else:
        opts.update(use_repository_button=False, launch_buttons={})
    config.html_theme_options = opts


def _executed_source(app) -> Path:
    return Path(app.outdir).parent / "jupyter_execute"


def _drop_widget_payload(app, pagename, templatename, context, doctree) -> None:
    """Before myst-nb adds a page's JavaScript (priority 500): remove the ipywidgets state and manager."""
    try:
        from myst_nb.sphinx_ import NbMetadataCollector
    except ImportError:  # pragma: no cover
        return
    data = NbMetadataCollector.get_doc_data(app.env).get(pagename)
    if data and "js_files" in data:
        for key in [k for k in data["js_files"] if k.startswith("ipywidgets")]:
            del data["js_files"][key]


def _executed_buttons(app, pagename, templatename, context, doctree) -> None:
    """After the theme's header buttons (priority 501): the download menu serves the executed notebook (in place
    of the source notebook, which has no outputs) and the archive of all of them."""
    if "header_buttons" not in context or not (_executed_source(app) / f"{pagename}.ipynb").exists():
        return
    root = context["pathto"](EXECUTED_DIR, 1)
    source_is_notebook = str(context.get("page_source_suffix", "")) == ".ipynb"
    for group in context["header_buttons"]:
        if group.get("label") != "download-buttons":
            continue
        buttons = [b for b in group["buttons"] if b.get("label") != "download-notebook-button"
                   and not (source_is_notebook and b.get("label") == "download-source-button")]
        group["buttons"] = [
            {"type": "link", "url": f"{root}/{pagename}.ipynb", "text": ".ipynb (executed)", "icon": "fas fa-code",
             "tooltip": "Download this page's executed notebook, with its outputs",
             "label": "download-executed-notebook-button"},
            {"type": "link", "url": f"{root}/{ARCHIVE}", "text": "all notebooks (.zip)", "icon": "fas fa-file-archive",
             "tooltip": "Download every executed notebook of the book", "label": "download-executed-archive-button"},
        ] + buttons


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Last (priority 900): drop repeated inline scripts.  sphinx-thebe, which jupyter-book always loads, adds its
    ``const THEBE_JS_URL = ...`` script twice to notebook pages, and the second copy is a console error
    ("Identifier 'THEBE_JS_URL' has already been declared")."""
    seen, kept = set(), []
    for js in context.get("script_files", []):
        key = (str(getattr(js, "filename", js) or ""),  # an inline script's filename is '' or None
               tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(js)
    if "script_files" in context:
        context["script_files"] = kept


def publish_executed(src: Path, dest: Path) -> list[Path]:
    """Copy every ``*.ipynb`` under ``src`` to ``dest`` (same relative paths) and zip them into ``dest/ARCHIVE``;
    returns the copied notebooks."""
    if dest.exists():
        shutil.rmtree(dest)
    copied = []
    for nb in sorted(src.rglob("*.ipynb")):
        out = dest / nb.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(nb, out)
        copied.append(out)
    if copied:
        with zipfile.ZipFile(dest / ARCHIVE, "w", zipfile.ZIP_DEFLATED) as z:
            for out in copied:
                z.write(out, out.relative_to(dest).as_posix())
    return copied


def _publish(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    copied = publish_executed(_executed_source(app), Path(app.outdir) / EXECUTED_DIR)
    from sphinx.util import logging

    logging.getLogger(__name__).info(f"memlib_book: published {len(copied)} executed notebooks in {EXECUTED_DIR}/")


def setup(app):
    app.connect("config-inited", _repository)
    app.connect("html-page-context", _drop_widget_payload, priority=400)
    app.connect("html-page-context", _executed_buttons, priority=502)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("build-finished", _publish)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
