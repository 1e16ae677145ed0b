"""The real-browser check: the smoke-built book opened in headless Chromium (Debian's chromium + chromedriver).

For every chapter page: no console error other than a documented known one, the verdict box above the first
figure and within the first screen, every figure shown at least 600 px wide and no wider than the text column, no
``{glue``, ``None``, ``nan`` or Python repr in the text, and a link to the executed notebook that resolves to a
notebook with outputs.  ``make test`` runs the ``book`` tests after its smoke build (``MEMLIB_BOOK_HTML`` names the
built site; default ``_build/smoke/_build/html``).  The checker itself is tested on crafted pages first, so it is
known to fail on a shrunk figure, a glued ``None``, a console error and a notebook without outputs.
"""
from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import threading
from pathlib import Path

import pytest

import browser_checks as bc

ROOT = Path(__file__).resolve().parent.parent
BOOK = Path(os.environ.get("MEMLIB_BOOK_HTML", ROOT / "_build" / "smoke" / "_build" / "html"))
CHAPTERS = ["01_gradient_similarity", "02_dropout_comparison", "03_outlier_percentiles", "04_early_learning",
            "05_lth_vs_dropout"]

if bc.chromium_paths() is None:
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium chromium-driver; .ci/run installs it)",
                allow_module_level=True)


def serve(root: Path):
    """A local HTTP server for ``root`` (pages opened over http, as a reader would); returns (server, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    drv = bc.open_browser(tmp_path_factory.mktemp("chromium-profile"))
    yield drv
    drv.quit()


# The checker on crafted pages --------------------------------------------------------------------------------
def _png(width: int, height: int = 200) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _page(body: str) -> str:
    return ('<!DOCTYPE html><html><head><title>crafted</title><link rel="icon" href="data:,"></head>'
            '<body style="margin:0"><article class="bd-article" style="width:676px;padding:0 0">' + body +
            "</article></body></html>")


def _notebook(with_outputs: bool) -> str:
    outputs = [{"output_type": "stream", "name": "stdout", "text": ["42\n"]}] if with_outputs else []
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "a", "metadata": {}, "execution_count": 1, "source": "print(42)",
         "outputs": outputs}]})


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    root = tmp_path_factory.mktemp("crafted")
    (root / "_executed").mkdir()
    (root / "_executed" / "good.ipynb").write_text(_notebook(True))
    (root / "_executed" / "bad.ipynb").write_text(_notebook(False))
    verdict = '<div class="admonition tip verdict-box"><p class="admonition-title">Verdict: REPRODUCED</p></div>'
    (root / "good.html").write_text(_page(
        verdict + f'<p>measured 44.7% (code: <code>x = 1</code>)</p><img src="{_png(660)}" alt="a curve">'
        '<div class="cell_input"><pre>profile = None</pre></div>'
        '<p><a href="_executed/good.ipynb">executed notebook</a></p>'))
    (root / "bad.html").write_text(_page(
        f'<p>first epoch: None; ratio nan</p><img src="{_png(500)}" alt="small"><img src="{_png(900)}" '
        'alt="wide" style="max-width:none">' + verdict + '<div class="cell_output"><pre>&lt;memlib.claims.Verdict '
        'object at 0x7f3a&gt;</pre></div><p>{glue:text}`c1_status`</p>'
        '<script>console.error("crafted failure")</script><p><a href="_executed/bad.ipynb">executed</a></p>'))
    srv, base = serve(root)
    yield base
    srv.shutdown()


def test_the_viewport_is_the_readers_window(browser, crafted):
    browser.get(crafted + "good.html")
    assert browser.execute_script("return [window.innerWidth, window.innerHeight]") == list(bc.WINDOW)


def test_checker_passes_a_good_page(browser, crafted):
    facts = bc.page_facts(browser, crafted + "good.html")
    assert facts["column"] == 676
    assert [round(f["width"]) for f in facts["figures"]] == [660]
    assert bc.page_problems(facts) == []


def test_checker_fails_a_bad_page(browser, crafted):
    facts = bc.page_facts(browser, crafted + "bad.html")
    problems = bc.page_problems(facts)
    text = "\n".join(problems)
    assert any(p.startswith("console error:") and "crafted failure" in p for p in problems), text
    assert "the verdict box" in text and "below the first figure" in text
    assert "shows 500 px wide (< 600 px" in text
    assert "shows 900 px wide, wider than the 676 px column" in text
    assert "a raw None: ...first epoch: None" in text
    assert "a nan:" in text and "{glue" in text
    assert "a Python repr of a memlib object" in text and "a Python object repr" in text
    assert "a notebook without outputs" in text
    assert len(problems) == 10, text


def test_text_checks_ignore_code_and_words():
    assert bc.text_problems("Nonetheless, the nanometre-scale result (nanny) holds at 44.7%.") == []
    assert bc.text_problems("epochs None and None") == ["a raw None: ...epochs None and None...",
                                                        "a raw None: ...epochs None and None..."]


def test_known_console_errors_are_documented():
    assert all(why for why in bc.KNOWN_CONSOLE_ERRORS.values())
    assert bc.console_problems(["http://x/favicon.ico - Failed to load resource: 404"]) == []
    assert bc.console_problems(["http://x/_static/a.js 1:2 Uncaught TypeError"]) != []


# The smoke-built book ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def book():
    if not (BOOK / "index.html").exists():
        pytest.skip(f"no built book at {BOOK}: `make test` builds it at the smoke profile, then runs these tests")
    srv, base = serve(BOOK)
    yield base
    srv.shutdown()


@pytest.mark.book
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page(browser, book, chapter):
    facts = bc.page_facts(browser, f"{book}notebooks/{chapter}.html")
    problems = bc.page_problems(facts)
    assert not problems, f"{chapter}: {len(problems)} problems:\n" + "\n".join(problems)


@pytest.mark.book
def test_executed_notebooks_and_statistics_are_published(book):
    assert (BOOK / "_executed" / "executed-notebooks.zip").stat().st_size > 0
    for chapter in CHAPTERS:
        nb = BOOK / "_executed" / "notebooks" / f"{chapter}.ipynb"
        assert bc.notebook_problems(nb.read_bytes(), str(nb)) == []
    status = (BOOK / "book" / "status.html").read_text()
    assert all(f"notebooks/{c}" in status for c in CHAPTERS), "the execution-statistics table lacks a chapter"


PHONE = (390, 844)  # a phone's viewport, CSS px


@pytest.mark.book
def test_verdict_map_page(browser, book):
    """The appendix 'Where each claim holds': one figure per map bundle in results/, each loaded and inside the
    column, no console error or raw value; at a phone's width the figures shrink to the screen and the page does
    not scroll sideways."""
    from memlib.verdict_map import RESULTS, map_bundles

    url = f"{book}book/verdict_maps.html"
    facts = bc.page_facts(browser, url)
    problems = (bc.console_problems(facts["console"]) + bc.text_problems(facts["text"])
                + bc.figure_problems(facts["figures"], facts["column"], min_px=350))
    assert not problems, "\n".join(problems)
    assert len(facts["figures"]) == len(map_bundles(RESULTS))
    assert "Where each claim holds" in facts["title"]
    size = browser.get_window_size()
    try:
        browser.set_window_size(PHONE[0] + size["width"] - bc.WINDOW[0], PHONE[1] + size["height"] - bc.WINDOW[1])
        facts = bc.page_facts(browser, url)
        sideways = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    finally:
        browser.set_window_size(size["width"], size["height"])
    assert sideways <= 1, f"at {PHONE[0]} px the page scrolls {sideways} px sideways"
    for f in facts["figures"]:
        assert f["complete"] and f["natural"]
        assert 250 <= f["width"] <= PHONE[0], f"a map shows {f['width']:.0f} px wide on a {PHONE[0]} px phone"
