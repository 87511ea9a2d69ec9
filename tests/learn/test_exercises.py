"""The exercise notebooks and their checks: no check passes vacuously, every solution passes.

* each notebook's untouched stubs, executed as the notebook runs them, FAIL their check cell
  with an ``AssertionError`` (a stub raising NotImplementedError is reported as not implemented);
* each solution of :mod:`sescratch.learn.solutions`, put in place of the stub, PASSES the same
  check cell, on several seeds;
* every check of :mod:`sescratch.learn` is used by some notebook;
* ``pytest`` collects the solved tutorials but not the exercises (nbmake would run the stubs).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from sescratch import learn
from sescratch.learn import solutions

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = sorted((ROOT / "tutorials" / "exercises").glob("[0-9][0-9]_*.ipynb"))


def _cells(path):
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code"]


def _tag(cell):
    tags = cell.metadata.get("tags", [])
    return "stub" if "stub" in tags else "check" if "check" in tags else None


def _defined(source):
    return [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]


def _checks(path):
    """``[(stub function name, check cell source)]`` of a notebook, in order."""
    pairs, stub_names = [], []
    for cell in _cells(path):
        if _tag(cell) == "stub":
            stub_names = _defined(cell.source)
        elif _tag(cell) == "check":
            assert len(stub_names) == 1, f"{path.name}: a check cell must follow a stub of one function"
            pairs.append((stub_names[0], cell.source))
    return pairs


def test_there_are_at_least_eight_exercise_notebooks_with_a_check_after_every_stub():
    assert len(EXERCISES) >= 8
    for path in EXERCISES:
        tags = [_tag(c) for c in _cells(path) if _tag(c)]
        assert tags and tags[::2] == ["stub"] * (len(tags) // 2) and tags[1::2] == ["check"] * (len(tags) // 2), path.name


def test_every_check_is_used_by_a_notebook_and_has_a_solution():
    used = {src.split("(")[0].strip().removeprefix("learn.") for p in EXERCISES for _, src in _checks(p)}
    assert used == set(learn.__all__)
    stubs = {name for p in EXERCISES for name, _ in _checks(p)}
    assert stubs <= set(solutions.__all__)


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_untouched_stubs_fail_their_checks(path, capsys):
    namespace: dict = {}
    for cell in _cells(path):
        if _tag(cell) == "check":
            with pytest.raises(AssertionError) as info:
                exec(cell.source, namespace)
            assert "check_" in str(info.value)
            assert "OK " not in capsys.readouterr().out
        else:
            exec(cell.source, namespace)


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_solutions_pass_the_notebooks_checks(path, capsys):
    namespace: dict = {}
    for cell in _cells(path):
        if _tag(cell) != "check":
            exec(cell.source, namespace)
            continue
        for name in list(namespace):
            if hasattr(solutions, name) and callable(namespace[name]):
                namespace[name] = getattr(solutions, name)
        exec(cell.source, namespace)
        assert capsys.readouterr().out.startswith("OK check_")


@pytest.mark.parametrize("name", learn.__all__)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_solution_passes_on_other_seeds(name, seed, capsys):
    check = getattr(learn, name)
    stub = {src.split("(")[0].strip().removeprefix("learn."): fn for p in EXERCISES for fn, src in _checks(p)}[name]
    worst = check(getattr(solutions, stub), seed=seed)
    assert 0 <= worst < 1e-9
    assert capsys.readouterr().out.startswith(f"OK {name}: relative error")


@pytest.mark.slow
def test_pytest_collects_the_tutorials_but_not_the_exercises():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "tutorials"], cwd=ROOT, capture_output=True, text=True, timeout=300).stdout
    assert "exercises" not in out
    for n in range(14):
        assert f"tutorials/{n:02d}_" in out, n
