"""The scale F_scale (paper Eq. 4), and the whole SE path GAP -> FC -> ReLU -> FC -> sigmoid ->
scale assembled from the ops, with the fan-out of ``u`` into both the squeeze and the scale."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.gradcheck import gradcheck
from sescratch.ops.activation import relu_backward, relu_forward, sigmoid_backward, sigmoid_forward
from sescratch.ops.linear import linear_backward, linear_forward
from sescratch.ops.se_scale import se_scale_backward, se_scale_forward
from sescratch.ops.squeeze import global_avg_pool_backward, global_avg_pool_forward
from tests.helpers import to_numpy
from tests.ops._ophelp import GRAD_TOL, assert_rel, check_gradients, torch_grads, with_xp


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


# --- the SE path, docs/derivations/se_block.md ---------------------------------------------------

def se_forward(u, w1, b1, w2, b2):
    z, c_sq = global_avg_pool_forward(u)  # N,C     squeeze (Eq. 2)
    h, c_fc1 = linear_forward(z, w1, b1)  # N,C/r
    a, c_relu = relu_forward(h)  # N,C/r
    e, c_fc2 = linear_forward(a, w2, b2)  # N,C
    s, c_sig = sigmoid_forward(e)  # N,C     excitation (Eq. 3)
    y, c_scale = se_scale_forward(u, s)  # N,C,H,W scale (Eq. 4)
    return y, (c_sq, c_fc1, c_relu, c_fc2, c_sig, c_scale)


def se_backward(dy, caches, *, fan_out=True):
    c_sq, c_fc1, c_relu, c_fc2, c_sig, c_scale = caches
    du_from_scale, ds = se_scale_backward(dy, c_scale)
    de = sigmoid_backward(ds, c_sig)
    da, dw2, db2 = linear_backward(de, c_fc2)
    dh = relu_backward(da, c_relu)
    dz, dw1, db1 = linear_backward(dh, c_fc1)
    du_from_squeeze = global_avg_pool_backward(dz, c_sq)
    du = du_from_scale + du_from_squeeze if fan_out else du_from_scale
    return du, dw1, db1, dw2, db2


def se_inputs(rng, N=2, C=4, H=3, W=3, r=2):
    # b1 > 0 keeps most hidden ReLUs active, so the squeeze path carries gradient
    return [rng.standard_normal((N, C, H, W)), rng.standard_normal((C // r, C)),
            rng.uniform(0.5, 1.5, C // r), rng.standard_normal((C, C // r)), rng.standard_normal(C)]


def test_se_path_gradients_include_both_uses_of_u(xp):
    rng = np.random.default_rng(7)
    inputs = se_inputs(rng)
    names = ["u", "w1", "b1", "w2", "b2"]

    def fn(*arrays):
        return to_numpy(se_forward(*(xp.asarray(a) for a in arrays))[0])

    def backward(dy, fan_out):
        _, caches = se_forward(*(xp.asarray(a) for a in inputs))
        return [to_numpy(g) for g in se_backward(xp.asarray(dy), caches, fan_out=fan_out)]

    errors = gradcheck(fn, lambda dy: backward(dy, True), inputs, names=names)
    assert max(errors.values()) <= GRAD_TOL, errors
    # Without the squeeze path, du misses broadcast(dz) / (H W) and the check catches it.
    errors = gradcheck(fn, lambda dy: backward(dy, False), inputs, names=names, wrt=[0])
    assert errors["u"] > 1e-3, errors


def test_se_path_matches_torch(xp):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    inputs = se_inputs(rng, N=3, C=8, H=4, W=5, r=4)
    dy = rng.standard_normal(inputs[0].shape)

    def se_torch(u, w1, b1, w2, b2):
        s = torch.sigmoid(F.linear(F.relu(F.linear(u.mean(dim=(2, 3)), w1, b1)), w2, b2))
        return u * s[:, :, None, None]

    y_t, grads_t = torch_grads(torch, se_torch, inputs, dy)
    y, caches = se_forward(*(xp.asarray(a) for a in inputs))
    assert_rel(y, y_t)
    for g, g_t in zip(se_backward(xp.asarray(dy), caches), grads_t):
        assert_rel(g, g_t)
