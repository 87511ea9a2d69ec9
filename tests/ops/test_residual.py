"""add_forward / add_backward: the residual sum; its gradient fans out unchanged to both inputs."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.ops.residual import add_backward, add_forward
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
