"""Helpers the tests share (import as ``from tests.helpers import ...``).

The kernel tests (``tests/kernels``) take their families, tolerances and error measure from
here, so that every kernel is held to one standard; the resume tests (``tests/train``,
``tests/reliability``) compare checkpoints with :func:`assert_same_checkpoint`.
"""
import numpy as np
import pytest

from sescratch import backend
from sescratch.backend import to_numpy  # noqa: F401  (re-exported for the tests)

# Kernel families a test runs a kernel (or an op through it) under. CuPy skips cleanly without
# CuPy and a GPU; Numba is a hard dependency, so it never skips.
KERNEL_FAMILIES = [
    "numba",
    pytest.param(
        "cupy",
        marks=pytest.mark.skipif(not backend.cupy_available(), reason="CuPy with a GPU is not available"),
    ),
]
DTYPES = [np.float64, np.float32]
# Agreement of a kernel with its reference, normwise relative (see relative_error).
KERNEL_TOL = {np.float64: 1e-10, np.float32: 1e-4}


def relative_error(actual, expected, *, scale=0.0) -> float:
    """Normwise relative error ``|a - e|_2 / max(|e|_2, scale, tiny)`` in float64.

    ``scale`` gives a floor for results that may cancel to ~0 (then measure against the size of
    the terms that cancelled). Shapes must agree.
    """
    a = to_numpy(actual).astype(np.float64)
    e = to_numpy(expected).astype(np.float64)
    assert a.shape == e.shape, (a.shape, e.shape)
    denominator = max(np.linalg.norm(e), scale, np.finfo(np.float64).tiny)
    return float(np.linalg.norm(a - e) / denominator)


def assert_kernel_close(actual, expected, dtype, *, scale=0.0, what=""):
    """``actual`` has ``dtype`` and the shape of ``expected``, within :data:`KERNEL_TOL`."""
    got = to_numpy(actual)
    assert got.dtype == np.dtype(dtype), (what, got.dtype, dtype)
    error = relative_error(got, expected, scale=scale)
    assert error <= KERNEL_TOL[dtype], f"{what}: relative error {error:.3g} > {KERNEL_TOL[dtype]:g}"


def on_family(family, fn, arrays):
    """``fn(*arrays)`` run by a family: NumPy arrays under numpy/numba, CuPy arrays for cupy."""
    if family == "cupy":
        import cupy

        with backend.use("numpy"):
            return fn(*[cupy.asarray(a) for a in arrays])
    with backend.use(family):
        return fn(*arrays)


def family_modules(family):
    """(kernel table, array module) of a kernel family."""
    if family == "cupy":
        import cupy

        return backend.family_kernels("cupy"), cupy
    return backend.family_kernels("numba"), np


def assert_same_checkpoint(a, b):
    """Two checkpoint files hold bit-identical weights, optimiser state and generator state, and
    the same history (timings aside): what an uninterrupted run and a resumed one must share."""
    from sescratch.train import load_checkpoint

    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.model_state.keys() == cb.model_state.keys()
    for name in ca.model_state:
        np.testing.assert_array_equal(ca.model_state[name], cb.model_state[name], err_msg=name)
    assert ca.optim_state.keys() == cb.optim_state.keys()
    for name in ca.optim_state:
        np.testing.assert_array_equal(ca.optim_state[name], cb.optim_state[name], err_msg=name)
    assert ca.rng_state == cb.rng_state
    timing = ("epoch_time_s", "train_images_per_s", "elapsed_s")
    rows = [[{k: v for k, v in r.items() if k not in timing} for r in c.meta["history"]] for c in (ca, cb)]
    assert rows[0] == rows[1]
