"""Every fast kernel against the formula it replaces, on hypothesis-drawn shapes.

The oracle is the op's formula evaluated in float64 with NumPy on the very values the kernel sees
(float32 inputs are widened, not redrawn). Agreement is normwise relative, within
``tests.helpers.KERNEL_TOL`` (float64 <= 1e-10, float32 <= 1e-4). Each test runs for the Numba
family and for CuPy (skipped cleanly without CuPy and a GPU); ``test_dispatch.py`` checks that
the ops really call these kernels and agree with their reference functions.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch import backend
from sescratch.ops import avg_pool2d_forward, avg_pool2d_reference, max_pool2d_forward_reference
from tests.helpers import DTYPES, KERNEL_FAMILIES as FAMILIES, family_modules as kernels, to_numpy
from tests.helpers import assert_kernel_close as assert_close


nchw = st.tuples(
    st.integers(1, 4), st.integers(1, 5), st.integers(1, 7), st.integers(1, 7)
)
seeds = st.integers(0, 2**31 - 1)


def draw(rng, shape, dtype, offset=0.0):
    """Standard normal values (plus an offset) rounded to ``dtype``, and their float64 copy."""
    a = (rng.standard_normal(shape) + offset).astype(dtype)
    return a, a.astype(np.float64)


def per_channel(v):
    return v[None, :, None, None]


def batchnorm_backward64(dz, x64, gamma64, dtype):
    """Training-mode batch norm's backward in float64 for the upstream gradient ``dz``, from the
    batch statistics as a kernel gets them (rounded to ``dtype``): mean, inv_std (those rounded
    values, to pass to the kernel), dx, dgamma, dbeta, and dx's direct factor k = gamma*inv_std."""
    mean = x64.mean(axis=(0, 2, 3)).astype(dtype)
    inv_std = (1 / np.sqrt(x64.var(axis=(0, 2, 3)) + 1e-5)).astype(dtype)
    mean64, inv_std64 = mean.astype(np.float64), inv_std.astype(np.float64)
    M = x64.size // x64.shape[1]
    xhat = (x64 - per_channel(mean64)) * per_channel(inv_std64)
    dbeta = dz.sum(axis=(0, 2, 3))
    dgamma = (dz * xhat).sum(axis=(0, 2, 3))
    k = per_channel(gamma64 * inv_std64)
    dx = k * (dz - per_channel(dbeta) / M - xhat * per_channel(dgamma) / M)
    return mean, inv_std, dx, dgamma, dbeta, k


# ---------------------------------------------------------------------------------- batch norm
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds, offset=st.sampled_from([0.0, 3.0, 100.0]))
def test_batchnorm2d_forward(family, dtype, shape, seed, offset):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    x, x64 = draw(rng, shape, dtype, offset)
    gamma, gamma64 = draw(rng, shape[1], dtype)
    beta, beta64 = draw(rng, shape[1], dtype)
    eps = 1e-5
    mean = x64.mean(axis=(0, 2, 3))  # C
    inv_std = 1 / np.sqrt(x64.var(axis=(0, 2, 3)) + eps)  # C
    y = per_channel(gamma64 * inv_std) * (x64 - per_channel(mean)) + per_channel(beta64)
    y_k, mean_k, var_k = K["batchnorm2d_forward"](xp.asarray(x), xp.asarray(gamma), xp.asarray(beta), eps)
    # the statistics come back in float64 (C,), accurate to the float64 tolerance in any dtype
    assert_close(mean_k, mean, np.float64, scale=1.0, what="mean")
    assert_close(var_k, x64.var(axis=(0, 2, 3)), np.float64, scale=1e-12, what="var")
    assert_close(1 / np.sqrt(to_numpy(var_k) + eps), inv_std, np.float64, what="inv_std")
    assert_close(y_k, y, dtype, what="y")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_batchnorm2d_backward(family, dtype, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    x, x64 = draw(rng, shape, dtype, 1.0)
    dy, dy64 = draw(rng, shape, dtype)
    gamma, gamma64 = draw(rng, shape[1], dtype)
    mean, inv_std, dx, dgamma, dbeta, k = batchnorm_backward64(dy64, x64, gamma64, dtype)
    dx_k, dgamma_k, dbeta_k = K["batchnorm2d_backward"](
        xp.asarray(dy), xp.asarray(x), xp.asarray(mean), xp.asarray(inv_std), xp.asarray(gamma)
    )
    # dx can cancel to ~0 (M = 2): measure it against the size of its direct term k*dy
    assert_close(dx_k, dx, dtype, scale=np.linalg.norm(k * dy64), what="dx")
    assert_close(dgamma_k, dgamma, dtype, scale=np.linalg.norm(dy64), what="dgamma")
    assert_close(dbeta_k, dbeta, dtype, scale=np.linalg.norm(dy64), what="dbeta")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_batchnorm2d_eval_forward(family, dtype, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    x, x64 = draw(rng, shape, dtype)
    scale, scale64 = draw(rng, shape[1], dtype)
    shift, shift64 = draw(rng, shape[1], dtype)
    y = x64 * per_channel(scale64) + per_channel(shift64)
    assert_close(K["batchnorm2d_eval_forward"](xp.asarray(x), xp.asarray(scale), xp.asarray(shift)), y, dtype)


def test_bn_statistics_are_accurate_in_float32():
    """A large mean over a small spread: E[x^2] - E[x]^2 in float32 would lose every digit."""
    K, _ = kernels("numba")
    rng = np.random.default_rng(0)
    x = (1e4 + 1e-2 * rng.standard_normal((8, 3, 16, 16))).astype(np.float32)
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    _, _, var = K["batchnorm2d_forward"](x, ones, zeros, 0.0)
    expected = x.astype(np.float64).var(axis=(0, 2, 3))
    np.testing.assert_allclose(var, expected, rtol=1e-8)


# --------------------------------------------------------------------------- squeeze and scale
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_global_avg_pool(family, dtype, shape, seed):
    K, xp = kernels(family)
    x, x64 = draw(np.random.default_rng(seed), shape, dtype, 0.5)
    assert_close(K["global_avg_pool_forward"](xp.asarray(x)), x64.mean(axis=(2, 3)), dtype)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_global_avg_pool_backward(family, dtype, shape, seed):
    K, xp = kernels(family)
    N, C, H, W = shape
    dz, dz64 = draw(np.random.default_rng(seed), (N, C), dtype)
    dx = np.broadcast_to(dz64[:, :, None, None] / (H * W), shape)
    assert_close(K["global_avg_pool_backward"](xp.asarray(dz), H, W), dx, dtype)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_global_avg_pool_backward_into(family, dtype, shape, seed):
    """Bit for bit ``into + fill(dz / (H W))``: the SE block's fan-out sum, made in place."""
    K, xp = kernels(family)
    N, C, H, W = shape
    rng = np.random.default_rng(seed)
    (dz, _), (g, _) = draw(rng, (N, C), dtype), draw(rng, shape, dtype)
    expected = g + (dz / dz.dtype.type(H * W))[:, :, None, None]
    into = xp.asarray(g.copy())
    assert K["global_avg_pool_backward_into"](xp.asarray(dz), into) is into
    np.testing.assert_array_equal(to_numpy(into), expected)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_se_scale(family, dtype, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    u, u64 = draw(rng, shape, dtype)
    s, s64 = draw(rng, shape[:2], dtype)
    assert_close(K["se_scale_forward"](xp.asarray(u), xp.asarray(s)), u64 * s64[:, :, None, None], dtype)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_se_scale_backward(family, dtype, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    dy, dy64 = draw(rng, shape, dtype)
    u, u64 = draw(rng, shape, dtype)
    s, s64 = draw(rng, shape[:2], dtype)
    du_k, ds_k = K["se_scale_backward"](xp.asarray(dy), xp.asarray(u), xp.asarray(s))
    assert_close(du_k, dy64 * s64[:, :, None, None], dtype, what="du")
    ds = (dy64 * u64).sum(axis=(2, 3))
    assert_close(ds_k, ds, dtype, scale=np.linalg.norm(np.abs(dy64) * np.abs(u64)), what="ds")


# ---------------------------------------------------------------------------------- elementwise
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_relu_and_backward(family, dtype, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    x, x64 = draw(rng, shape, dtype)
    dy, dy64 = draw(rng, shape, dtype)
    y = np.maximum(x64, 0)
    assert_close(K["relu_forward"](xp.asarray(x)), y, dtype, what="relu")
    assert_close(K["relu_backward"](xp.asarray(dy), xp.asarray(y.astype(dtype))), np.where(y > 0, dy64, 0),
                 dtype, what="relu_backward")


@pytest.mark.parametrize("family", FAMILIES)
def test_relu_keeps_nan_like_maximum(family):
    K, xp = kernels(family)
    x = np.array([np.nan, -1.0, 0.0, 2.0, -np.inf, np.inf])
    y = to_numpy(K["relu_forward"](xp.asarray(x)))
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_numba_relu_is_the_same_on_either_side_of_the_serial_threshold():
    """Small arrays take the calling thread's loop, large ones the parallel one: same values."""
    from sescratch.kernels.numba import elementwise

    K, _ = kernels("numba")
    rng = np.random.default_rng(0)
    for size in (elementwise.SERIAL_BELOW - 1, elementwise.SERIAL_BELOW + 7):
        x, dy = rng.standard_normal(size), rng.standard_normal(size)
        x[::97] = np.nan
        y = K["relu_forward"](x)
        np.testing.assert_array_equal(y, np.maximum(x, 0))
        np.testing.assert_array_equal(K["relu_backward"](dy, y), np.where(y > 0, dy, 0))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_add_relu_forward(family, dtype, shape, seed):
    """(Its backward is the ReLU's: ops.add_relu_backward runs the relu_backward kernel.)"""
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    (a, a64), (b, b64) = (draw(rng, shape, dtype) for _ in range(2))
    y = np.maximum(a64 + b64, 0)
    y_k = K["add_relu_forward"](xp.asarray(a), xp.asarray(b))
    assert_close(y_k, y, dtype, what="add_relu")
    # exactly NumPy's float32/float64 result: one rounding of the sum, then the max
    np.testing.assert_array_equal(to_numpy(y_k), np.maximum(a + b, 0))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw, seed=seeds)
def test_add_into_accumulates_in_place(family, dtype, shape, seed):
    K, xp = kernels(family)
    rng = np.random.default_rng(seed)
    (t, _), (g, _) = draw(rng, shape, dtype), draw(rng, shape, dtype)
    expected = t + g
    total = xp.asarray(t.copy())
    out = K["add_into"](total, xp.asarray(g))
    assert out is total
    np.testing.assert_array_equal(to_numpy(total), expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_add_relu_keeps_nan_like_maximum(family):
    K, xp = kernels(family)
    a = np.array([np.nan, -1.0, 0.0, 2.0, -np.inf, np.inf]).reshape(1, 1, 2, 3)
    y = to_numpy(K["add_relu_forward"](xp.asarray(a), xp.asarray(np.zeros_like(a))))
    np.testing.assert_array_equal(y, np.maximum(a, 0))


# ------------------------------------------------------------------------------ fully connected
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(sizes=st.tuples(st.integers(1, 6), st.integers(1, 7), st.integers(1, 5)), bias=st.booleans(), seed=seeds)
def test_linear_forward_and_backward(family, dtype, sizes, bias, seed):
    K, xp = kernels(family)
    N, IN, OUT = sizes
    rng = np.random.default_rng(seed)
    (x, x64), (w, w64), (b, b64), (dy, dy64) = (draw(rng, s, dtype) for s in ((N, IN), (OUT, IN), (OUT,), (N, OUT)))
    y = K["linear_forward"](xp.asarray(x), xp.asarray(w), xp.asarray(b) if bias else None)
    assert_close(y, x64 @ w64.T + (b64 if bias else 0), dtype, what="linear_forward")
    dx, dw, db = K["linear_backward"](xp.asarray(dy), xp.asarray(x), xp.asarray(w), bias)
    assert_close(dx, dy64 @ w64, dtype, what="linear dx")
    assert_close(dw, dy64.T @ x64, dtype, what="linear dw")
    if bias:
        assert_close(db, dy64.sum(axis=0), dtype, what="linear db")
    else:
        assert db is None


def test_numba_linear_runs_small_products_with_openblas_on_one_thread(monkeypatch):
    """Below SMALL_PRODUCT the products run with OpenBLAS's thread count at 1 (restored after),
    above it at OpenBLAS's own; the values are the reference's bits either way."""
    from sescratch.kernels.numba import _scratch, linear
    from sescratch.ops import linear_backward_reference, linear_forward_reference

    if not _scratch.blas_controllable():
        pytest.skip("no OpenBLAS thread controls in this process")
    get = _scratch._openblas[0][0]
    seen = []

    def recording(*args, _reference=linear_forward_reference):
        seen.append(get())
        return _reference(*args)

    monkeypatch.setattr(linear, "linear_forward_reference", recording)
    rng = np.random.default_rng(0)
    before = get()
    small = rng.standard_normal((128, 64)).astype(np.float32), rng.standard_normal((4, 64)).astype(np.float32)
    y = linear.linear_forward(*small, None)
    np.testing.assert_array_equal(y, small[0] @ small[1].T)
    side = int(round((linear.SMALL_PRODUCT + 1) ** (1 / 3))) + 1  # M*N*K just above the threshold
    large = rng.standard_normal((side, side)), rng.standard_normal((side, side))
    linear.linear_forward(*large, None)
    assert seen == [1, before] and get() == before
    dx, dw, db = linear.linear_backward(small[0] @ small[1].T, *small, False)
    ref = linear_backward_reference(small[0] @ small[1].T, *small, False)
    np.testing.assert_array_equal(dx, ref[0])
    np.testing.assert_array_equal(dw, ref[1])
    assert db is None and get() == before


# -------------------------------------------------------------------------------------- max pool
def max_pool_formula(x, KH, KW, SH, SW, PH, PW):
    """Pad with -inf, take each window's first maximum (``argmax`` of the flattened window)."""
    N, C, H, W = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (KH, KW), axis=(2, 3))
    windows = windows[:, :, ::SH, ::SW]  # N,C,OH,OW,KH,KW
    OH, OW = windows.shape[2:4]
    flat = windows.reshape(N, C, OH, OW, KH * KW)
    k = flat.argmax(axis=-1)  # N,C,OH,OW
    y = np.take_along_axis(flat, k[..., None], axis=-1)[..., 0]
    h = np.arange(OH)[:, None] * SH - PH + k // KW
    w = np.arange(OW)[None, :] * SW - PW + k % KW
    return y, h * W + w


pool_geometry = st.integers(1, 3).flatmap(
    lambda KH: st.integers(1, 3).flatmap(
        lambda KW: st.tuples(
            st.just(KH), st.just(KW), st.integers(1, 3), st.integers(1, 3),
            st.integers(0, KH // 2), st.integers(0, KW // 2),
            st.integers(1, 3), st.integers(1, 3), st.integers(max(KH, 1), 9), st.integers(max(KW, 1), 9),
        )
    )
)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(geometry=pool_geometry, seed=seeds, ties=st.booleans())
def test_max_pool2d_and_backward(family, dtype, geometry, seed, ties):
    K, xp = kernels(family)
    KH, KW, SH, SW, PH, PW, N, C, H, W = geometry
    rng = np.random.default_rng(seed)
    x, x64 = draw(rng, (N, C, H, W), dtype)
    if ties:  # few distinct values: the first maximum of a window must win
        x = np.round(x).astype(dtype)
        x64 = x.astype(np.float64)
    y, argmax = max_pool_formula(x64, KH, KW, SH, SW, PH, PW)
    y_k, argmax_k = K["max_pool2d_forward"](xp.asarray(x), KH, KW, SH, SW, PH, PW)
    assert_close(y_k, y, dtype, scale=1.0, what="y")
    np.testing.assert_array_equal(to_numpy(argmax_k), argmax)
    assert to_numpy(argmax_k).dtype == np.int64

    dy, dy64 = draw(rng, y.shape, dtype)
    dx = np.zeros((N * C, H * W))
    planes = np.arange(N * C)[:, None]
    np.add.at(dx, (planes, argmax.reshape(N * C, -1)), dy64.reshape(N * C, -1))
    dx_k = K["max_pool2d_backward"](xp.asarray(dy), xp.asarray(argmax), H, W)
    assert_close(dx_k, dx.reshape(N, C, H, W), dtype, scale=np.linalg.norm(dy64), what="dx")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_max_pool2d_windows_of_minus_infinity_keep_their_first_cell(family, dtype, stride):
    """Most inputs -inf, so that whole windows are: their argmax is the window's first cell
    inside the image (never the padding), as the NumPy reference has it."""
    K, xp = kernels(family)
    rng = np.random.default_rng(10 + stride)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    x[rng.random(x.shape) < 0.85] = -np.inf
    for ceil_mode in (False, True):
        y, argmax = max_pool2d_forward_reference(x, 3, 3, stride, stride, 1, 1, ceil_mode)
        assert np.isneginf(y).any()
        y_k, argmax_k = K["max_pool2d_forward"](xp.asarray(x), 3, 3, stride, stride, 1, 1, ceil_mode)
        np.testing.assert_array_equal(to_numpy(y_k), y)
        np.testing.assert_array_equal(to_numpy(argmax_k), argmax)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(geometry=pool_geometry, seed=seeds, ceil_mode=st.booleans(), count_include_pad=st.booleans())
def test_avg_pool2d_and_backward(family, dtype, geometry, seed, ceil_mode, count_include_pad):
    """y against the loop oracle in float64; dx against the adjoint of the forward in float64
    (``dx[e] = sum over the windows holding e of dy / divisor``, built from unit inputs)."""
    K, xp = kernels(family)
    KH, KW, SH, SW, PH, PW, N, C, H, W = geometry
    rng = np.random.default_rng(seed)
    x, x64 = draw(rng, (N, C, H, W), dtype)
    y64 = avg_pool2d_reference(x64, (KH, KW), (SH, SW), (PH, PW), ceil_mode=ceil_mode,
                               count_include_pad=count_include_pad)
    with backend.use("numpy"):
        divisor = avg_pool2d_forward(x64, (KH, KW), (SH, SW), (PH, PW), ceil_mode=ceil_mode,
                                     count_include_pad=count_include_pad)[1].divisor  # OH,OW
    y_k = K["avg_pool2d_forward"](xp.asarray(x), KH, KW, SH, SW, PH, PW, xp.asarray(divisor.astype(dtype)))
    assert_close(y_k, y64, dtype, scale=np.abs(x64).max(), what="y")

    dy, dy64 = draw(rng, y64.shape, dtype)
    pool = lambda a: avg_pool2d_reference(a, (KH, KW), (SH, SW), (PH, PW), ceil_mode=ceil_mode,  # noqa: E731
                                          count_include_pad=count_include_pad)
    units = np.eye(H * W).reshape(H * W, 1, H, W)  # image e: the input cell e alone
    window_weights = pool(units)[:, 0]  # H*W,OH,OW: d y[oh, ow] / d x[e]
    dx = np.einsum("eij,ncij->nce", window_weights, dy64).reshape(N, C, H, W)
    dx_k = K["avg_pool2d_backward"](xp.asarray(dy), xp.asarray(divisor.astype(dtype)), H, W, KH, KW, SH, SW, PH, PW)
    assert_close(dx_k, dx, dtype, scale=np.linalg.norm(dy64), what="dx")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_max_pool2d_nan_is_the_maximum_and_the_first_nan_wins(family, dtype, stride):
    """NaN beats every number (+inf too) and the first NaN of a window, in row-by-row order,
    is its argmax: the kernels take the windows' values tap by tap, not window by window."""
    K, xp = kernels(family)
    rng = np.random.default_rng(stride)
    x = rng.standard_normal((2, 3, 11, 13)).astype(dtype)
    x[rng.random(x.shape) < 0.15] = np.nan
    x[rng.random(x.shape) < 0.05] = np.inf
    y, argmax = max_pool_formula(x.astype(np.float64), 3, 3, stride, stride, 1, 1)
    assert np.isnan(y).any() and (~np.isnan(y)).any()
    y_k, argmax_k = K["max_pool2d_forward"](xp.asarray(x), 3, 3, stride, stride, 1, 1)
    np.testing.assert_array_equal(to_numpy(y_k), y.astype(dtype))  # NaN where y is NaN
    np.testing.assert_array_equal(to_numpy(argmax_k), argmax)
