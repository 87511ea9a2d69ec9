"""The four passes of the fused SE-ResNet block tail (sescratch.ops.bn_se_add_relu) against their
formulas in float64, on hypothesis shapes, for the Numba family and CuPy (skipped without a GPU).
Agreement normwise relative within ``tests.helpers.KERNEL_TOL``; the op's own tests check the
algebra that combines them (``tests/ops/test_bn_se_add_relu.py``)."""
import numpy as np
import pytest
from hypothesis import given

from tests.helpers import DTYPES, KERNEL_FAMILIES as FAMILIES, family_modules as kernels, to_numpy
from tests.helpers import assert_kernel_close as assert_close
from tests.kernels.test_kernels import draw, nchw, per_channel, seeds


def plane(a):
    return a[:, :, None, None]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_batchnorm2d_plane_statistics(family, dtype, shape, seed):
    K, xp = kernels(family)
    x, x64 = draw(np.random.default_rng(seed), shape, dtype, 50.0)  # a large mean: no cancellation
    pm = x64.mean(axis=(2, 3))
    m2 = ((x64 - plane(pm)) ** 2).sum(axis=(2, 3))
    pm_k, m2_k = K["batchnorm2d_plane_statistics"](xp.asarray(x))
    assert_close(pm_k, pm, np.float64, scale=1.0, what="plane means")
    assert_close(m2_k, m2, np.float64, scale=1e-12, what="plane sums of squares")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_plane_affine_add_relu(family, dtype, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    x, x64 = draw(rng, shape, dtype)
    r, r64 = draw(rng, shape, dtype)
    A, B = rng.standard_normal(shape[:2]), rng.standard_normal(shape[:2])
    z = plane(A) * x64 + plane(B) + r64
    y_k = K["plane_affine_add_relu"](xp.asarray(x), xp.asarray(A), xp.asarray(B), xp.asarray(r))
    assert_close(y_k, np.maximum(z, 0), dtype, scale=np.linalg.norm(plane(A) * x64) + np.linalg.norm(r64))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_relu_plane_sums(family, dtype, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    dy, dy64 = draw(rng, shape, dtype)
    y, _ = draw(rng, shape, dtype)  # only its sign matters
    x, x64 = draw(rng, shape, dtype, 1.0)
    mean = rng.standard_normal(shape[1])
    dq = np.where(y > 0, dy64, 0.0)
    dq_k, S1_k, S2_k = K["relu_plane_sums"](xp.asarray(dy), xp.asarray(y), xp.asarray(x), xp.asarray(mean))
    np.testing.assert_array_equal(to_numpy(dq_k), np.where(y > 0, dy, 0).astype(dtype))
    scale = np.linalg.norm(dy64) * (1 + np.abs(x64).max())
    # the sums are float64 whatever the maps' dtype (they are exact sums of the values seen)
    assert_close(S1_k, dq.sum(axis=(2, 3)), np.float64, scale=np.linalg.norm(dy64), what="S1")
    assert_close(S2_k, (dq * (x64 - per_channel(mean))).sum(axis=(2, 3)), np.float64, scale=scale, what="S2")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_batchnorm2d_scaled_backward_dx(family, dtype, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    dq, dq64 = draw(rng, shape, dtype)
    x, x64 = draw(rng, shape, dtype, 1.0)
    N, C = shape[:2]
    mean, k, dbm, dgm = (rng.standard_normal(C) for _ in range(4))
    inv_std = rng.uniform(0.5, 2.0, C)
    s, c = rng.uniform(0, 1, (N, C)), rng.standard_normal((N, C))
    xhat = (x64 - per_channel(mean)) * per_channel(inv_std)
    dx = per_channel(k) * (plane(s) * dq64 + plane(c) - per_channel(dbm) - xhat * per_channel(dgm))
    dx_k = K["batchnorm2d_scaled_backward_dx"](*(xp.asarray(a) for a in (dq, x, mean, k, s, c, dbm, dgm, inv_std)))
    assert_close(dx_k, dx, dtype, scale=np.linalg.norm(dx) + np.linalg.norm(xhat), what="dx")
