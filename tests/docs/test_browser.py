"""The documentation site in a real browser, with no network: what a learner on a train sees.

``mkdocs build --strict`` checks the Markdown; only a browser shows whether the formulas were
typeset, the pictures loaded and the scripts ran. The site is built once (shared with
``tests/test_docs.py``), served on 127.0.0.1, and every page is loaded in one headless Chromium
(Debian's ``chromium``; ``.ci/run`` installs it) whose host resolver knows no host but 127.0.0.1.
Asserted, for every page:

* every formula is typeset and drawn: no raw ``\\(``, ``\\[``, ``$$`` (or ``$..\\cmd..$``) left in
  the text outside code, every arithmatex element holds MathJax output, no TeX errors, no glyph
  without a character, no font that failed, and a page whose source has formulas has MathJax
  output; headings with math are typeset in the table of contents too;
* every image loads; every link into the site reaches a file, and its ``#anchor`` an element;
* no JavaScript exception, console error, failed request or response >= 400;
* nothing is requested from outside the site (no CDN, no web font).

Screenshots of a few pages go to ``build/screenshots/`` (or ``$SESCRATCH_SCREENSHOTS``).
"""
from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.docs.cdp import Chromium, find_chromium
from tests.docs.site_build import ROOT, build_site, serve, site_pages

PROBE = (Path(__file__).parent / "probe.js").read_text(encoding="utf-8")
VIEWPORT = (1280, 900)
# page -> element to scroll to (None: the top); chosen to show math in text, display and the TOC
SCREENSHOTS = {
    "": None,
    "derivations/se_block/": "the-fan-out-of-u",
    "derivations/batchnorm2d/": None,
    "tutorials/00_autograd_vs_by_hand/": "how-small-should-varepsilon-be",
    "api/ops/": None,
    "results/": None,
}
# Formulas in the built HTML, before a browser sees them: arithmatex elements (Markdown pages and
# docstrings) and Jupyter's $ / $$ in notebook Markdown (nbconvert leaves them as text), outside
# code (CODE: what the probe skips as well).
SOURCE_MATH = re.compile(r'class="arithmatex"|\$\$|\$[^$<>\n]*(?:\\[A-Za-z]+|[_^])[^$<>\n]*\$')
CODE = re.compile(r'<(pre|code|script|style)\b.*?</\1>|<div class="clipboard-copy-txt".*?</div>', re.S)


def _screenshot_path(page: str) -> Path:
    folder = Path(os.environ.get("SESCRATCH_SCREENSHOTS", ROOT / "build" / "screenshots"))
    return folder / ((page.strip("/").replace("/", "_") or "index") + ".png")


def _visit(browser: Chromium, tab: str, url: str) -> dict:
    """Load ``url``, run the probe, and add the page's errors and requests from the events."""
    browser.events()  # whatever the previous page still sent
    browser.call("Page.navigate", {"url": url}, session=tab)
    events = browser.events(until="Page.loadEventFired", session=tab, timeout=60)
    reply = browser.call("Runtime.evaluate", {"expression": PROBE, "awaitPromise": True,
                                              "returnByValue": True}, session=tab, timeout=60)
    if "exceptionDetails" in reply:
        raise AssertionError(f"{url}: the probe failed: {reply['exceptionDetails']}")
    page = reply["result"]["value"]
    events += browser.events()
    page["errors"], page["requests"] = [], []
    urls: dict[str, str] = {}
    for event in (e for e in events if e.get("sessionId") == tab):
        method, params = event["method"], event["params"]
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            page["errors"].append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            page["errors"].append("console: " + " ".join(
                str(arg.get("value", arg.get("description", ""))) for arg in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            page["errors"].append(f"{params['entry']['text']} ({params['entry'].get('url', '')})")
        elif method == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
            page["requests"].append(params["request"]["url"])
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            page["errors"].append(f"HTTP {params['response']['status']}: {params['response']['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            page["errors"].append(f"{params['errorText']}: {urls.get(params['requestId'], '?')}")
    return page


def _screenshot(browser: Chromium, tab: str, anchor: str | None, path: Path) -> None:
    if anchor:  # scroll, then let the header finish its title transition (0.25 s)
        browser.call("Runtime.evaluate", {
            "expression": f"document.getElementById({anchor!r})?.scrollIntoView();"
                          "new Promise((resolve) => setTimeout(resolve, 400))",
            "awaitPromise": True}, session=tab)
    data = browser.call("Page.captureScreenshot", {"format": "png"}, session=tab)["data"]
    path.write_bytes(base64.b64decode(data))


@pytest.fixture(scope="module")
def browsed(tmp_path_factory):
    """``(site, base_url, {page: probe result})`` for every page of the site, plus screenshots."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("no headless Chromium (Debian: apt-get install chromium; .ci/run installs it, "
                    "or point SESCRATCH_CHROMIUM at one)")
    site = build_site(tmp_path_factory.getbasetemp())
    _screenshot_path("").parent.mkdir(parents=True, exist_ok=True)
    work = tmp_path_factory.mktemp("chromium")
    pages = {}
    with serve(site) as base, Chromium(executable, work / "profile", work / "chromium.log") as browser:
        tab = browser.new_tab(*VIEWPORT)
        for page in site_pages(site):
            pages[page] = _visit(browser, tab, base + page)
            if page in SCREENSHOTS:
                _screenshot(browser, tab, SCREENSHOTS[page], _screenshot_path(page))
    return site, base, pages


def _failures(pages: dict, check) -> str:
    lines = [f"{page or '/'}: {problem}" for page, result in pages.items() for problem in check(page, result)]
    return "\n".join(lines[:60]) + (f"\n... and {len(lines) - 60} more" if len(lines) > 60 else "")


def _static_html(site: Path, page: str) -> str:
    """The page's HTML as built, before any script ran."""
    path = site / (page + "index.html" if page == "" or page.endswith("/") else page)
    return path.read_text(encoding="utf-8")


@pytest.mark.slow
def test_every_formula_is_typeset(browsed):
    site, _, pages = browsed

    def check(page, result):
        if SOURCE_MATH.search(CODE.sub("", _static_html(site, page))):
            if not result["mathjax"]:
                yield "has formulas, but MathJax did not start"
            elif result["formulas"] == 0:
                yield "has formulas, but no MathJax output"
        yield from (f"arithmatex element not typeset: {text!r}" for text in result["untypeset"])
        if result["blankGlyphs"]:
            yield f"{result['blankGlyphs']} glyphs of typeset formulas have no character to draw"
        yield from (f"font failed to load: {family}" for family in result["fontErrors"])
        yield from (f"TeX error: {error}" for error in result["texErrors"])
        yield from (f"raw TeX in the text: {text!r}" for text in result["rawTex"])

    assert len(pages) > 20, f"only {len(pages)} pages were loaded"
    failures = _failures(pages, check)
    assert not failures, f"formulas that a reader sees as LaTeX source:\n{failures}"
    typeset = [p for p, r in pages.items() if r["formulas"]]
    assert typeset, "no page of the site has a typeset formula"


@pytest.mark.slow
def test_headings_with_math_are_typeset_in_the_table_of_contents(browsed):
    site, _, pages = browsed
    toc_math = re.compile(r'class="md-nav__link">\s*<span class="md-ellipsis">[^<]*(\\\(|\$)')
    with_math = [p for p in pages if toc_math.search(_static_html(site, p))]
    assert with_math, "no heading with math found: the check below would pass vacuously"
    missing = [p for p in with_math if pages[p]["navFormulas"] == 0]
    assert not missing, f"table-of-contents formulas not typeset on: {missing}"


@pytest.mark.slow
def test_every_image_loads(browsed):
    _, _, pages = browsed
    failures = _failures(pages, lambda page, result: (f"image did not load: {src}"
                                                      for src in result["brokenImages"]))
    assert not failures, failures
    assert sum(result["images"] for result in pages.values()) > 0, "no images found at all"


@pytest.mark.slow
def test_every_internal_link_resolves(browsed):
    site, base, pages = browsed

    def check(page, result):
        for href in sorted(set(result["links"])):
            if urlsplit(href).scheme not in ("http", "https", "mailto"):
                yield f"link that no browser can follow: {href}"  # e.g. an unresolved tutorial:NN
                continue
            if not href.startswith(base):
                continue  # another site: not reachable offline, and not ours to check
            parts = urlsplit(href)
            path = unquote(parts.path).lstrip("/")
            target = site / path
            if target.is_dir():
                if not (target / "index.html").is_file():
                    yield f"link to a folder without a page: {href}"
                    continue
                path = path.rstrip("/") + "/" if path else ""
            elif not target.is_file():
                yield f"broken link: {href}"
                continue
            fragment = unquote(parts.fragment)
            if fragment and path in pages and fragment not in pages[path]["ids"]:
                yield f"link to a missing anchor: {href}"

    failures = _failures(pages, check)
    assert not failures, f"links that lead nowhere:\n{failures}"


@pytest.mark.slow
def test_no_javascript_errors_or_failed_requests(browsed):
    _, _, pages = browsed
    failures = _failures(pages, lambda page, result: result["errors"])
    assert not failures, f"errors in the browser:\n{failures}"


@pytest.mark.slow
def test_nothing_is_requested_from_outside_the_site(browsed):
    _, base, pages = browsed

    def check(page, result):
        for url in sorted(set(result["requests"])):
            if not url.startswith((base, "data:", "blob:", "about:")):
                yield f"requests {url}"

    failures = _failures(pages, check)
    assert not failures, f"the site is not self-contained (a reader offline loses these):\n{failures}"


@pytest.mark.slow
def test_screenshots_of_key_pages_are_saved(browsed):
    _, _, pages = browsed
    for page in SCREENSHOTS:
        if page not in pages:
            continue  # a page another change removed; the other tests cover the rest
        shot = _screenshot_path(page)
        assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG"), shot
        assert shot.stat().st_size > 20_000, f"{shot} looks blank ({shot.stat().st_size} bytes)"
