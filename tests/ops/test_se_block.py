"""The SE block as one function pair (paper Eqs. 2-4): squeeze -> FC -> ReLU -> FC -> gate -> scale,
with the fan-out of ``u`` into both the squeeze and the scale (docs/derivations/se_block.md)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.gradcheck import gradcheck
from sescratch.ops import se_block_backward, se_block_forward, se_scale_backward
from sescratch.ops.se_block import GATES, SQUEEZES
from tests.helpers import to_numpy
from tests.ops._ophelp import GRAD_TOL, assert_rel, torch_grads, with_xp

NAMES = ["u", "w1", "b1", "w2", "b2"]


def se_inputs(rng, N=2, C=4, H=3, W=3, C_r=2):
    # b1 > 0 keeps most hidden ReLUs active, so the squeeze path carries gradient
    return [rng.standard_normal((N, C, H, W)), rng.standard_normal((C_r, C)),
            rng.uniform(0.5, 1.5, C_r), rng.standard_normal((C, C_r)), rng.standard_normal(C)]


def check_block(xp, inputs, *, seed, **options):
    """Gradient-check every input (None biases skipped) against central differences, float64."""
    wrt = [i for i, a in enumerate(inputs) if a is not None]
    arrays = [np.zeros(0) if a is None else a for a in inputs]

    def on_xp(arrays_):
        return [None if inputs[i] is None else xp.asarray(a) for i, a in enumerate(arrays_)]

    def fn(*arrays_):
        return to_numpy(se_block_forward(*on_xp(arrays_), **options)[0])

    def backward(dy):
        _, cache = se_block_forward(*on_xp(arrays), **options)
        return [None if g is None else to_numpy(g) for g in se_block_backward(xp.asarray(dy), cache)]

    errors = gradcheck(fn, backward, arrays, wrt=wrt, seed=seed + 1, names=NAMES)
    assert max(errors.values()) <= GRAD_TOL, errors


@with_xp
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4)),
       hidden=st.integers(1, 3), bias=st.booleans(), squeeze=st.sampled_from(sorted(SQUEEZES)),
       gate=st.sampled_from(sorted(GATES)), seed=st.integers(0, 2**31))
def test_se_block_gradients_random_upstream(xp, shape, hidden, bias, squeeze, gate, seed):
    N, C, H, W = shape
    inputs = se_inputs(np.random.default_rng(seed), N, C, H, W, hidden)
    if not bias:
        inputs[2] = inputs[4] = None
    # the kinks of ReLU/hard sigmoid and ties of the max squeeze are measure-zero for these draws
    check_block(xp, inputs, seed=seed, squeeze=squeeze, gate=gate)


def test_se_block_catches_a_missing_squeeze_path(xp):
    """Without ``du_squeeze``, du misses broadcast(dz) / (H W): the check must catch it."""
    inputs = se_inputs(np.random.default_rng(7))

    def fn(*arrays):
        return to_numpy(se_block_forward(*(xp.asarray(a) for a in arrays))[0])

    def scale_path_only(dy):
        _, cache = se_block_forward(*(xp.asarray(a) for a in inputs))
        du_scale, _ = se_scale_backward(xp.asarray(dy), cache.scale_cache)
        return [to_numpy(du_scale), None, None, None, None]

    errors = gradcheck(fn, scale_path_only, inputs, names=NAMES, wrt=[0], seed=1)
    assert errors["u"] > 1e-3, errors


def test_se_block_matches_torch(xp):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    inputs = se_inputs(rng, N=3, C=8, H=4, W=5, C_r=2)
    dy = rng.standard_normal(inputs[0].shape)

    def se_torch(u, w1, b1, w2, b2):
        s = torch.sigmoid(F.linear(F.relu(F.linear(u.mean(dim=(2, 3)), w1, b1)), w2, b2))
        return u * s[:, :, None, None]

    y_t, grads_t = torch_grads(torch, se_torch, inputs, dy)
    y, cache = se_block_forward(*(xp.asarray(a) for a in inputs))
    assert_rel(y, y_t)
    u, w1, b1, w2, b2 = (torch.tensor(a) for a in inputs)
    s_t = torch.sigmoid(F.linear(F.relu(F.linear(u.mean(dim=(2, 3)), w1, b1)), w2, b2))
    assert_rel(cache.scale_cache.s, s_t.numpy())  # the excitation s (N, C) is kept in the cache
    for g, g_t in zip(se_block_backward(xp.asarray(dy), cache), grads_t):
        assert_rel(g, g_t)


def test_se_block_max_squeeze_and_tanh_gate_match_torch(xp):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(9)
    inputs = se_inputs(rng, N=2, C=6, H=3, W=4, C_r=3)
    dy = rng.standard_normal(inputs[0].shape)

    def se_torch(u, w1, b1, w2, b2):
        z = F.adaptive_max_pool2d(u, 1)[:, :, 0, 0]
        s = torch.tanh(F.linear(F.relu(F.linear(z, w1, b1)), w2, b2))
        return u * s[:, :, None, None]

    y_t, grads_t = torch_grads(torch, se_torch, inputs, dy)
    y, cache = se_block_forward(*(xp.asarray(a) for a in inputs), squeeze="max", gate="tanh")
    assert_rel(y, y_t)
    for g, g_t in zip(se_block_backward(xp.asarray(dy), cache), grads_t):
        assert_rel(g, g_t)


def test_se_block_without_biases_returns_none_for_them(xp):
    u, w1, _, w2, _ = se_inputs(np.random.default_rng(3))
    y, cache = se_block_forward(xp.asarray(u), xp.asarray(w1), None, xp.asarray(w2), None)
    du, dw1, db1, dw2, db2 = se_block_backward(xp.ones_like(y), cache)
    assert db1 is None and db2 is None
    assert du.shape == u.shape and dw1.shape == w1.shape and dw2.shape == w2.shape


def test_se_block_keeps_float32(xp):
    u, w1, b1, w2, b2 = (xp.asarray(a.astype(np.float32)) for a in se_inputs(np.random.default_rng(4)))
    y, cache = se_block_forward(u, w1, b1, w2, b2)
    grads = se_block_backward(xp.ones_like(y), cache)
    assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)


def test_se_block_bad_input():
    u, w1, b1, w2, b2 = se_inputs(np.random.default_rng(5))  # C = 4, C_r = 2
    cases = [
        ((u[0], w1, b1, w2, b2), {}, r"se_block_forward: argument 'u' must be 4-D, got 3-D"),
        ((u, w1.T, b1, w2, b2), {}, r"argument 'w1' expected shape \(\*, 4\) \(w1 is \(C_r, C\) with C=4"),
        ((u, w1, b1, w2.T, b2), {}, r"argument 'w2' expected shape \(4, 2\)"),
        ((u, w1, b1[:1], w2, b2), {}, r"argument 'b1' expected shape \(2,\)"),
        ((u, w1, b1, w2, b2[:3]), {}, r"argument 'b2' expected shape \(4,\)"),
        ((u, w1.astype(np.float32), b1, w2, b2), {}, r"arguments must share one dtype"),
        ((u, w1, b1, w2, b2), {"squeeze": "mean"}, r"argument 'squeeze' must be one of \['avg', 'max'\]"),
        ((u, w1, b1, w2, b2), {"gate": "softmax"}, r"argument 'gate' must be one of"),
    ]
    for args, options, message in cases:
        with pytest.raises(ValueError, match=message):
            se_block_forward(*args, **options)
    y, cache = se_block_forward(u, w1, b1, w2, b2)
    with pytest.raises(ValueError, match=r"se_block_backward: argument 'dy' expected shape \(2, 4, 3, 3\)"):
        se_block_backward(np.ones((2, 4, 3, 2)), cache)


@pytest.mark.parametrize("squeeze, gate, bias", [("avg", "sigmoid", True), ("max", "hard_sigmoid", False)])
def test_nn_se_block_is_se_block_forward_and_backward(monkeypatch, squeeze, gate, bias):
    """nn.SEBlock holds the parameters and calls the op pair: no second copy of the math."""
    from sescratch import nn, ops

    block = nn.SEBlock(6, reduction=2, squeeze=squeeze, gate=gate, bias=bias).astype(np.float64)
    rng = np.random.default_rng(11)
    u, dy = rng.standard_normal((2, 6, 3, 4)), rng.standard_normal((2, 6, 3, 4))
    calls = []
    for name in ("se_block_forward", "se_block_backward"):
        original = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    y = block(u)
    block.zero_grad()
    du = block.backward(dy)
    assert calls == ["se_block_forward", "se_block_backward"]

    b1 = block.fc1.bias.data if bias else None
    b2 = block.fc2.bias.data if bias else None
    y_op, cache = se_block_forward(u, block.fc1.weight.data, b1, block.fc2.weight.data, b2,
                                   squeeze=squeeze, gate=gate)
    du_op, dw1, db1, dw2, db2 = se_block_backward(dy, cache)
    np.testing.assert_array_equal(y, y_op)
    np.testing.assert_array_equal(du, du_op)
    np.testing.assert_array_equal(block.excitation, cache.scale_cache.s)
    np.testing.assert_array_equal(block.fc1.weight.grad, dw1)
    np.testing.assert_array_equal(block.fc2.weight.grad, dw2)
    if bias:
        np.testing.assert_array_equal(block.fc1.bias.grad, db1)
        np.testing.assert_array_equal(block.fc2.bias.grad, db2)
