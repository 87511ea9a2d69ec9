"""linear_forward / linear_backward: formula, gradient check, PyTorch oracle, bad input."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.ops.linear import linear_backward, linear_forward
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp


def linear_reference(x, w, b):
    y = np.zeros((x.shape[0], w.shape[0]))
    for n in range(x.shape[0]):
        for j in range(w.shape[0]):
            y[n, j] = sum(x[n, i] * w[j, i] for i in range(x.shape[1])) + (0 if b is None else b[j])
    return y


@with_xp
@given(N=st.integers(1, 4), IN=st.integers(1, 5), OUT=st.integers(1, 5), bias=st.booleans(),
       seed=st.integers(0, 2**31))
def test_linear_forward_and_gradients(xp, N, IN, OUT, bias, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((N, IN)), rng.standard_normal((OUT, IN))
    b = rng.standard_normal(OUT) if bias else None
    y, _ = linear_forward(xp.asarray(x), xp.asarray(w), None if b is None else xp.asarray(b))
    np.testing.assert_allclose(to_numpy(y), linear_reference(x, w, b), rtol=1e-12, atol=1e-12)
    if bias:
        check_gradients(xp, linear_forward, linear_backward, {"x": x, "w": w, "b": b}, seed=seed)
    else:  # db is None: check the two gradients there are
        backward = lambda dy, cache: linear_backward(dy, cache)[:2]  # noqa: E731
        check_gradients(xp, linear_forward, backward, {"x": x, "w": w}, seed=seed)


def test_linear_without_bias_returns_no_db(xp):
    x, w = xp.ones((2, 3)), xp.ones((4, 3))
    y, cache = linear_forward(x, w)
    dx, dw, db = linear_backward(xp.ones((2, 4)), cache)
    assert db is None and dx.shape == (2, 3) and dw.shape == (4, 3)


def test_linear_keeps_float32(xp):
    x, w, b = (xp.ones(s, dtype=np.float32) for s in ((2, 3), (4, 3), (4,)))
    y, cache = linear_forward(x, w, b)
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in linear_backward(xp.ones_like(y), cache))


def test_linear_matches_torch(xp):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w, b, dy = (rng.standard_normal(s) for s in ((5, 7), (3, 7), (3,), (5, 3)))
    y_t, grads_t = torch_grads(torch, torch.nn.functional.linear, [x, w, b], dy)
    y, cache = linear_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b))
    assert_rel(y, y_t)
    for g, g_t in zip(linear_backward(xp.asarray(dy), cache), grads_t):
        assert_rel(g, g_t)


@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape, dtype, match",
    [
        ((2, 3, 1), (4, 3), (4,), np.float64, r"argument 'x' must be 2-D, got 3-D"),
        ((2, 3), (4, 5), (4,), np.float64, r"argument 'w' expected shape \(\*, 3\)"),
        ((2, 3), (4, 3), (5,), np.float64, r"argument 'b' expected shape \(4,\)"),
        ((2, 3), (4, 3), (4,), np.int64, r"argument 'x' must have a floating"),
    ],
)
def test_linear_bad_input(x_shape, w_shape, b_shape, dtype, match):
    with pytest.raises(ValueError, match=f"linear_forward: {match}"):
        linear_forward(np.ones(x_shape, dtype=dtype), np.ones(w_shape), np.ones(b_shape))


def test_linear_bad_dtype_mix_and_dy():
    with pytest.raises(ValueError, match=r"linear_forward: arguments must share one dtype"):
        linear_forward(np.ones((2, 3)), np.ones((4, 3), dtype=np.float32))
    _, cache = linear_forward(np.ones((2, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"linear_backward: argument 'dy' expected shape \(2, 4\)"):
        linear_backward(np.ones((2, 3)), cache)
