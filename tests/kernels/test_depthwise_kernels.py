"""The depthwise conv2d kernels equal ``sescratch.ops.depthwise``'s reference functions.

Numba (and CuPy, which skips without a GPU), float64 to 1e-10 and float32 to 1e-4 (normwise
relative), on hypothesis-drawn shapes: 3-wide kernels at stride 1 and 2 (the fused fast paths
of the Numba kernels) and any other width, stride, padding and channel multiplier (their
general paths), 1x1 planes and padding larger than the kernel included; plus the MobileNet
shapes of the last stages (4x4 planes, where borders are half the plane) and planes large
enough to be processed a few images at a time.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch import ops
from tests.helpers import DTYPES, KERNEL_FAMILIES as FAMILIES, KERNEL_TOL as TOL, family_modules, to_numpy
from tests.helpers import relative_error as _rel


@st.composite
def problems(draw, fast):
    C, M = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    KH, KW = (draw(st.integers(1, 4)), 3) if fast else (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    SW = draw(st.integers(1, 2)) if fast else draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), SW)
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    H = draw(st.integers(max(1, KH - 2 * padding[0]), 9))
    W = draw(st.integers(max(1, KW - 2 * padding[1]), 9))
    return (draw(st.integers(1, 3)), C, H, W), (C * M, 1, KH, KW), stride, padding


def check(family, dtype, x_shape, w_shape, stride, padding, bias, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    y_ref = ops.depthwise_conv2d_forward_reference(x, w, b, stride, padding)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    grads_ref = ops.depthwise_conv2d_backward_reference(dy, x, w, stride, padding, bias)
    kernels, xp = family_modules(family)
    x_, w_, dy_ = xp.asarray(x), xp.asarray(w), xp.asarray(dy)
    y = kernels["depthwise_conv2d_forward"](x_, w_, None if b is None else xp.asarray(b), stride, padding)
    grads = kernels["depthwise_conv2d_backward"](dy_, x_, w_, stride, padding, bias)
    assert to_numpy(y).dtype == dtype and _rel(y, y_ref) <= TOL[dtype]
    for name, g, g_ref in zip(("dx", "dw", "db"), grads, grads_ref):
        if g_ref is None:
            assert g is None
            continue
        assert to_numpy(g).dtype == dtype and g.shape == g_ref.shape, name
        assert _rel(g, g_ref) <= TOL[dtype], name


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fast", [True, False], ids=["3-wide", "any"])
@given(data=st.data())
def test_depthwise_kernels_equal_the_reference(family, dtype, fast, data):
    x_shape, w_shape, stride, padding = data.draw(problems(fast))
    check(family, dtype, x_shape, w_shape, stride, padding, data.draw(st.booleans()),
          data.draw(st.integers(0, 2**31)))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H, stride", [(4, 1), (8, 2), (7, 2)])
def test_depthwise_kernels_at_mobilenet_shapes(family, dtype, H, stride):
    check(family, dtype, (8, 32, H, H), (32, 1, 3, 3), (stride, stride), (1, 1), True, H)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stride, multiplier", [(1, 1), (2, 2)])
def test_depthwise_kernels_over_several_tall_planes(family, stride, multiplier):
    """60x60 planes: the Numba kernels stack 4 images per tall plane, so a batch of 6 takes a
    full and a short pass (the short one must not read the stale end of the full one)."""
    check(family, np.float64, (6, 2, 60, 60), (2 * multiplier, 1, 3, 3), (stride, stride), (1, 1),
          True, stride)
