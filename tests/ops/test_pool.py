"""max_pool2d / avg_pool2d: loop reference, gradient check, PyTorch oracle, ties, bad input,
``ceil_mode`` and ``count_include_pad``."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sescratch.ops.avg_pool import avg_pool2d_backward, avg_pool2d_forward, avg_pool2d_reference
from sescratch.ops.pool import max_pool2d_backward, max_pool2d_forward, max_pool2d_reference
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
    kwargs = {"kernel_size": kernel, "stride": stride, "padding": padding,
              "ceil_mode": draw(st.booleans())}
    return (N, C, H, W), kwargs


def with_divisor(kind, kwargs, count_include_pad):
    """Average pooling also takes ``count_include_pad``; max pooling does not."""
    return {**kwargs, "count_include_pad": count_include_pad} if kind == "avg" else kwargs


@with_xp
@pytest.mark.parametrize("kind", OPS)
@given(case=pool_cases(), include=st.booleans(), seed=st.integers(0, 2**31))
def test_pool_forward_and_gradient(xp, kind, case, include, seed):
    forward, backward, reference, _ = OPS[kind]
    shape, kwargs = case
    kwargs = with_divisor(kind, kwargs, include)
    x = distinct_values(np.random.default_rng(seed), shape)
    y, _ = forward(xp.asarray(x), **kwargs)
    np.testing.assert_allclose(to_numpy(y), reference(x, **kwargs), rtol=1e-13, atol=1e-15)
    check_gradients(xp, forward, backward, {"x": x}, kwargs=kwargs, seed=seed)


@pytest.mark.parametrize(
    "kind, count_include_pad",  # count_include_pad is an average-pooling argument
    [("max", None), ("avg", True), ("avg", False)],
)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 2},  # stride defaults to the kernel
        {"kernel_size": 3, "stride": 2, "padding": 1},  # the ResNet stem: overlapping windows
        {"kernel_size": (3, 2), "stride": (1, 2), "padding": (1, 0)},
        {"kernel_size": 5, "stride": 3, "padding": 2},
        {"kernel_size": 3, "stride": 2, "ceil_mode": True},  # BN-Inception's pools: 9 -> 4 rows
        {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},  # a partial last window
        {"kernel_size": (2, 3), "stride": (3, 2), "padding": (1, 1), "ceil_mode": True},
        {"kernel_size": 3, "stride": 1, "padding": 1},  # Inception's 3x3 average pool branch
    ],
)
def test_pool_matches_torch(xp, kind, kwargs, count_include_pad):
    torch = pytest.importorskip("torch")
    forward, backward, _, torch_name = OPS[kind]
    kwargs = with_divisor(kind, kwargs, count_include_pad)
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
        ((1, 1, 4, 4), {"kernel_size": 2, "ceil_mode": "yes"}, r"argument 'ceil_mode' must be True"),
        ((1, 1, 1, 1), {"kernel_size": 10**5, "padding": 5 * 10**4},
         r"argument 'padding' 50000 makes the padded input of shape \(1, 1, 100001, 100001\)"),
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


@pytest.mark.parametrize(
    "size, kernel, stride, padding, floor, ceil",
    [
        (9, 3, 2, 0, 4, 4),  # fits exactly: both agree
        (10, 3, 2, 0, 4, 5),  # a partial last window over the last row
        (6, 3, 2, 1, 3, 4),  # PyTorch: the 4th window would start at row 5 < H + P = 7: kept
        (5, 2, 2, 1, 3, 3),  # ceil gives 4, but the 4th window starts at row 5 = H + P: dropped
        (112, 3, 2, 0, 55, 56),  # BN-Inception's stem pool
    ],
)
def test_ceil_mode_output_size_matches_torch(size, kernel, stride, padding, floor, ceil):
    torch = pytest.importorskip("torch")
    x = np.zeros((1, 1, size, size))
    for ceil_mode, expected in ((False, floor), (True, ceil)):
        kwargs = {"kernel_size": kernel, "stride": stride, "padding": padding, "ceil_mode": ceil_mode}
        for kind, (forward, _, _, torch_name) in OPS.items():
            y, _ = forward(x, **kwargs)
            t = getattr(torch.nn.functional, torch_name)(torch.from_numpy(x), **kwargs)
            assert y.shape[2:] == tuple(t.shape[2:]) == (expected, expected), (kind, kwargs)


def test_avg_pool_divisor_counts_padding_but_never_the_ceil_overhang():
    """``x`` of ones: the mean is 1 where only input cells are counted, less where padding is."""
    x = np.ones((1, 1, 4, 4))
    y, _ = avg_pool2d_forward(x, 3, 2, 1, ceil_mode=True, count_include_pad=True)
    # windows start at rows -1, 1 (3 rows, 1 of padding) and 3 (rows 3..5: row 4 is padding,
    # row 5 is overhang past H + P = 5, not counted: 2 counted rows, 1 input row)
    np.testing.assert_allclose(y[0, 0], np.outer([2 / 3, 1, 1 / 2], [2 / 3, 1, 1 / 2]))
    y, _ = avg_pool2d_forward(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(y, np.ones((1, 1, 3, 3)))
