"""What the real-browser check (tests/test_browser.py) asserts about a built page, as plain functions.

A page is opened in headless Chromium; :data:`COLLECT_JS` gathers its facts (figures and their rendered size, the
verdict box's position, the text a reader sees, links to executed notebooks); the ``*_problems`` functions judge
those facts and return a list of problems (empty = the page is fine), so they can be tested on crafted pages.
"""
from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

WINDOW = (1280, 900)            # the reader's window: at 1280 px the theme's text column is 676 px
MIN_FIGURE_PX = 600             # every figure at least this wide on screen
FIRST_SCREEN_PX = WINDOW[1]     # the verdict box starts within the first screen

# Console errors that are not the page's fault, each with why it is harmless.
KNOWN_CONSOLE_ERRORS = {
    "favicon.ico": "the book ships no favicon; Chromium asks for /favicon.ico anyway (a 404 on the local server)",
    "Got invalid theme mode: . Resetting to auto.":
        "pydata-sphinx-theme logs this with console.error on a first visit (no light/dark mode stored yet) and "
        "then uses the automatic mode, as intended",
    "cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js - Failed to load resource: net::ERR_":
        "MathJax comes from a CDN; on an offline machine (like the test machines) it cannot load, and the page's "
        "few formulas show as TeX source",
}

# Text a reader must never see: unresolved glue, missing values, Python reprs.
FORBIDDEN_TEXT = [
    (re.compile(r"\{glue"), "an unresolved {glue} role"),
    (re.compile(r"\bNone\b"), "a raw None"),
    (re.compile(r"\bnan\b", re.IGNORECASE), "a nan"),
    (re.compile(r"<memlib\."), "a Python repr of a memlib object"),
    (re.compile(r"object at 0x[0-9a-f]+"), "a Python object repr"),
]

# Facts about the open page.  The text excludes code the page shows as code (input cells, literal code blocks
# outside outputs); everything a cell outputs counts.
COLLECT_JS = r"""
const art = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const cs = getComputedStyle(art);
const column = art.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
const y = (el) => el.getBoundingClientRect().top + window.scrollY;
const figures = [...art.querySelectorAll('img')].map((img) => ({
  src: img.getAttribute('src') || '', alt: img.getAttribute('alt') || '', width: img.getBoundingClientRect().width,
  natural: img.naturalWidth, complete: img.complete, top: y(img)}));
const box = art.querySelector('.admonition.verdict-box');
const clone = art.cloneNode(true);
clone.querySelectorAll('.cell_input, script, style, .headerlink').forEach((e) => e.remove());
clone.querySelectorAll('div.highlight, pre').forEach((e) => { if (!e.closest('.cell_output')) e.remove(); });
const walker = document.createTreeWalker(clone, NodeFilter.SHOW_TEXT);
const texts = [];
while (walker.nextNode()) texts.push(walker.currentNode.nodeValue);
const links = [...document.querySelectorAll('a[href]')].map((a) => a.href)
  .filter((h) => h.includes('/_executed/') && h.endsWith('.ipynb'));
return {url: location.href, title: document.title, column: column, figures: figures,
        verdict_top: box ? y(box) : null, text: texts.join(' '), executed_links: [...new Set(links)]};
"""


def chromium_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) of Debian's packages, or None when they are not installed."""
    import os

    browser = (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
               or shutil.which("google-chrome-stable"))
    gh = Path(os.environ.get("CHROMEWEBDRIVER", "/nonexistent"), "chromedriver")  # GitHub's runner images
    driver = next((str(p) for p in (Path("/usr/bin/chromedriver"), gh) if p.exists()), shutil.which("chromedriver"))
    return (browser, driver) if browser and driver else None


def open_browser(user_data_dir: Path):
    """Headless Chromium at the reader's window size, with console logging, and no network of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                 f"--user-data-dir={user_data_dir}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    # --window-size sets the window, not the viewport: grow the window so the page itself is WINDOW large.
    inner = drv.execute_script("return [window.innerWidth, window.innerHeight]")
    outer = drv.get_window_size()
    drv.set_window_size(outer["width"] + WINDOW[0] - inner[0], outer["height"] + WINDOW[1] - inner[1])
    return drv


def page_facts(drv, url: str) -> dict:
    """Open ``url``, wait until its images are loaded, and return the page's facts and console errors."""
    from selenium.webdriver.support.ui import WebDriverWait

    drv.get(url)
    WebDriverWait(drv, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && [...document.images].every((i) => i.complete)"))
    facts = drv.execute_script(COLLECT_JS)
    facts["console"] = [e["message"] for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
    return facts


# Judges --------------------------------------------------------------------------------------------------------
def console_problems(messages: list[str], known: dict[str, str] = KNOWN_CONSOLE_ERRORS) -> list[str]:
    return [f"console error: {m}" for m in messages if not any(k in m for k in known)]


def text_problems(text: str) -> list[str]:
    out = []
    for rx, what in FORBIDDEN_TEXT:
        for m in rx.finditer(text):
            ctx = " ".join(text[max(0, m.start() - 60):m.end() + 60].split())
            out.append(f"{what}: ...{ctx}...")
    return out


def figure_problems(figures: list[dict], column: float, min_px: float = MIN_FIGURE_PX) -> list[str]:
    out = []
    for f in figures:
        name = repr(f["alt"][:50]) if f.get("alt") else f["src"][-50:]
        if not f.get("complete") or not f.get("natural"):
            out.append(f"figure {name} did not load")
        elif f["width"] < min_px:
            out.append(f"figure {name} shows {f['width']:.0f} px wide (< {min_px} px; drawn {f['natural']} px)")
        elif f["width"] > column + 0.5:
            out.append(f"figure {name} shows {f['width']:.0f} px wide, wider than the {column:.0f} px column")
    return out


def verdict_problems(facts: dict, first_screen: float = FIRST_SCREEN_PX) -> list[str]:
    top = facts.get("verdict_top")
    if top is None:
        return ["no verdict box (an admonition with class verdict-box)"]
    out = []
    shown = [f for f in facts["figures"] if f.get("width")]
    if shown and shown[0]["top"] < top:
        out.append(f"the verdict box ({top:.0f} px down) is below the first figure ({shown[0]['top']:.0f} px)")
    if top > first_screen:
        out.append(f"the verdict box starts {top:.0f} px down, below the first screen ({first_screen} px)")
    return out


def notebook_problems(raw: bytes, url: str) -> list[str]:
    try:
        nb = json.loads(raw)
    except ValueError:
        return [f"{url} is not a notebook (not JSON)"]
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    if not code:
        return [f"{url} has no code cells"]
    if not any(c.get("outputs") for c in code):
        return [f"{url} is a notebook without outputs (not the executed one)"]
    return []


def executed_link_problems(facts: dict) -> list[str]:
    links = facts.get("executed_links") or []
    if not links:
        return ["no link to the page's executed notebook (an <a> to _executed/....ipynb)"]
    out = []
    for href in links:
        try:
            with urllib.request.urlopen(urljoin(facts["url"], href), timeout=10) as r:
                out += notebook_problems(r.read(), href)
        except OSError as e:
            out.append(f"executed-notebook link {href} does not resolve: {e}")
    return out


def page_problems(facts: dict) -> list[str]:
    """Everything wrong with a chapter page."""
    return (console_problems(facts["console"]) + verdict_problems(facts)
            + figure_problems(facts["figures"], facts["column"]) + text_problems(facts["text"])
            + executed_link_problems(facts))
