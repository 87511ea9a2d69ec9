"""Each op gives the same forward and gradients with its fast kernel as with its NumPy code.

``test_kernels.py`` checks each kernel against its formula; this checks the other side of the
hook: that the op calls the kernel with the arguments and semantics it expects. The op runs
under ``backend.use("numpy")`` (reference) and under the Numba family / on CuPy.
"""
import numpy as np
import pytest

from sescratch import backend
from tests.helpers import to_numpy

ops = pytest.importorskip("sescratch.ops")

TOL = {np.float64: 1e-10, np.float32: 1e-4}
FAMILIES = [
    "numba",
    pytest.param(
        "cupy",
        marks=pytest.mark.skipif(not backend.cupy_available(), reason="CuPy with a GPU is not available"),
    ),
]


def run(family, fn, arrays):
    """``fn(*arrays)`` with the family's kernels: NumPy arrays for numpy/numba, CuPy for cupy."""
    if family == "cupy":
        import cupy

        with backend.use("numpy"):
            return fn(*[cupy.asarray(a) for a in arrays])
    with backend.use(family):
        return fn(*arrays)


def compare(fast, reference, dtype):
    fast, reference = tuple(fast), tuple(reference)
    assert len(fast) == len(reference)
    for i, (a, b) in enumerate(zip(fast, reference)):
        a, b = to_numpy(a), to_numpy(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (i, a.dtype, b.dtype, a.shape, b.shape)
        if a.dtype.kind in "iu":
            np.testing.assert_array_equal(a, b)
            continue
        error = np.linalg.norm(a.astype(np.float64) - b) / max(np.linalg.norm(b.astype(np.float64)), 1e-300)
        assert error <= TOL[dtype], f"output {i}: relative error {error:.3g}"


def batchnorm_round_trip(x, gamma, beta, dy):
    y, cache = ops.batchnorm2d_forward(x, gamma, beta, None, None, training=True)
    return (y, *ops.batchnorm2d_backward(dy, cache))


def batchnorm_eval_round_trip(x, gamma, beta, dy):
    xp = backend.get_array_module(x)
    mean, var = xp.linspace(-1, 1, x.shape[1]), xp.linspace(0.5, 2, x.shape[1])
    y, cache = ops.batchnorm2d_forward(x, gamma, beta, mean, var, training=False)
    return (y, *ops.batchnorm2d_backward(dy, cache))


def squeeze_round_trip(x, dz):
    z, cache = ops.global_avg_pool_forward(x)
    return z, ops.global_avg_pool_backward(dz, cache)


def scale_round_trip(u, s, dy):
    y, cache = ops.se_scale_forward(u, s)
    return (y, *ops.se_scale_backward(dy, cache))


def relu_round_trip(x, dy):
    y, cache = ops.relu_forward(x)
    return y, ops.relu_backward(dy, cache)


def max_pool_round_trip(x, dy):
    y, cache = ops.max_pool2d_forward(x, 3, stride=2, padding=1)
    return y, ops.max_pool2d_backward(dy, cache)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ops_agree_with_and_without_kernels(family, dtype):
    rng = np.random.default_rng(7)
    shape, (N, C, H, W) = (4, 6, 7, 5), (4, 6, 7, 5)

    def r(*s):
        return rng.standard_normal(s).astype(dtype)

    cases = {
        "batchnorm2d": (batchnorm_round_trip, [r(*shape) + 2, r(C), r(C), r(*shape)]),
        "batchnorm2d eval": (batchnorm_eval_round_trip, [r(*shape), r(C), r(C), r(*shape)]),
        "global_avg_pool": (squeeze_round_trip, [r(*shape), r(N, C)]),
        "se_scale": (scale_round_trip, [r(*shape), r(N, C), r(*shape)]),
        "relu": (relu_round_trip, [r(*shape), r(*shape)]),
        "max_pool2d": (max_pool_round_trip, [r(*shape), r(N, C, 4, 3)]),
    }
    for name, (fn, arrays) in cases.items():
        with backend.use("numpy"):
            reference = fn(*arrays)
        try:
            compare(run(family, fn, arrays), reference, dtype)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None


def test_numba_family_really_calls_the_kernels(monkeypatch):
    """Guard against a hook that silently never fires: count kernel calls."""
    from sescratch.kernels import numba as K

    calls = []
    for name in ("bn_train_forward", "bn_train_backward", "global_avg_pool", "se_scale",
                 "se_scale_backward", "relu", "relu_backward", "max_pool2d", "max_pool2d_backward"):
        original = getattr(K, name)
        monkeypatch.setattr(K, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    monkeypatch.setattr(backend, "_kernel_cache", {})
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 4, 4))
    with backend.use("numba"):
        batchnorm_round_trip(x, np.ones(3), np.zeros(3), dy)
        scale_round_trip(x, rng.standard_normal((2, 3)), dy)
        relu_round_trip(x, dy)
        max_pool_round_trip(x, rng.standard_normal((2, 3, 2, 2)))
        ops.global_avg_pool_forward(x)
    assert set(calls) == {"bn_train_forward", "bn_train_backward", "global_avg_pool", "se_scale",
                          "se_scale_backward", "relu", "relu_backward", "max_pool2d",
                          "max_pool2d_backward"}
