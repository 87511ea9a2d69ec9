"""The residual sum: add_forward / add_backward, add_relu_forward / add_relu_backward (ReLU(a + b),
the end of every residual block), and add_into (the fan-out sum of two gradients, in place)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.ops.residual import add_backward, add_forward, add_into, add_relu_backward, add_relu_forward
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp


@with_xp
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 2**31))
def test_add_forward_and_gradients(xp, shape, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shape), rng.standard_normal(shape)
    y, _ = add_forward(xp.asarray(a), xp.asarray(b))
    np.testing.assert_array_equal(to_numpy(y), a + b)
    check_gradients(xp, add_forward, add_backward, {"a": a, "b": b}, seed=seed)


def test_add_gradients_are_separate_copies(xp):
    y, cache = add_forward(xp.ones((2, 3)), xp.ones((2, 3)))
    dy = xp.full((2, 3), 2.0)
    da, db = add_backward(dy, cache)
    da += 1  # one branch accumulating in place must not touch the other, nor dy
    assert float(db[0, 0]) == 2.0 and float(dy[0, 0]) == 2.0


def test_add_matches_torch(xp):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    a, b, dy = (rng.standard_normal((2, 3, 4, 4)) for _ in range(3))
    y_t, grads_t = torch_grads(torch, lambda s, t: s + t, [a, b], dy)
    y, cache = add_forward(xp.asarray(a), xp.asarray(b))
    assert_rel(y, y_t)
    for g, g_t in zip(add_backward(xp.asarray(dy), cache), grads_t):
        assert_rel(g, g_t)


def test_add_keeps_float32(xp):
    y, cache = add_forward(xp.ones(3, dtype=np.float32), xp.ones(3, dtype=np.float32))
    da, db = add_backward(xp.ones_like(y), cache)
    assert y.dtype == da.dtype == db.dtype == np.float32


def test_add_bad_input():
    match = r"add_forward: argument 'b' expected the shape of 'a' \(2, 3\), got \(2, 1\)"
    with pytest.raises(ValueError, match=match):
        add_forward(np.ones((2, 3)), np.ones((2, 1)))  # no silent broadcasting
    with pytest.raises(ValueError, match=r"add_forward: arguments must share one dtype"):
        add_forward(np.ones(3), np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"add_forward: argument 'a' must have a floating dtype"):
        add_forward(np.ones(3, dtype=np.int64), np.ones(3))
    _, cache = add_forward(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"add_backward: argument 'dy' expected shape \(2, 3\)"):
        add_backward(np.ones((3, 2)), cache)


@with_xp
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), four_d=st.booleans(), seed=st.integers(0, 2**31))
def test_add_relu_forward_and_gradients(xp, shape, four_d, seed):
    """Against finite differences (random upstream gradient), on 4-D maps (kernels) and any shape."""
    shape = (shape + [2, 2, 2, 2])[:4] if four_d else shape
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shape), rng.standard_normal(shape)
    # keep a + b away from the kink at 0, where the finite difference straddles two slopes
    b += np.where(np.abs(a + b) < 1e-3, 0.1, 0.0)
    y, _ = add_relu_forward(xp.asarray(a), xp.asarray(b))
    np.testing.assert_array_equal(to_numpy(y), np.maximum(a + b, 0))
    check_gradients(xp, add_relu_forward, add_relu_backward, {"a": a, "b": b}, seed=seed)


def test_add_relu_sends_one_gradient_down_both_paths(xp):
    a, b = xp.asarray([[-2.0, 1.0], [0.5, -0.1]]), xp.asarray([[1.0, 1.0], [-1.0, 0.0]])
    y, cache = add_relu_forward(a, b)
    dy = xp.asarray([[3.0, 4.0], [5.0, 6.0]])
    da, db = add_relu_backward(dy, cache)
    assert da is db  # shared: no backward writes into its upstream gradient
    np.testing.assert_array_equal(to_numpy(da), [[0.0, 4.0], [0.0, 0.0]])
    assert float(dy[0, 0]) == 3.0


def test_add_relu_matches_torch(xp):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(15)
    a, b, dy = (rng.standard_normal((2, 3, 4, 4)) for _ in range(3))
    y_t, grads_t = torch_grads(torch, lambda s, t: torch.relu(s + t), [a, b], dy)
    y, cache = add_relu_forward(xp.asarray(a), xp.asarray(b))
    assert_rel(y, y_t)
    for g, g_t in zip(add_relu_backward(xp.asarray(dy), cache), grads_t):
        assert_rel(g, g_t)


def test_add_relu_keeps_float32(xp):
    y, cache = add_relu_forward(xp.ones((1, 2, 3, 3), dtype=np.float32), xp.ones((1, 2, 3, 3), dtype=np.float32))
    da, db = add_relu_backward(xp.ones_like(y), cache)
    assert y.dtype == da.dtype == np.float32


@with_xp
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 2**31))
def test_add_into_is_the_sum_in_place(xp, shape, seed):
    rng = np.random.default_rng(seed)
    t, g = rng.standard_normal(shape), rng.standard_normal(shape)
    expected = t + g
    total = xp.asarray(t.copy())
    out = add_into(total, xp.asarray(g))
    assert out is total
    np.testing.assert_array_equal(to_numpy(total), expected)


def test_add_relu_and_add_into_bad_input():
    with pytest.raises(ValueError, match=r"add_relu_forward: argument 'b' expected the shape of 'a' \(2, 3\), got \(3,\)"):
        add_relu_forward(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match=r"add_relu_forward: arguments must share one dtype"):
        add_relu_forward(np.ones(3), np.ones(3, dtype=np.float32))
    _, cache = add_relu_forward(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"add_relu_backward: argument 'dy' expected shape \(2, 3\)"):
        add_relu_backward(np.ones((3, 2)), cache)
    with pytest.raises(ValueError, match=r"add_into: argument 'g' expected the shape of 'total' \(2, 3\), got \(2, 1\)"):
        add_into(np.ones((2, 3)), np.ones((2, 1)))  # no silent broadcasting
    total = np.ones((2, 3))
    with pytest.raises(ValueError, match="add_into: arguments 'total' and 'g' overlap in memory"):
        add_into(total, total)
    with pytest.raises(ValueError, match="add_into: argument 'total' must be a C-contiguous, writeable array"):
        add_into(np.ones((3, 2)).T, np.ones((2, 3)))
    frozen = np.ones((2, 3))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="add_into: argument 'total' must be a C-contiguous, writeable array"):
        add_into(frozen, np.ones((2, 3)))
