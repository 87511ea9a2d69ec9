"""The documentation site, built once per test run and served on 127.0.0.1.

``tests/test_docs.py`` (what the pages say) and ``tests/docs/test_browser.py`` (what a reader's
browser shows) check the same build: :func:`build_site` runs ``mkdocs build --strict`` on its first
call and returns that directory (or that failure) on every later one. ``SESCRATCH_DOCS_SITE``
names an already built site to check instead (e.g. one built by another engine, to compare).
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_BUILDS: dict[str, Path | str] = {}  # "site" -> the built directory, or the failed build's log


def build_site(base: Path) -> Path:
    """``mkdocs build --strict`` into ``base/site`` the first time; the same result afterwards."""
    if os.environ.get("SESCRATCH_DOCS_SITE"):
        return Path(os.environ["SESCRATCH_DOCS_SITE"]).resolve()
    pytest.importorskip("mkdocs", reason="the documentation tools are in the [dev] extra")
    if "site" not in _BUILDS:
        site_dir = base / "site"
        env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
        result = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )
        log = (result.stdout + result.stderr)[-6000:]
        _BUILDS["site"] = site_dir if result.returncode == 0 else log
    built = _BUILDS["site"]
    assert isinstance(built, Path), f"mkdocs build --strict failed:\n{built}"
    return built


def site_pages(site: Path) -> list[str]:
    """The URL path of every HTML page of the site, ``""`` for the home page, ``"x/"`` for others."""
    pages = []
    for html in sorted(site.rglob("*.html")):
        rel = html.relative_to(site).as_posix()
        pages.append(rel[: -len("index.html")] if rel.endswith("index.html") else rel)
    return pages


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve(site: Path):
    """Serve ``site`` at ``http://127.0.0.1:<free port>/`` from a thread; yields that URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
