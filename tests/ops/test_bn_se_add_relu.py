"""bn_se_add_relu: the SE-ResNet block's tail as one op == batch norm, SE block, add + ReLU.

Against the composition of the separate ops (forward, all eight gradients, running statistics),
central differences with a random upstream gradient, PyTorch, and over simulated ranks with a
synchronising ``reduce`` (== the whole batch on one rank). Every backend (``xp`` fixture).
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sescratch import ops
from tests.distributed.threaded import run_ranks
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp

shapes = st.tuples(st.integers(1, 3), st.integers(2, 6), st.integers(1, 4), st.integers(1, 4))
NAMES = ("x", "gamma", "beta", "w1", "b1", "w2", "b2", "residual")


def draw_inputs(rng, shape, hidden, bias=True):
    N, C, H, W = shape
    arrays = {"x": rng.standard_normal(shape) * 2 + 1, "gamma": rng.uniform(0.5, 2.0, C),
              "beta": rng.standard_normal(C), "w1": rng.standard_normal((hidden, C)) / np.sqrt(C),
              "b1": rng.standard_normal(hidden) if bias else None,
              "w2": rng.standard_normal((C, hidden)) / np.sqrt(hidden),
              "b2": rng.standard_normal(C) if bias else None, "residual": rng.standard_normal(shape)}
    return arrays, rng.standard_normal(C), rng.uniform(0.5, 2.0, C)


def composed(a, rm, rv, dy, training, gate, momentum=0.1):
    """The separate ops, one after the other: (y, grads in NAMES order, rm, rv)."""
    u, bn = ops.batchnorm2d_forward(a["x"], a["gamma"], a["beta"], rm, rv, training=training, momentum=momentum)
    t, se = ops.se_block_forward(u, a["w1"], a["b1"], a["w2"], a["b2"], gate=gate)
    y, add = ops.add_relu_forward(t, a["residual"])
    dt, dr = ops.add_relu_backward(dy, add)
    du, dw1, db1, dw2, db2 = ops.se_block_backward(dt, se)
    dv, dgamma, dbeta = ops.batchnorm2d_backward(du, bn)
    return y, (dv, dgamma, dbeta, dw1, db1, dw2, db2, dr)


def fused(xp, a, rm, rv, dy, training, gate, momentum=0.1, reduce=None):
    args = [None if a[n] is None else xp.asarray(a[n]) for n in NAMES]
    y, cache = ops.bn_se_add_relu_forward(*args[:3], rm, rv, *args[3:], training=training, gate=gate,
                                          momentum=momentum, reduce=reduce)
    return y, ops.bn_se_add_relu_backward(xp.asarray(dy), cache), cache


@with_xp
@given(shape=shapes, hidden=st.integers(1, 3), training=st.booleans(), bias=st.booleans(),
       gate=st.sampled_from(["sigmoid", "tanh", "relu", "hard_sigmoid"]), seed=st.integers(0, 2**31))
def test_equals_the_separate_ops(xp, shape, hidden, training, bias, gate, seed):
    N, C, H, W = shape
    assume(N * H * W >= 3)
    rng = np.random.default_rng(seed)
    a, rm0, rv0 = draw_inputs(rng, shape, hidden, bias)
    dy = rng.standard_normal(shape)
    rm, rv = rm0.copy(), rv0.copy()
    y_ref, grads_ref = composed(a, rm, rv, dy, training, gate, momentum=0.3)
    rm_f, rv_f = xp.asarray(rm0), xp.asarray(rv0)
    y, grads, cache = fused(xp, a, rm_f, rv_f, dy, training, gate, momentum=0.3)
    assert_rel(y, y_ref, tol=1e-12)
    for name, g, g_ref in zip(NAMES, grads, grads_ref):
        assert (g is None) == (g_ref is None), name
        if g is not None:
            assert_rel(g, g_ref, tol=1e-10)
    assert_rel(rm_f, rm, tol=1e-12)
    assert_rel(rv_f, rv, tol=1e-12)
    _, se = ops.se_block_forward(ops.batchnorm2d_forward(a["x"], a["gamma"], a["beta"], rm0.copy(), rv0.copy(),
                                                         training=training)[0], a["w1"], a["b1"], a["w2"], a["b2"], gate=gate)
    assert_rel(cache.s, se.scale_cache.s, tol=1e-12)  # the excitation kept for analysis is the SE block's


@with_xp
@given(shape=shapes, hidden=st.integers(1, 3), training=st.booleans(), seed=st.integers(0, 2**31))
def test_gradients_against_central_differences(xp, shape, hidden, training, seed):
    N, C, H, W = shape
    assume(N * H * W >= 3)
    rng = np.random.default_rng(seed)
    a, rm0, rv0 = draw_inputs(rng, shape, hidden)
    rm, rv = xp.asarray(rm0), xp.asarray(rv0)

    def forward(x, gamma, beta, w1, b1, w2, b2, residual):
        return ops.bn_se_add_relu_forward(x, gamma, beta, rm, rv, w1, b1, w2, b2, residual, training=training)

    check_gradients(xp, forward, ops.bn_se_add_relu_backward, a, seed=seed)


@pytest.mark.parametrize("training", [True, False])
def test_matches_torch(xp, training):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(21)
    a, rm0, rv0 = draw_inputs(rng, (4, 6, 5, 3), 2)
    dy = rng.standard_normal(a["x"].shape)
    rm_t, rv_t = torch.tensor(rm0), torch.tensor(rv0)

    def tail(v, gamma, beta, w1, b1, w2, b2, r):
        u = F.batch_norm(v, rm_t, rv_t, gamma, beta, training=training, momentum=0.1)
        s = torch.sigmoid(F.linear(F.relu(F.linear(u.mean(dim=(2, 3)), w1, b1)), w2, b2))
        return F.relu(u * s[:, :, None, None] + r)

    y_t, grads_t = torch_grads(torch, tail, [a[n] for n in NAMES], dy)
    rm, rv = xp.asarray(rm0), xp.asarray(rv0)
    y, grads, _ = fused(xp, a, rm, rv, dy, training, "sigmoid")
    assert_rel(y, y_t)
    for name, g, g_t in zip(NAMES, grads, grads_t):
        assert_rel(g, g_t)
    assert_rel(rm, rm_t.numpy())
    assert_rel(rv, rv_t.numpy())


@pytest.mark.parametrize("parts", [[3, 2], [1, 0, 4], [5]], ids=str)
def test_synchronised_ranks_equal_the_whole_batch(parts):
    """With reduce (synchronised batch norm), R shards give the whole batch's result; the
    returned dgamma and dbeta are each rank's share, summing to the whole batch's."""
    rng = np.random.default_rng(5)
    a, rm0, rv0 = draw_inputs(rng, (sum(parts), 4, 3, 3), 2)
    dy = rng.standard_normal(a["x"].shape)
    y_ref, grads_ref = composed(a, rm0.copy(), rv0.copy(), dy, True, "sigmoid")
    bounds = np.cumsum([0] + parts)

    def rank(comm):
        s = slice(bounds[comm.rank], bounds[comm.rank + 1])
        shard = dict(a, x=a["x"][s], residual=a["residual"][s])
        rm, rv = rm0.copy(), rv0.copy()
        y, grads, _ = fused(np, shard, rm, rv, dy[s], True, "sigmoid", reduce=comm.allreduce_sum)
        return y, grads, rm, comm.calls

    out = run_ranks(len(parts), rank)
    assert_rel(np.concatenate([o[0] for o in out]), y_ref, tol=1e-12)
    assert_rel(np.concatenate([o[1][0] for o in out]), grads_ref[0], tol=1e-10)  # dx
    assert_rel(np.concatenate([o[1][7] for o in out]), grads_ref[7], tol=1e-12)  # dresidual
    for i in range(1, 7):  # gamma, beta and the FCs: the shares sum to the whole batch's gradient
        assert_rel(sum(o[1][i] for o in out), grads_ref[i], tol=1e-10)
    for o in out:
        np.testing.assert_array_equal(o[2], out[0][2])  # the same running mean on every rank
    assert {o[3] for o in out} == {3}  # two allreduces forward (sums, squares), one backward


OP = "bn_se_add_relu_forward"


@pytest.mark.parametrize(
    "change, match",
    [
        ({"residual": np.ones((2, 4, 3, 2))}, rf"{OP}: argument 'residual' expected shape \(2, 4, 3, 3\)"),
        ({"residual": np.ones((2, 4, 3, 3), dtype=np.float32)}, rf"{OP}: arguments must share one dtype"),
        ({"w1": np.ones((2, 5))}, rf"{OP}: argument 'w1' expected shape \(\*, 4\)"),
        ({"gamma": np.ones(3)}, rf"{OP}: argument 'gamma' expected shape \(4,\)"),
        ({"x": np.ones((1, 4, 1, 1)), "residual": np.ones((1, 4, 1, 1))}, rf"{OP}: argument 'x' needs more than 1 value"),
        ({"gate": "softmax"}, rf"{OP}: argument 'gate' must be one of"),
    ],
)
def test_bad_input(change, match):
    args = {"x": np.ones((2, 4, 3, 3)), "gamma": np.ones(4), "beta": np.zeros(4), "running_mean": np.zeros(4),
            "running_var": np.ones(4), "w1": np.ones((2, 4)), "b1": None, "w2": np.ones((4, 2)), "b2": None,
            "residual": np.ones((2, 4, 3, 3)), "training": True}
    args.update(change)
    with pytest.raises(ValueError, match=match):
        ops.bn_se_add_relu_forward(**args)


def test_backward_bad_dy():
    rng = np.random.default_rng(0)
    a, rm, rv = draw_inputs(rng, (2, 4, 3, 3), 2)
    _, cache = ops.bn_se_add_relu_forward(a["x"], a["gamma"], a["beta"], rm, rv, a["w1"], a["b1"], a["w2"],
                                          a["b2"], a["residual"], training=True)
    with pytest.raises(ValueError, match=r"bn_se_add_relu_backward: argument 'dy' expected shape \(2, 4, 3, 3\)"):
        ops.bn_se_add_relu_backward(np.ones((2, 4, 3, 2)), cache)
