"""conv2d_forward / conv2d_backward: loop reference, gradient check, PyTorch oracle, bad input.

Every property test runs under the ``xp`` fixture (NumPy reference code, Numba kernels, CuPy).
Shapes are drawn by hypothesis: batch, channels and spatial sizes >= 1, kernels 1-5, strides
1-3, padding 0-2, groups dividing the channels, rectangular kernels, strides and paddings.
A separate strategy pins 3x3 / stride 1 / one group, the shapes of the Winograd kernel.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.gradcheck import relative_error
from sescratch.ops.conv import conv2d_backward, conv2d_forward, conv2d_reference
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp


@st.composite
def conv_problems(draw, winograd=False):
    """(x, w, b, kwargs) in float64; kwargs hold stride, padding and groups as the op takes them."""
    groups = 1 if winograd else draw(st.integers(1, 3))
    C, K = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    N = draw(st.integers(1, 2))
    KH, KW = (3, 3) if winograd else (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    PH, PW = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    SH, SW = (1, 1) if winograd else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    H = draw(st.integers(max(1, KH - 2 * PH), max(1, KH - 2 * PH) + 4))  # kernel fits the padded input
    W = draw(st.integers(max(1, KW - 2 * PW), max(1, KW - 2 * PW) + 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((K, C // groups, KH, KW))
    b = rng.standard_normal(K) if draw(st.booleans()) else None
    square = draw(st.booleans())  # also exercise the plain-int forms of stride and padding
    stride = SH if square and SH == SW else (SH, SW)
    padding = PH if square and PH == PW else (PH, PW)
    return x, w, b, {"stride": stride, "padding": padding, "groups": groups}


def _on(xp, *arrays):
    return [None if a is None else xp.asarray(a) for a in arrays]


def _check_forward(xp, x, w, b, kwargs):
    y, _ = conv2d_forward(*_on(xp, x, w, b), **kwargs)
    expected = conv2d_reference(x, w, b, **kwargs)
    assert to_numpy(y).shape == expected.shape
    assert relative_error(to_numpy(y), expected) <= 1e-10


def _check_backward(xp, x, w, b, kwargs):
    if b is None:  # db is None: check the two gradients there are
        backward = lambda dy, cache: conv2d_backward(dy, cache)[:2]  # noqa: E731
        check_gradients(xp, conv2d_forward, backward, {"x": x, "w": w}, kwargs=kwargs)
    else:
        check_gradients(xp, conv2d_forward, conv2d_backward, {"x": x, "w": w, "b": b}, kwargs=kwargs)


@with_xp
@given(problem=conv_problems())
def test_forward_matches_loop_reference(xp, problem):
    _check_forward(xp, *problem)


@with_xp
@given(problem=conv_problems())
def test_backward_matches_finite_differences(xp, problem):
    _check_backward(xp, *problem)


@with_xp
@given(problem=conv_problems(winograd=True))
def test_3x3_stride_1_forward_and_backward(xp, problem):
    _check_forward(xp, *problem)
    _check_backward(xp, *problem)


@with_xp
@given(problem=st.one_of(conv_problems(), conv_problems(winograd=True)))
def test_matches_torch(xp, problem):
    torch = pytest.importorskip("torch")
    x, w, b, kwargs = problem
    F = torch.nn.functional
    arrays = [x, w] + ([b] if b is not None else [])
    dy = np.random.default_rng(0).standard_normal(conv2d_reference(x, w, b, **kwargs).shape)
    y_t, grads_t = torch_grads(torch, lambda x_, w_, *b_: F.conv2d(x_, w_, *b_, **kwargs), arrays, dy)
    y, cache = conv2d_forward(*_on(xp, x, w, b), **kwargs)
    assert_rel(y, y_t)
    dx, dw, db = conv2d_backward(xp.asarray(dy), cache)
    assert_rel(dx, grads_t[0])
    assert_rel(dw, grads_t[1])
    if b is None:
        assert db is None
    else:
        assert_rel(db, grads_t[2])


def test_float32_stays_float32(xp):
    rng = np.random.default_rng(0)
    for KH, stride in [(3, 1), (3, 2), (1, 1)]:  # Winograd, im2col, 1x1
        x = xp.asarray(rng.standard_normal((2, 4, 6, 6)).astype(np.float32))
        w = xp.asarray(rng.standard_normal((3, 4, KH, KH)).astype(np.float32))
        b = xp.asarray(np.zeros(3, np.float32))
        y, cache = conv2d_forward(x, w, b, stride=stride, padding=KH // 2)
        assert y.dtype == np.float32
        assert all(g.dtype == np.float32 for g in conv2d_backward(xp.ones_like(y), cache))


def test_depthwise_and_non_contiguous_input(xp):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 9, 7)).transpose(0, 1, 3, 2)  # a non-contiguous view
    w = rng.standard_normal((12, 1, 3, 2))  # depthwise with channel multiplier 2
    kwargs = {"stride": (2, 1), "padding": (1, 0), "groups": 6}
    y, _ = conv2d_forward(xp.asarray(x), xp.asarray(w), **kwargs)
    assert_rel(y, conv2d_reference(np.ascontiguousarray(x), w, **kwargs), tol=1e-12)


def _args(x=(2, 4, 5, 5), w=(3, 4, 3, 3), b=None, dtype=np.float64, w_dtype=None):
    x = np.zeros(x, dtype=dtype)
    w = np.zeros(w, dtype=w_dtype or dtype)
    return x, w, (None if b is None else np.zeros(b, dtype=dtype))


BAD_INPUTS = [
    (_args(x=(4, 5, 5)), {}, r"conv2d_forward: argument 'x' must be 4-D, got 3-D"),
    (_args(w=(3, 4, 3)), {}, r"conv2d_forward: argument 'w' must be 4-D, got 3-D"),
    (_args(b=(3, 1)), {}, r"conv2d_forward: argument 'b' must be 1-D, got 2-D"),
    (_args(b=(4,)), {}, r"conv2d_forward: argument 'b' expected shape \(3,\) .*got \(4,\)"),
    (_args(w=(3, 2, 3, 3)), {}, r"conv2d_forward: argument 'w' expected shape \(\*, 4, \*, \*\) "
                                r"\(w is \(C_out, C_in // groups, KH, KW\) with C_in=4 .*got \(3, 2, 3, 3\)"),
    (_args(w=(4, 2, 3, 3)), {"groups": 3}, r"conv2d_forward: argument 'groups' must divide C_in=4, got groups=3"),
    (_args(w=(3, 2, 3, 3)), {"groups": 2}, r"conv2d_forward: argument 'groups' must divide C_out=3, got groups=2"),
    (_args(), {"groups": 0}, r"conv2d_forward: argument 'groups' must be a positive int, got 0"),
    (_args(), {"groups": 1.0}, r"conv2d_forward: argument 'groups' must be a positive int, got 1.0"),
    (_args(x=(2, 4, 2, 9), w=(3, 4, 5, 5)), {"padding": 1},
     r"conv2d_forward: argument 'w' has a kernel of 5x5, larger than the padded input of 4x11"),
    (_args(dtype=np.int64), {}, r"conv2d_forward: argument 'x' must have a floating dtype .*got int64"),
    (_args(w_dtype=np.int32), {}, r"conv2d_forward: argument 'w' must have a floating dtype .*got int32"),
    (_args(w_dtype=np.float32), {}, r"conv2d_forward: arguments must share one dtype, got 'x' float64, 'w' float32"),
    (_args(), {"stride": 0}, r"conv2d_forward: argument 'stride' must be >= 1, got 0"),
    (_args(), {"stride": (1, 2, 3)}, r"conv2d_forward: argument 'stride' must be an int or a pair of ints"),
    (_args(), {"padding": -1}, r"conv2d_forward: argument 'padding' must be >= 0, got -1"),
    (_args(), {"padding": 1.5}, r"conv2d_forward: argument 'padding' must be an int or a pair of ints"),
]


@pytest.mark.parametrize("arrays, kwargs, message", BAD_INPUTS)
def test_bad_input_names_op_argument_and_values(xp, arrays, kwargs, message):
    x, w, b = _on(xp, *arrays)
    with pytest.raises(ValueError, match=message):
        conv2d_forward(x, w, b, **kwargs)
    with pytest.raises(ValueError, match=message.replace("conv2d_forward", "conv2d_reference")):
        conv2d_reference(*arrays, **kwargs)  # the oracle validates the same way


def test_backward_rejects_dy_of_the_wrong_shape(xp):
    x, w, _ = _on(xp, *_args())
    y, cache = conv2d_forward(x, w, padding=1)
    with pytest.raises(ValueError, match=r"conv2d_backward: argument 'dy' expected shape \(2, 3, 5, 5\)"):
        conv2d_backward(xp.zeros((2, 3, 4, 5)), cache)
