"""max_pool2d / avg_pool2d: loop reference, gradient check, PyTorch oracle, ties, bad input."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sescratch.ops.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    avg_pool2d_reference,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_reference,
)
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp

OPS = {
    "max": (max_pool2d_forward, max_pool2d_backward, max_pool2d_reference, "max_pool2d"),
    "avg": (avg_pool2d_forward, avg_pool2d_backward, avg_pool2d_reference, "avg_pool2d"),
}


def distinct_values(rng, shape):
    """Values at least 1/size apart: no ties within a window, whatever finite differences do."""
    size = int(np.prod(shape))
    return (rng.permutation(size) + rng.uniform(0.1, 0.4, size)).reshape(shape) / size


@st.composite
def pool_cases(draw):
    """Shapes and hyper-parameters PyTorch accepts: padding <= kernel // 2, window fits."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    assume(H + 2 * padding[0] >= kernel[0] and W + 2 * padding[1] >= kernel[1])
    return (N, C, H, W), {"kernel_size": kernel, "stride": stride, "padding": padding}


@with_xp
@pytest.mark.parametrize("kind", OPS)
@given(case=pool_cases(), seed=st.integers(0, 2**31))
def test_pool_forward_and_gradient(xp, kind, case, seed):
    forward, backward, reference, _ = OPS[kind]
    shape, kwargs = case
    x = distinct_values(np.random.default_rng(seed), shape)
    y, _ = forward(xp.asarray(x), **kwargs)
    np.testing.assert_allclose(to_numpy(y), reference(x, **kwargs), rtol=1e-13, atol=1e-15)
    check_gradients(xp, forward, backward, {"x": x}, kwargs=kwargs, seed=seed)


@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 2},  # stride defaults to the kernel
        {"kernel_size": 3, "stride": 2, "padding": 1},  # the ResNet stem: overlapping windows
        {"kernel_size": (3, 2), "stride": (1, 2), "padding": (1, 0)},
        {"kernel_size": 5, "stride": 3, "padding": 2},
    ],
)
def test_pool_matches_torch(xp, kind, kwargs):
    torch = pytest.importorskip("torch")
    forward, backward, _, torch_name = OPS[kind]
    rng = np.random.default_rng(12)
    x = distinct_values(rng, (2, 3, 9, 8))
    y_ref, _ = forward(x, **kwargs)
    dy = rng.standard_normal(y_ref.shape)
    pool = getattr(torch.nn.functional, torch_name)
    y_t, (dx_t,) = torch_grads(torch, lambda t: pool(t, **kwargs), [x], dy)
    y, cache = forward(xp.asarray(x), **kwargs)
    assert_rel(y, y_t)
    assert_rel(backward(xp.asarray(dy), cache), dx_t)


def test_max_pool_ties_and_minus_infinity_match_torch(xp):
    """Ties: the first maximum in row-major order takes the gradient. A window of -inf (with
    padding) routes it to its first in-bounds cell, never to the padding."""
    torch = pytest.importorskip("torch")
    x = np.array([[[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [-np.inf, -np.inf, -np.inf]]]])
    kwargs = {"kernel_size": 2, "stride": 1, "padding": 1}
    dy = np.arange(16.0).reshape(1, 1, 4, 4) + 1  # a distinct gradient per window
    y_t, (dx_t,) = torch_grads(torch, lambda t: torch.nn.functional.max_pool2d(t, **kwargs), [x], dy)
    y, cache = max_pool2d_forward(xp.asarray(x), **kwargs)
    np.testing.assert_array_equal(to_numpy(y), y_t)
    np.testing.assert_array_equal(to_numpy(max_pool2d_backward(xp.asarray(dy), cache)), dx_t)


@pytest.mark.parametrize("kind", OPS)
def test_pool_keeps_float32(xp, kind):
    forward, backward, _, _ = OPS[kind]
    x = xp.asarray(distinct_values(np.random.default_rng(0), (1, 2, 4, 4)).astype(np.float32))
    y, cache = forward(x, 2)
    dx = backward(xp.ones_like(y), cache)
    assert y.dtype == dx.dtype == np.float32 and dx.shape == x.shape


@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize(
    "shape, kwargs, match",
    [
        ((1, 1, 4, 4), {"kernel_size": 2, "padding": 2}, r"argument 'padding' must be at most half"),
        ((1, 1, 4, 4), {"kernel_size": 3, "padding": (0, 2)}, r"argument 'padding' must be at most"),
        ((1, 1, 2, 2), {"kernel_size": 5, "padding": 1},
         r"argument 'kernel_size' \(5, 5\) is larger than the padded input \(4, 4\)"),
        ((1, 1, 4, 4), {"kernel_size": 2, "stride": 0}, r"argument 'stride' must be >= 1, got 0"),
        ((1, 1, 4, 4), {"kernel_size": (1, 2, 3)}, r"argument 'kernel_size' must be an int or"),
        ((1, 1, 4, 4), {"kernel_size": 0}, r"argument 'kernel_size' must be >= 1"),
        ((1, 4, 4), {"kernel_size": 2}, r"argument 'x' must be 4-D, got 3-D"),
    ],
)
def test_pool_bad_input(kind, shape, kwargs, match):
    forward = OPS[kind][0]
    with pytest.raises(ValueError, match=f"{kind}_pool2d_forward: {match}"):
        forward(np.ones(shape), **kwargs)


@pytest.mark.parametrize("kind", OPS)
def test_pool_bad_dtype_and_dy(kind):
    forward, backward, _, _ = OPS[kind]
    with pytest.raises(ValueError, match=rf"{kind}_pool2d_forward: argument 'x' must have a floating"):
        forward(np.ones((1, 1, 4, 4), dtype=np.int64), 2)
    _, cache = forward(np.ones((1, 2, 4, 4)), 2)
    with pytest.raises(ValueError, match=rf"{kind}_pool2d_backward: argument 'dy' expected shape \(1, 2,"):
        backward(np.ones((1, 2, 4, 4)), cache)
