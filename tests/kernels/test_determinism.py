"""Kernels whose results must not depend on the run: the basis of bit-exact resume on a GPU.

* The max-pool backward adds each plane's ``dy`` to their winners in output order, on every
  family, so with overlapping windows (stride < kernel) float32 sums come out bit for bit the
  same as a plain loop in that order (CuPy: no ``atomicAdd``, whose order varies).
* Every kernel of a training step, called twice on the same inputs, returns the same bits.
"""
import numpy as np
import pytest

from sescratch import ops
from tests.helpers import KERNEL_FAMILIES, family_modules, to_numpy


def _ordered_scatter(dy, argmax, H, W):
    """dx of max pooling by a plain loop over each plane's outputs, in the dtype of dy."""
    N, C = dy.shape[:2]
    dx = np.zeros((N * C, H * W), dtype=dy.dtype)
    for p, (d, a) in enumerate(zip(dy.reshape(N * C, -1), argmax.reshape(N * C, -1))):
        for g, i in zip(d, a):
            if i >= 0:
                dx[p, i] += g  # a dtype add, one rounding each, in output order
    return dx.reshape(N, C, H, W)


@pytest.mark.parametrize("family", KERNEL_FAMILIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p", [(3, 1, 1), (3, 2, 1), (2, 1, 0)])
def test_max_pool_backward_sums_in_output_order(family, dtype, k, s, p):
    rng = np.random.default_rng(7)
    x = np.round(rng.standard_normal((2, 3, 9, 8)), 1).astype(dtype)  # ties: shared winners
    _, argmax = ops.max_pool2d_forward_reference(x, k, k, s, s, p, p)
    dy = rng.standard_normal(argmax.shape).astype(dtype)
    kernels, xp = family_modules(family)
    dx = kernels["max_pool2d_backward"](xp.asarray(dy), xp.asarray(argmax), 9, 8)
    np.testing.assert_array_equal(to_numpy(dx), _ordered_scatter(dy, argmax, 9, 8))


def _step_kernels(K, xp, rng):
    """Every training-step kernel once on fixed inputs; the outputs as host arrays."""
    r = lambda *shape: xp.asarray(rng.standard_normal(shape).astype(np.float32))  # noqa: E731
    x, w, dy = r(4, 8, 9, 9), r(8, 8, 3, 3), r(4, 8, 9, 9)
    g, beta = r(8), r(8)
    outs = [K["conv2d_forward"](x, w, None, (1, 1), (1, 1), 1),
            *K["conv2d_backward"](dy, x, w, (1, 1), (1, 1), 1, False)[:2]]
    y, mean, var = K["batchnorm2d_forward"](x, g, beta, 1e-5)
    inv_std = (1 / xp.sqrt(var + 1e-5)).astype(np.float32)
    outs += [y, mean, var, *K["batchnorm2d_backward"](dy, x, mean.astype(np.float32), inv_std, g)]
    pooled, argmax = K["max_pool2d_forward"](x, 3, 3, 2, 2, 1, 1)
    outs += [pooled, K["max_pool2d_backward"](r(*pooled.shape), argmax, 9, 9)]
    z = K["global_avg_pool_forward"](x)
    outs += [z, *K["se_scale_backward"](dy, x, z)]
    p, b = r(8, 8, 3, 3), xp.zeros((8, 8, 3, 3), dtype=np.float32)
    K["sgd_update"](p, w, b, 0.1, 0.9, 0.0, 5e-4, True, True)
    outs += [p, b]
    return [to_numpy(o) for o in outs]


@pytest.mark.parametrize("family", KERNEL_FAMILIES)
def test_training_step_kernels_repeat_bit_for_bit(family):
    K, xp = family_modules(family)
    first = _step_kernels(K, xp, np.random.default_rng(3))
    second = _step_kernels(K, xp, np.random.default_rng(3))
    for i, (a, b) in enumerate(zip(first, second)):
        np.testing.assert_array_equal(a, b, err_msg=f"output {i}")
