"""Shared test set-up: hypothesis profiles and the backend fixture every op test is run under.

Profiles: ``ci`` (default; keeps the suite within a few minutes on 2 cores) and ``thorough``,
selected with ``SESCRATCH_HYPOTHESIS_PROFILE=thorough``.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from sescratch import backend

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
    if name == "numba":
        pytest.importorskip("numba")
    with backend.use(name):
        yield np

