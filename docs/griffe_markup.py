"""A griffe extension for the API reference: reST habits in docstrings, read as Markdown.

mkdocstrings renders docstrings as Markdown. Some sescratch docstrings carry reST markup that
would show up verbatim there, so each docstring is rewritten once, before it is parsed:

* a role becomes inline code: ``:mod:`sescratch.kernels.numba``` -> ```sescratch.kernels.numba```;
  ``~`` keeps the last dotted component, as in Sphinx; ``text <target>`` keeps ``text``;
* ``:math:`x``` becomes ``$x$``, and a ``.. math::`` directive (its argument and the lines
  indented under it) becomes a display formula ``$$ ... $$``, both for pymdownx.arithmatex;
* a paragraph ending in ``::`` (a reST literal block follows, indented) ends in ``:``, and a
  lone ``::`` goes: the indented block is a Markdown code block already;
* the first paragraph of a ``Notation`` section, when it is a table of symbols laid out in
  columns, keeps its line breaks and columns (a ``text`` code block);
* a reST simple table (columns framed by ``=====  =====`` rules) becomes a Markdown table; a row
  with an empty first cell continues the row above;
* ````docs/derivations/<name>.md```` becomes a link to that page of the site (a missing page is
  then a broken link, which the strict build reports).

Loaded by mkdocs.yml (python handler, ``extensions: [docs/griffe_markup.py:SphinxMarkup]``).
"""
from __future__ import annotations

import re
import textwrap

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|attr|data|exc|obj|const|term|ref):`([^`]+)`")
INLINE_MATH = re.compile(r":math:`([^`]+)`")
MATH = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)$")
NOTATION = re.compile(r"^[ \t]*Notation[ \t]*$")
DASHES = re.compile(r"^[ \t]*-{3,}[ \t]*$")
COLUMNS = re.compile(r"\S {3,}\S")
TABLE_RULE = re.compile(r"^[ \t]*=+(?: +=+)+[ \t]*$")
DERIVATION_PAGE = re.compile(r"``docs/derivations/([\w-]+\.md)``")


def _role(match: re.Match) -> str:
    text = match.group(1).strip()
    labelled = re.fullmatch(r"(.+?)\s*<[^>]+>", text)
    if labelled:
        return f"`{labelled.group(1)}`"
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return f"`{text}`"


def _prose(line: str) -> str:
    """One line of running text: roles, inline math, derivation links, a trailing ``::``."""
    line = ROLE.sub(_role, INLINE_MATH.sub(r"$\1$", line))
    line = DERIVATION_PAGE.sub(r"[`docs/derivations/\1`](../derivations/\1)", line)
    if line.strip() == "::":
        return ""
    if line.rstrip().endswith("::"):
        return line.rstrip()[:-1]
    return line


def _indent_width(line: str) -> int:
    return len(line) - len(line.lstrip())


def _notation(lines: list[str], i: int, out: list[str]) -> int:
    """Copy a ``Notation`` header and its first paragraph from ``lines[i]``; return the next index."""
    out += lines[i:i + 2]
    i += 2
    table: list[str] = []
    while i < len(lines) and lines[i].strip():
        table.append(lines[i])
        i += 1
    if any(COLUMNS.search(line) for line in table):
        indent = re.match(r"[ \t]*", table[0]).group(0)
        out += [f"{indent}```text", *table, f"{indent}```"]
    else:
        out += [_prose(line) for line in table]
    return i


def _math(lines: list[str], i: int, out: list[str]) -> int:
    """Rewrite the ``.. math::`` directive at ``lines[i]`` as ``$$ ... $$``; return the next index."""
    match = MATH.match(lines[i])
    indent = match.group("indent")
    body = [match.group("first").strip()] if match.group("first").strip() else []
    i += 1
    block: list[str] = []
    while i < len(lines) and (not lines[i].strip() or _indent_width(lines[i]) > len(indent)):
        block.append(lines[i])
        i += 1
    while block and not block[-1].strip():  # trailing blank lines stay outside the formula
        block.pop()
        i -= 1
    body += [line.strip() for line in textwrap.dedent("\n".join(block)).splitlines() if line.strip()]
    out += [f"{indent}$$", *(f"{indent}{line}" for line in body), f"{indent}$$"]
    return i


def _table(lines: list[str], i: int, out: list[str]) -> int:
    """Rewrite the reST simple table starting at ``lines[i]`` as Markdown; return the next index."""
    rule = lines[i]
    spans = [m.span() for m in re.finditer(r"=+", rule)]
    bounds = [(start, spans[k + 1][0] if k + 1 < len(spans) else None) for k, (start, _) in enumerate(spans)]
    rows: list[list[str]] = []
    rules_seen, i = 1, i + 1
    header_rows = None
    while i < len(lines) and rules_seen < 3:
        line = lines[i]
        i += 1
        if line.strip() == rule.strip():
            rules_seen += 1
            if rules_seen == 2:
                header_rows = len(rows)
            continue
        cells = [line[a:b].strip() if b is not None else line[a:].strip() for a, b in bounds]
        if rows and not cells[0] and header_rows is not None:
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells)]
        else:
            rows.append(cells)
    indent = re.match(r"[ \t]*", rule).group(0)
    header, body = rows[:header_rows or 1], rows[header_rows or 1:]
    header = [" ".join(col).strip() for col in zip(*header)]
    out.append("")
    out.append(indent + "| " + " | ".join(_prose(c) for c in header) + " |")
    out.append(indent + "|" + "---|" * len(header))
    for row in body:
        out.append(indent + "| " + " | ".join(_prose(c).replace("|", "\\|") for c in row) + " |")
    out.append("")
    return i


def convert(text: str) -> str:
    """Return the docstring ``text`` with its reST markup rewritten as Markdown."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if NOTATION.match(lines[i]) and i + 1 < len(lines) and DASHES.match(lines[i + 1]):
            i = _notation(lines, i, out)
        elif TABLE_RULE.match(lines[i]):
            i = _table(lines, i, out)
        elif MATH.match(lines[i]):
            i = _math(lines, i, out)
        else:
            out.append(_prose(lines[i]))
            i += 1
    return "\n".join(out)


class SphinxMarkup(griffe.Extension):
    """Rewrite each docstring once, when griffe creates the object that owns it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
