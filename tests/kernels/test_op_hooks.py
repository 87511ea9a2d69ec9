"""Each op gives the same forward and gradients with its fast kernel as with its reference code.

``test_kernels.py`` checks each kernel against its formula and ``test_dispatch.py`` that the op
calls it; this checks the hook's arguments and semantics end to end: the op runs under
``backend.use("numpy")`` (reference) and under the Numba family / on CuPy.
"""
import numpy as np
import pytest

from sescratch import backend, ops
from tests.helpers import DTYPES, KERNEL_FAMILIES, KERNEL_TOL, on_family, relative_error, to_numpy


def compare(fast, reference, dtype):
    fast, reference = tuple(fast), tuple(reference)
    assert len(fast) == len(reference)
    for i, (a, b) in enumerate(zip(fast, reference)):
        a, b = to_numpy(a), to_numpy(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (i, a.dtype, b.dtype, a.shape, b.shape)
        if a.dtype.kind in "iu":
            np.testing.assert_array_equal(a, b)
            continue
        error = relative_error(a, b)
        assert error <= KERNEL_TOL[dtype], f"output {i}: relative error {error:.3g}"


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


def conv_round_trip(x, w, b, dy):
    y, cache = ops.conv2d_forward(x, w, b, stride=1, padding=1)
    return (y, *ops.conv2d_backward(dy, cache))


def se_block_round_trip(u, w1, b1, w2, b2, dy):
    y, cache = ops.se_block_forward(u, w1, b1, w2, b2)
    return (y, *ops.se_block_backward(dy, cache))


def max_pool_round_trip(x, dy):
    y, cache = ops.max_pool2d_forward(x, 3, stride=2, padding=1)
    return y, ops.max_pool2d_backward(dy, cache)


def avg_pool_round_trip(x, dy):
    y, cache = ops.avg_pool2d_forward(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    return y, ops.avg_pool2d_backward(dy, cache)


@pytest.mark.parametrize("family", KERNEL_FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
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
        "avg_pool2d": (avg_pool_round_trip, [r(*shape), r(N, C, 4, 3)]),
        "conv2d": (conv_round_trip, [r(*shape), r(5, C, 3, 3), r(5), r(N, 5, H, W)]),
        "se_block": (se_block_round_trip, [r(*shape), r(3, C), r(3) + 1, r(C, 3), r(C), r(*shape)]),
    }
    for name, (fn, arrays) in cases.items():
        with backend.use("numpy"):
            reference = fn(*arrays)
        try:
            compare(on_family(family, fn, arrays), reference, dtype)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None
