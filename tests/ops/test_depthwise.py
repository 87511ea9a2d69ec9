"""Depthwise conv2d (groups == C_in, channel multiplier M = C_out / C_in): the loop oracle,
finite differences, PyTorch, MobileNet shapes, and errors (including absurd padding).

``conv2d_forward`` dispatches these to ``sescratch.ops.depthwise`` and its kernels; the tests
go through the public op on every backend (the ``xp`` fixture: NumPy reference, Numba, CuPy).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.ops.conv import conv2d_backward, conv2d_forward, conv2d_reference
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp


@st.composite
def depthwise_problems(draw):
    """(x, w, b, kwargs) in float64: any kernel, stride, padding, multiplier, bias or not."""
    C, M = draw(st.integers(2, 4)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    H = draw(st.integers(max(1, KH - 2 * padding[0]), 7))
    W = draw(st.integers(max(1, KW - 2 * padding[1]), 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x, w = rng.standard_normal((draw(st.integers(1, 2)), C, H, W)), rng.standard_normal((C * M, 1, KH, KW))
    b = rng.standard_normal(C * M) if draw(st.booleans()) else None
    return x, w, b, {"stride": stride, "padding": padding, "groups": C}


@with_xp
@given(problem=depthwise_problems(), seed=st.integers(0, 2**31))
def test_depthwise_forward_and_gradients(xp, problem, seed):
    x, w, b, kwargs = problem
    y, _ = conv2d_forward(xp.asarray(x), xp.asarray(w), None if b is None else xp.asarray(b), **kwargs)
    assert_rel(y, conv2d_reference(x, w, b, **kwargs), tol=1e-12)
    inputs = {"x": x, "w": w} if b is None else {"x": x, "w": w, "b": b}

    def backward(dy, cache):
        dx, dw, db = conv2d_backward(dy, cache)
        return (dx, dw) if b is None else (dx, dw, db)

    check_gradients(xp, conv2d_forward, backward, inputs, kwargs=kwargs, seed=seed)


@pytest.mark.parametrize(
    "C, M, H, stride, padding",
    [
        (32, 1, 8, 1, 1),  # MobileNet's 3x3 depthwise, stride 1
        (16, 1, 9, 2, 1),  # stride 2 on an odd size
        (8, 2, 6, 1, 0),  # channel multiplier 2, no padding
        (6, 1, 5, (2, 1), (1, 0)),  # rectangular stride and padding
    ],
)
def test_depthwise_matches_torch(xp, C, M, H, stride, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(C + M)
    x, w, b = rng.standard_normal((3, C, H, H)), rng.standard_normal((C * M, 1, 3, 3)), rng.standard_normal(C * M)
    kwargs = {"stride": stride, "padding": padding, "groups": C}
    y, cache = conv2d_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b), **kwargs)
    dy = rng.standard_normal(y.shape)
    y_t, grads_t = torch_grads(torch, lambda *t: torch.nn.functional.conv2d(*t, **kwargs), [x, w, b], dy)
    assert_rel(y, y_t)
    for grad, grad_t in zip(conv2d_backward(xp.asarray(dy), cache), grads_t):
        assert_rel(grad, grad_t)


def test_depthwise_float32_at_a_mobilenet_shape(xp):
    """float32 in, float32 out; agrees with the float64 result to float32 accuracy."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((4, 64, 16, 16)), rng.standard_normal((64, 1, 3, 3))
    y64, c64 = conv2d_forward(x, w, None, stride=2, padding=1, groups=64)
    dy = rng.standard_normal(y64.shape)
    grads64 = conv2d_backward(dy, c64)
    f32 = [xp.asarray(a.astype(np.float32)) for a in (x, w, dy)]
    y, cache = conv2d_forward(f32[0], f32[1], None, stride=2, padding=1, groups=64)
    dx, dw, db = conv2d_backward(f32[2], cache)
    assert y.dtype == dx.dtype == dw.dtype == np.float32 and db is None
    for got, want in zip((y, dx, dw), (y64, *grads64[:2])):
        assert_rel(got, want, tol=1e-5)


def test_depthwise_non_contiguous_input(xp):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 6, 4)).transpose(0, 1, 3, 2)  # N,C,W,H view, not contiguous
    w = rng.standard_normal((5, 1, 3, 3))
    y, _ = conv2d_forward(xp.asarray(x), xp.asarray(w), None, padding=1, groups=5)
    assert_rel(y, conv2d_reference(np.ascontiguousarray(x), w, None, padding=1, groups=5), tol=1e-12)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, message",
    [
        ((1, 4, 5, 5), (4, 2, 3, 3), {"groups": 4},
         r"argument 'w' expected shape \(\*, 1, \*, \*\) \(w is \(C_out, C_in // groups, KH, KW\) with C_in=4"),
        ((1, 4, 5, 5), (6, 1, 3, 3), {"groups": 4}, r"argument 'groups' must divide C_out=6, got groups=4"),
        ((1, 2, 3, 3), (2, 1, 3, 3), {"groups": 2, "padding": 10**5},
         r"argument 'padding' \(100000, 100000\) makes the padded input of shape \(1, 2, 200003, 200003\) "
         r"\(80,002,400,018 elements\); expected at most 2,147,483,648 elements"),
        ((1, 2, 3, 3), (2, 2, 1, 1), {"padding": (0, 3 * 10**9)}, r"argument 'padding' \(0, 3000000000\) makes"),
    ],
)
def test_depthwise_and_absurd_padding_errors(x_shape, w_shape, kwargs, message):
    with pytest.raises(ValueError, match=f"conv2d_forward: {message}"):
        conv2d_forward(np.ones(x_shape), np.ones(w_shape), None, **kwargs)
