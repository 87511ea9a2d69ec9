"""Shared test set-up: hypothesis profiles and the backend fixture every op test is run under.

Profiles: ``ci`` (default; keeps the suite within a few minutes on 2 cores) and ``thorough``,
selected with ``SESCRATCH_HYPOTHESIS_PROFILE=thorough``.

Hypothesis is a ``dev`` dependency, not a run-time one: where it is not installed (a GPU
machine's own image, say) the test modules that import it are left out of the collection,
with a line in pytest's header saying which, and every other test runs.
"""
import os
import re
from pathlib import Path

import numpy as np
import pytest

from sescratch import backend

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the modules that need it are not collected (pytest_ignore_collect)
    settings = None
else:
    settings.register_profile(
        "ci",
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,
    )
    settings.register_profile(
        "thorough",
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile(os.environ.get("SESCRATCH_HYPOTHESIS_PROFILE", "ci"))

# a direct import, or one of tests.ops._ophelp (which imports hypothesis)
_IMPORTS_HYPOTHESIS = re.compile(r"^\s*(from|import) (hypothesis|tests\.ops\._ophelp)\b", re.MULTILINE)
_left_out: list[str] = []


def pytest_ignore_collect(collection_path: Path, config):
    """Without hypothesis, leave out the test modules that import it (instead of erroring)."""
    path = collection_path
    if settings is not None or path.suffix != ".py" or not path.name.startswith("test_"):
        return None
    if _IMPORTS_HYPOTHESIS.search(path.read_text(encoding="utf-8")):
        _left_out.append(path.name)
        return True
    return None


def pytest_addoption(parser, pluginmanager):
    """Without nbmake, accept the options pyproject's ``addopts`` passes to it (and run no notebook)."""
    if not pluginmanager.has_plugin("nbmake"):
        parser.addoption("--nbmake", action="store_true", help="(nbmake is not installed: ignored)")
        parser.addoption("--nbmake-timeout", default=None, help="(nbmake is not installed: ignored)")


def pytest_report_header(config):
    lines = []
    if settings is None:
        lines.append("hypothesis is not installed: the test modules that import it are not collected")
    if not config.pluginmanager.has_plugin("nbmake"):
        lines.append("nbmake is not installed: the tutorial notebooks are not run")
    return lines or None


def pytest_terminal_summary(terminalreporter):
    if _left_out:
        terminalreporter.write_line(
            f"hypothesis is not installed: {len(_left_out)} test modules not collected: "
            + ", ".join(sorted(_left_out)))

BACKENDS = ["numpy", "numba", "cupy"]


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array module of one backend, with its kernel family switched on.

    ``numpy`` runs the reference code, ``numba`` the Numba CPU kernels (NumPy arrays),
    ``cupy`` the GPU (skipped cleanly without CuPy and a GPU). Tests build inputs with NumPy
    in float64 and move them with ``xp.asarray``; compare with ``to_numpy``.
    """
    name = request.param
    if name == "cupy":
        if not backend.cupy_available():
            pytest.skip("CuPy with a GPU is not available")
        import cupy

        with backend.use("numpy"):
            yield cupy
        return
    with backend.use(name):
        yield np

