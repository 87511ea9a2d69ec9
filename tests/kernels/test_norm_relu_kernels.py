"""The fused batch norm + (residual) + ReLU kernels against their formula, on hypothesis shapes.

As ``test_kernels.py``: the oracle is the formula in float64 with NumPy on the very values the
kernel sees, agreement normwise relative within ``tests.helpers.KERNEL_TOL``, for the Numba family
and CuPy (skipped without a GPU). The ops' own tests (``tests/ops/test_batchnorm_relu.py``) check
the gradients against finite differences and PyTorch.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import DTYPES, KERNEL_FAMILIES as FAMILIES, family_modules as kernels, to_numpy
from tests.helpers import assert_kernel_close as assert_close
from tests.kernels.test_kernels import batchnorm_backward64, draw, nchw, per_channel, seeds


def _bn64(x64, gamma64, beta64, eps):
    mean, var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    return per_channel(gamma64 / np.sqrt(var + eps)) * (x64 - per_channel(mean)) + per_channel(beta64), mean, var


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("residual", [False, True], ids=["relu", "add_relu"])
@given(shape=nchw, seed=seeds, offset=st.sampled_from([0.0, 3.0]))
def test_batchnorm2d_relu_forward(family, dtype, residual, shape, seed, offset):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    x, x64 = draw(rng, shape, dtype, offset)
    gamma, gamma64 = draw(rng, shape[1], dtype)
    beta, beta64 = draw(rng, shape[1], dtype)
    r, r64 = draw(rng, shape, dtype) if residual else (None, 0.0)
    z, mean, var = _bn64(x64, gamma64, beta64, 1e-5)
    y = np.maximum(z + r64, 0)
    y_k, mean_k, var_k = K["batchnorm2d_relu_forward"](
        xp.asarray(x), xp.asarray(gamma), xp.asarray(beta), 1e-5, None if r is None else xp.asarray(r))
    assert_close(mean_k, mean, np.float64, scale=1.0, what="mean")
    assert_close(var_k, var, np.float64, scale=1e-12, what="var")
    assert_close(y_k, y, dtype, scale=np.linalg.norm(z) + np.linalg.norm(r64), what="y")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("residual", [False, True], ids=["relu", "add_relu"])
@given(shape=nchw, seed=seeds)
def test_batchnorm2d_relu_backward(family, dtype, residual, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    x, x64 = draw(rng, shape, dtype, 1.0)
    y, y64 = draw(rng, shape, dtype)  # any output: only its sign (the ReLU's mask) matters
    dy, dy64 = draw(rng, shape, dtype)
    gamma, gamma64 = draw(rng, shape[1], dtype)
    dz = np.where(y64 > 0, dy64, 0.0)  # through the ReLU
    mean, inv_std, dx, dgamma, dbeta, k = batchnorm_backward64(dz, x64, gamma64, dtype)
    dx_k, dgamma_k, dbeta_k, dr_k = K["batchnorm2d_relu_backward"](
        xp.asarray(dy), xp.asarray(y), xp.asarray(x), xp.asarray(mean), xp.asarray(inv_std),
        xp.asarray(gamma), residual)
    scale = np.linalg.norm(dy64)
    assert_close(dx_k, dx, dtype, scale=np.linalg.norm(k * dy64), what="dx")
    assert_close(dgamma_k, dgamma, dtype, scale=scale, what="dgamma")
    assert_close(dbeta_k, dbeta, dtype, scale=scale, what="dbeta")
    if residual:
        np.testing.assert_array_equal(to_numpy(dr_k), np.where(y > 0, dy, 0).astype(dtype))
    else:
        assert dr_k is None


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("residual", [False, True], ids=["relu", "add_relu"])
@given(shape=nchw, seed=seeds)
def test_batchnorm2d_eval_relu_forward(family, dtype, residual, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    x, x64 = draw(rng, shape, dtype)
    scale, scale64 = draw(rng, shape[1], dtype)
    shift, shift64 = draw(rng, shape[1], dtype)
    r, r64 = draw(rng, shape, dtype) if residual else (None, 0.0)
    z = x64 * per_channel(scale64) + per_channel(shift64)
    y_k = K["batchnorm2d_eval_relu_forward"](xp.asarray(x), xp.asarray(scale), xp.asarray(shift),
                                            None if r is None else xp.asarray(r))
    assert_close(y_k, np.maximum(z + r64, 0), dtype, scale=np.linalg.norm(z) + np.linalg.norm(r64))


@pytest.mark.parametrize("family", FAMILIES)
def test_fused_relu_keeps_nan_like_maximum(family):
    K, xp = kernels(family)
    x = np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2)
    r = np.zeros_like(x)
    r[0, 0, 0, 1] = np.nan
    ones, zeros = np.ones(1, np.float32), np.zeros(1, np.float32)
    y, _, _ = K["batchnorm2d_relu_forward"](xp.asarray(x), xp.asarray(ones), xp.asarray(zeros), 1e-5, xp.asarray(r))
    y = to_numpy(y)
    assert np.isnan(y[0, 0, 0, 1]) and np.isfinite(np.delete(y.ravel(), 1)).all()
    y = to_numpy(K["batchnorm2d_eval_relu_forward"](xp.asarray(x), xp.asarray(ones), xp.asarray(zeros), xp.asarray(r)))
    assert np.isnan(y[0, 0, 0, 1]) and (y.ravel()[2:] == x.ravel()[2:]).all()
