"""The scale F_scale (paper Eq. 4). The whole SE block, with the fan-out of ``u`` into both the
squeeze and the scale, is tested in test_se_block.py."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.ops.se_scale import se_scale_backward, se_scale_forward
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp


@with_xp
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
       seed=st.integers(0, 2**31))
def test_se_scale_forward_and_gradients(xp, shape, seed):
    rng = np.random.default_rng(seed)
    u, s = rng.standard_normal(shape), rng.uniform(0, 1, shape[:2])
    y, _ = se_scale_forward(xp.asarray(u), xp.asarray(s))
    expected = np.empty(shape)
    for n in range(shape[0]):
        for c in range(shape[1]):
            expected[n, c] = s[n, c] * u[n, c]
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-14, atol=0)
    check_gradients(xp, se_scale_forward, se_scale_backward, {"u": u, "s": s}, seed=seed)


def test_se_scale_matches_torch(xp):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    u, dy = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    s = rng.uniform(0, 1, (2, 3))
    y_t, grads_t = torch_grads(torch, lambda a, b: a * b[:, :, None, None], [u, s], dy)
    y, cache = se_scale_forward(xp.asarray(u), xp.asarray(s))
    assert_rel(y, y_t)
    for g, g_t in zip(se_scale_backward(xp.asarray(dy), cache), grads_t):
        assert_rel(g, g_t)


def test_se_scale_keeps_float32(xp):
    u, s = xp.ones((2, 3, 2, 2), dtype=np.float32), xp.ones((2, 3), dtype=np.float32)
    y, cache = se_scale_forward(u, s)
    du, ds = se_scale_backward(xp.ones_like(y), cache)
    assert y.dtype == du.dtype == ds.dtype == np.float32


def test_se_scale_bad_input():
    u = np.ones((2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"se_scale_forward: argument 's' expected shape \(2, 3\)"):
        se_scale_forward(u, np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"se_scale_forward: argument 's' must be 2-D, got 4-D"):
        se_scale_forward(u, np.ones((2, 3, 1, 1)))
    with pytest.raises(ValueError, match=r"se_scale_forward: argument 'u' must be 4-D"):
        se_scale_forward(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"se_scale_forward: argument 'u' .*floating dtype.*int64"):
        se_scale_forward(np.ones((2, 3, 4, 4), dtype=np.int64), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"se_scale_forward: arguments must share one dtype"):
        se_scale_forward(u, np.ones((2, 3), dtype=np.float32))
    _, cache = se_scale_forward(u, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"se_scale_backward: argument 'dy' expected shape \(2, 3, 4"):
        se_scale_backward(np.ones((2, 3, 4, 5)), cache)
