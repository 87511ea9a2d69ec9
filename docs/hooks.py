"""MkDocs hooks for the sescratch site (loaded by ``hooks:`` in mkdocs.yml).

The tutorials are notebooks at the repository root (``tutorials/NN_name.ipynb``), outside the
docs directory, so that they run where a learner opens them. These hooks make them pages:

* ``on_config``: insert every ``tutorials/NN_*.ipynb`` into the nav section "Tutorials" (after its
  overview page, before the exercises), in
  number order, titled ``NN · <first heading of the notebook>``; append any page of
  ``docs/derivations/`` that the nav does not list yet to "Derivations".
* ``on_files``: add the notebooks to the site's files as ``tutorials/NN_name.ipynb``, before
  mkdocs-jupyter turns them into pages (rendered from their stored outputs, never executed).
* ``on_page_markdown``: ``[text](tutorial:NN)`` becomes a link to tutorial NN, so pages refer
  to tutorials by number and survive a renamed notebook; ``<!-- tutorials-table -->`` becomes a
  table of all tutorials. A number with no notebook is a build error (strict mode).
* ``on_page_markdown`` also turns inline code naming a sescratch object (```sescratch.ops.conv2d_forward```)
  into a link to its entry in the API reference: a module with its own page (``docs/api/*.md``
  titled ``# sescratch.x``) links to that page, anything else goes through mkdocs-autorefs as an
  *optional* reference (a name without an entry stays plain code, without a warning).
* ``on_page_content``: point the table of contents of a notebook page at its headings.
  mkdocs-jupyter slugs the headings from the notebook's Markdown without their inline code
  (``#3-sescratchs-is-a-cross-correlation``) while nbconvert's ids keep it
  (``3-sescratchs-conv2d_forward-is-a-cross-correlation``): such an entry gets the id of the
  next heading whose id contains its slug's characters in order.
* ``on_post_page``: drop the MathJax 2 loader that nbconvert writes into each notebook page
  (``custom_mathjax_url: ""`` leaves an empty ``<script src="">``); the site's MathJax 3
  (mkdocs.yml ``extra_javascript``, configured in docs/javascripts/mathjax.js) typesets the
  notebooks' ``$...$`` too.
"""
from __future__ import annotations

import json
import logging
import posixpath
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.sescratch")

TUTORIALS_SECTION = "Tutorials"
DERIVATIONS_SECTION = "Derivations"
TUTORIAL_NAME = re.compile(r"^(\d{2})_[\w-]+\.ipynb$")
TUTORIAL_LINK = re.compile(r"\]\(tutorial:(\d{2})(#[\w-]*)?\)")
TUTORIALS_TABLE = "<!-- tutorials-table -->"
# A fenced code block (left alone), or inline code naming a sescratch object outside link text.
FENCE_OR_NAME = re.compile(r"^(?P<fence>```.*?^```)|(?<!\[)`(?P<name>sescratch(?:\.\w+)+)`", re.S | re.M)
HEADING_ID = re.compile(r"<h[1-6][^>]*\bid=\"([^\"]+)\"")
NBCONVERT_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)


def _repo_root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def tutorials(config) -> dict[str, Path]:
    """``{"00": path, ...}`` for the notebooks ``tutorials/NN_*.ipynb``, sorted by number."""
    found: dict[str, Path] = {}
    for path in sorted((_repo_root(config) / "tutorials").glob("*.ipynb")):
        match = TUTORIAL_NAME.match(path.name)
        if match is None:
            continue
        number = match.group(1)
        if number in found:
            raise ValueError(f"two tutorials numbered {number}: {found[number].name}, {path.name}")
        found[number] = path
    return found


def notebook_title(path: Path) -> str:
    """The first Markdown heading of a notebook (without the #), or its file name."""
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        source = "".join(cell.get("source", []))
        for line in source.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return path.stem


def _title(number: str, path: Path) -> str:
    title = notebook_title(path)
    title = re.sub(r"^(Tutorial\s*)?0*\d+\s*[:.·—-]\s*", "", title)  # drop a repeated number
    title = re.sub(r"\$([^$]+)\$", r"\1", title)  # "$r$" -> "r": navigation titles are not typeset
    return f"{number} · {title}"


def _section(nav: list, name: str) -> list:
    for item in nav:
        if isinstance(item, dict) and name in item and isinstance(item[name], list):
            return item[name]
    raise ValueError(f"mkdocs.yml: the nav has no section {name!r} for docs/hooks.py to fill")


def _nav_paths(items) -> set[str]:
    paths: set[str] = set()
    for item in items:
        if isinstance(item, str):
            paths.add(item)
        elif isinstance(item, dict):
            for value in item.values():
                paths |= _nav_paths(value) if isinstance(value, list) else {value}
    return paths


def on_config(config):
    tutorial_items = _section(config.nav, TUTORIALS_SECTION)
    at = 1 if tutorial_items and isinstance(tutorial_items[0], str) else 0  # after the overview page
    for number, path in tutorials(config).items():  # and before the pages listed after it (Exercises)
        tutorial_items.insert(at, {_title(number, path): f"tutorials/{path.name}"})
        at += 1

    derivation_items = _section(config.nav, DERIVATIONS_SECTION)
    listed = _nav_paths(derivation_items)
    for path in sorted((Path(config.docs_dir) / "derivations").glob("*.md")):
        src = f"derivations/{path.name}"
        if src not in listed:
            derivation_items.append(src)
    return config


@event_priority(100)  # before mkdocs-jupyter's on_files, which wraps .ipynb files as pages
def on_files(files: Files, config) -> Files:
    root = str(_repo_root(config))
    for path in tutorials(config).values():
        # src_dir is the repository root, so the page's source is tutorials/NN_name.ipynb there
        files.append(File(f"tutorials/{path.name}", root, config.site_dir, config.use_directory_urls))
    return files


def _tutorials_table(page_src: str, config) -> str:
    rows = ["| # | tutorial |", "|---|---|"]
    for number, path in tutorials(config).items():
        link = posixpath.relpath(f"tutorials/{path.name}", posixpath.dirname(page_src) or ".")
        title = _title(number, path).split(" · ", 1)[1].replace("|", "\\|")
        rows.append(f"| {number} | [{title}]({link}) |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    page_src = page.file.src_uri
    if page_src.endswith(".ipynb"):  # a notebook's "markdown" is its JSON; mkdocs-jupyter renders it
        return markdown
    found = tutorials(config)
    if TUTORIALS_TABLE in markdown:
        markdown = markdown.replace(TUTORIALS_TABLE, _tutorials_table(page_src, config))

    def link(match: re.Match) -> str:
        number, anchor = match.group(1), match.group(2) or ""
        if number not in found:
            log.warning("%s: link to tutorial %s, but tutorials/%s_*.ipynb does not exist",
                        page_src, number, number)
            return match.group(0)
        target = posixpath.relpath(f"tutorials/{found[number].name}",
                                   posixpath.dirname(page_src) or ".")
        return f"]({target}{anchor})"

    return _link_api_names(TUTORIAL_LINK.sub(link, markdown), page_src, config)


def _api_pages(config) -> dict[str, str]:
    """``{"sescratch.backend": "api/backend.md", ...}``: the API pages titled with a module name."""
    pages = {}
    for path in sorted((Path(config.docs_dir) / "api").glob("*.md")):
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        if re.fullmatch(r"# sescratch(\.\w+)*", first.strip()):
            pages[first[2:].strip()] = f"api/{path.name}"
    return pages


def _link_api_names(markdown: str, page_src: str, config) -> str:
    """`sescratch.x.y` -> a link to its API page or entry (code fences untouched)."""
    pages = _api_pages(config)

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name is None:
            return match.group(0)
        if name in pages:
            if pages[name] == page_src:
                return match.group(0)
            return f"[`{name}`]({posixpath.relpath(pages[name], posixpath.dirname(page_src) or '.')})"
        return f'<autoref identifier="{name}" optional><code>{name}</code></autoref>'

    return FENCE_OR_NAME.sub(replace, markdown)


def _toc_links(items) -> list:
    links = []
    for item in items:
        links += [item, *_toc_links(item.children)]
    return links


def _is_subsequence(short: str, long: str) -> bool:
    rest = iter(long)
    return all(char in rest for char in short)


def on_page_content(html: str, page, config, files) -> str:
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    ids = HEADING_ID.findall(html)  # document order, as the table of contents
    start = 0
    for link in _toc_links(page.toc.items):
        if link.id in ids[start:]:
            start = ids.index(link.id, start) + 1
            continue
        match = next((i for i in range(start, len(ids)) if _is_subsequence(link.id, ids[i])), None)
        if match is None:
            log.warning("%s: the table of contents links to #%s, a heading it cannot find",
                        page.file.src_uri, link.id)
            continue
        link.id, start = ids[match], match + 1
    return html


def on_post_page(output: str, page, config) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        output = NBCONVERT_MATHJAX.sub("", output, count=1)
    return output
