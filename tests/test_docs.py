"""The documentation site: it builds strictly, renders every tutorial, and says only true things.

* ``mkdocs build --strict`` succeeds (a broken link, a page missing from the nav, an API page
  for a module that does not exist, a docstring mkdocstrings cannot read: each fails it);
* every tutorial notebook becomes a page, and the build never executes one;
* the names the hand-written pages mention exist: ``sescratch.*`` objects, files of the
  repository, ``sescratch`` sub-commands with their options, model names;
* the Python examples of the pages run.

The build is shared with ``tests/docs/test_browser.py`` (``tests/docs/site_build.py``), which opens
every page in headless Chromium. Without the documentation tools (``mkdocs``, PyYAML: the [dev]
extra) the tests that need them skip; the ones about the pages' text still run.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from tests.docs.site_build import build_site

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Pages written by hand for the site (the derivations have their own authors and are checked by
# the build and the browser test only).
PAGES = sorted(DOCS.glob("*.md")) + sorted(DOCS.glob("api/*.md"))
RUNNABLE_PAGES = ["getting-started.md", "architecture.md", "pretrained.md"]  # their ```python blocks run in order
TUTORIAL = re.compile(r"^(\d{2})_[\w-]+\.ipynb$")
# A path into the repository; placeholders such as tests/ops/test_<op>.py or test_*.py are skipped.
REPO_PATH = re.compile(r"(?<![\w/.-])((?:tests|benchmarks|sescratch|docs|tutorials|\.ci)/[\w./-]*\w)(?![\w./<>*-])")


def _mkdocs_config() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with mkdocs, in the [dev] extra")
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once per test run, strictly, into a temporary directory."""
    return build_site(tmp_path_factory.getbasetemp())


@pytest.mark.slow
def test_site_builds_strictly_with_every_page(site):
    for page in ["index.html", "paper-map/index.html", "architecture/index.html",
                 "getting-started/index.html", "benchmarks/index.html", "contributing/index.html",
                 "results/index.html", "api/index.html"]:
        assert (site / page).is_file(), page
    for derivation in DOCS.glob("derivations/*.md"):
        assert (site / "derivations" / derivation.stem / "index.html").is_file(), derivation.name
    for api_page in DOCS.glob("api/*.md"):
        html = (site / "api" / api_page.stem / "index.html")
        if api_page.stem != "index":
            assert html.is_file(), api_page.name
            assert 'class="doc doc-' in html.read_text(encoding="utf-8"), f"{api_page.name}: no API content"


@pytest.mark.slow
def test_every_tutorial_is_a_page_with_its_outputs(site):
    notebooks = sorted(p for p in (ROOT / "tutorials").glob("*.ipynb") if TUTORIAL.match(p.name))
    for notebook in notebooks:
        page = site / "tutorials" / notebook.stem / "index.html"
        assert page.is_file(), f"{notebook.name} is not rendered"
        assert "jupyter-wrapper" in page.read_text(encoding="utf-8"), f"{notebook.name}: not a notebook page"
        assert (page.parent / notebook.name).is_file(), f"{notebook.name}: no download copy"
    listing = (site / "tutorials" / "index.html").read_text(encoding="utf-8")
    for notebook in notebooks:
        assert f"{notebook.stem}/" in listing, f"the tutorials page does not list {notebook.name}"


def test_notebooks_are_rendered_not_executed():
    plugins = _mkdocs_config()["plugins"]
    jupyter = next(p["mkdocs-jupyter"] for p in plugins if isinstance(p, dict) and "mkdocs-jupyter" in p)
    assert jupyter["execute"] is False
    assert jupyter.get("cache") is False  # no .cache/ left in the working tree


def test_site_needs_no_network_to_build():
    config = _mkdocs_config()
    names = {next(iter(p)) if isinstance(p, dict) else p for p in config["plugins"]}
    assert not names & {"privacy", "social", "material/privacy", "material/social"}
    handler = next(p["mkdocstrings"] for p in config["plugins"] if isinstance(p, dict) and "mkdocstrings" in p)
    assert "inventories" not in handler["handlers"]["python"]


def test_site_needs_no_network_to_read():
    """MathJax (and every other script or stylesheet) comes from the site, never from a CDN."""
    config = _mkdocs_config()
    assets = [a if isinstance(a, str) else a["path"]
              for a in config.get("extra_javascript", []) + config.get("extra_css", [])]
    remote = [a for a in assets if re.match(r"^(https?:)?//", a)]
    assert not remote, f"mkdocs.yml loads these from the network: {remote}"
    missing = [a for a in assets if not (DOCS / a).is_file()]
    assert not missing, f"mkdocs.yml loads files that docs/ does not have: {missing}"
    assert any(a.startswith("javascripts/mathjax/") for a in assets), "MathJax is not loaded"
    assert (DOCS / "javascripts" / "mathjax" / "LICENSE").is_file(), "the vendored MathJax needs its licence"


# -- what the pages mention ---------------------------------------------------------------------

def _code_spans(text: str) -> list[str]:
    """Inline code and the lines of fenced code blocks; ```text blocks (program output) excluded."""
    spans: list[str] = []
    for lang, block in re.findall(r"^```([^\n]*)\n(.*?)^```", text, flags=re.M | re.S):
        if lang.strip() != "text":
            spans += block.splitlines()
    without_blocks = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    spans += re.findall(r"`([^`\n]+)`", without_blocks)
    return spans


def _resolve(dotted: str):
    """Import the longest importable prefix of ``dotted``, then get the rest as attributes.

    A module that exists but needs an optional dependency to import (``sescratch.kernels.cupy``
    without CuPy) counts as existing.
    """
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith("sescratch") and importlib.util.find_spec(module):
                return None  # e.g. the CuPy kernels: present, importable where CuPy is
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_mentioned_sescratch_names_exist(page):
    text = page.read_text(encoding="utf-8")
    names = {m for span in _code_spans(text) for m in re.findall(r"\bsescratch(?:\.\w+)+", span)}
    names |= set(re.findall(r"^::: (sescratch[\w.]*)", text, flags=re.M))
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{name} ({exc})")
    assert not missing, f"{page.name} mentions names that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_mentioned_files_exist(page):
    text = page.read_text(encoding="utf-8")
    paths = {m for span in _code_spans(text) for m in REPO_PATH.findall(span)}
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"{page.name} mentions files that do not exist: {missing}"


def _subcommands(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return action.choices
    return None


def _check_command(tokens: list[str], root_parser) -> list[str]:
    """Problems with ``sescratch <tokens>``: unknown sub-commands and unknown options."""
    problems, parser, expect_command = [], root_parser, True
    for token in tokens:
        if token in ("…", "...") or token.startswith(("<", "$")):
            expect_command = False
            continue
        if token.startswith("-"):
            option = token.split("=", 1)[0]
            if option not in parser._option_string_actions:
                problems.append(f"unknown option {option} of '{parser.prog}'")
            expect_command = False
            continue
        commands = _subcommands(parser)
        if expect_command and commands is not None:
            if token not in commands:
                problems.append(f"unknown command {token!r} of '{parser.prog}' (has {sorted(commands)})")
                return problems
            parser = commands[token]
            continue
        expect_command = False
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_mentioned_commands_exist(page):
    from sescratch.cli import build_parser

    parser = build_parser()
    problems = []
    for span in _code_spans(page.read_text(encoding="utf-8")):
        for match in re.finditer(r"(?:^|[;&|(]\s*|^\s*)sescratch((?: [^#;&|]*)?)", span.split(" #")[0]):
            tokens = shlex.split(match.group(1).replace("\\", " "))
            problems += [f"`sescratch{match.group(1)}`: {p}" for p in _check_command(tokens, parser)]
    assert not problems, f"{page.name}: {problems}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_mentioned_models_exist(page):
    from sescratch.models import list_models
    from sescratch.train import list_pretrained

    known = set(list_models()) | set(list_pretrained())  # checkpoint names look like model names
    mentioned = {m for span in _code_spans(page.read_text(encoding="utf-8"))
                 for m in re.findall(r"\b((?:se_)?res(?:net|next)\w*|senet154)\b", span)}
    assert not mentioned - known, f"{page.name} mentions unknown models: {sorted(mentioned - known)}"


@pytest.mark.parametrize("name", RUNNABLE_PAGES)
def test_python_examples_run(name, tmp_path, monkeypatch):
    text = (DOCS / name).read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)
    assert blocks, f"{name} has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{name} (python block {i + 1})", "exec"), namespace)
