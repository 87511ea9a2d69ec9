"""batchnorm2d: formula, all three terms of dx, running statistics, float32, PyTorch oracle."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sescratch.gradcheck import gradcheck_op, numerical_gradients
from sescratch.ops.batchnorm import batchnorm2d_backward, batchnorm2d_forward
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp

nchw = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))


def bn_reference(x, gamma, beta, mean=None, var=None, eps=1e-5):
    """Channel by channel, straight from the definition (batch statistics unless given)."""
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        v = x[:, c]
        m = v.mean() if mean is None else mean[c]
        s2 = ((v - m) ** 2).mean() if var is None else var[c]
        y[:, c] = gamma[c] * (v - m) / np.sqrt(s2 + eps) + beta[c]
    return y


def bn_params(rng, C):
    """gamma, beta, running_mean, running_var."""
    gamma, beta = rng.uniform(0.5, 2.0, C), rng.standard_normal(C)
    return gamma, beta, rng.standard_normal(C), rng.uniform(0.5, 2.0, C)


@with_xp
@given(shape=nchw, eps=st.sampled_from([1e-5, 1e-1]), momentum=st.sampled_from([0.1, 0.5, 1.0]),
       seed=st.integers(0, 2**31))
def test_batchnorm_training_forward_running_stats_and_gradients(xp, shape, eps, momentum, seed):
    N, C, H, W = shape
    M = N * H * W
    assume(M >= 3)  # M = 2 normalises any pair to (-1, 1): gradients ~eps, all rounding noise
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta, rm0, rv0 = bn_params(rng, C)
    rm, rv = xp.array(rm0), xp.array(rv0)  # copies: the op updates them in place
    kw = {"training": True, "momentum": momentum, "eps": eps}
    y, _ = batchnorm2d_forward(xp.asarray(x), xp.asarray(gamma), xp.asarray(beta), rm, rv, **kw)
    expected = bn_reference(x, gamma, beta, eps=eps)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10, atol=1e-10)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(to_numpy(rm), (1 - momentum) * rm0 + momentum * mean, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(rv), (1 - momentum) * rv0 + momentum * var * M / (M - 1),
                               rtol=1e-10)

    def forward(x, gamma, beta):
        return batchnorm2d_forward(x, gamma, beta, rm, rv, **kw)

    check_gradients(xp, forward, batchnorm2d_backward, {"x": x, "gamma": gamma, "beta": beta},
                    seed=seed)


@with_xp
@given(shape=nchw, seed=st.integers(0, 2**31))
def test_batchnorm_eval_forward_and_gradients(xp, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    gamma, beta, rm0, rv0 = bn_params(rng, shape[1])
    rm, rv = xp.array(rm0), xp.array(rv0)  # copies: the op updates them in place
    y, _ = batchnorm2d_forward(xp.asarray(x), xp.asarray(gamma), xp.asarray(beta), rm, rv,
                               training=False)
    expected = bn_reference(x, gamma, beta, rm0, rv0)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(to_numpy(rm), rm0)  # eval mode leaves the statistics alone
    np.testing.assert_array_equal(to_numpy(rv), rv0)

    def forward(x, gamma, beta):
        return batchnorm2d_forward(x, gamma, beta, rm, rv, training=False)

    check_gradients(xp, forward, batchnorm2d_backward, {"x": x, "gamma": gamma, "beta": beta},
                    seed=seed)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_matches_torch_including_running_stats(xp, training):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x, dy = rng.standard_normal((4, 3, 5, 6)) * 3 - 2, rng.standard_normal((4, 3, 5, 6))
    gamma, beta, rm0, rv0 = bn_params(rng, 3)
    rm_t, rv_t = torch.tensor(rm0), torch.tensor(rv0)
    kw = {"training": training, "momentum": 0.3, "eps": 1e-3}

    def bn_torch(x, g, b):
        return torch.nn.functional.batch_norm(x, rm_t, rv_t, g, b, **kw)

    y_t, grads_t = torch_grads(torch, bn_torch, [x, gamma, beta], dy)
    rm, rv = xp.array(rm0), xp.array(rv0)  # copies: the op updates them in place
    y, cache = batchnorm2d_forward(xp.asarray(x), xp.asarray(gamma), xp.asarray(beta), rm, rv, **kw)
    assert_rel(y, y_t)
    for g, g_t in zip(batchnorm2d_backward(xp.asarray(dy), cache), grads_t):
        assert_rel(g, g_t)
    assert_rel(rm, rm_t.numpy())  # updated in place, unbiased variance in the running estimate
    assert_rel(rv, rv_t.numpy())


def backward_without_variance_term(dy, cache):
    """A plausible bug: dx with terms (1) and (2) only."""
    x, mean, inv_std, gamma, _ = cache
    M = x.shape[0] * x.shape[2] * x.shape[3]
    xhat = (x - mean[None, :, None, None]) * inv_std[None, :, None, None]
    dbeta, dgamma = dy.sum(axis=(0, 2, 3)), (dy * xhat).sum(axis=(0, 2, 3))
    dx = (gamma * inv_std)[None, :, None, None] * (dy - (dbeta / M)[None, :, None, None])
    return dx, dgamma, dbeta


def test_all_ones_upstream_gradient_hides_the_missing_variance_term():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 3, 3))
    gamma, beta, rm, rv = bn_params(rng, 2)
    inputs = {"x": x, "gamma": gamma, "beta": beta}

    def forward(x, gamma, beta):
        return batchnorm2d_forward(x, gamma, beta, rm, rv, training=True)

    # dy = 1: sum(BN(x)) = M * sum(beta) whatever x is, so d/dx is 0 -- and so is the buggy dx.
    ones = np.ones_like(x)
    (numeric,) = numerical_gradients(lambda x: forward(x, gamma, beta)[0], [x.copy()], ones)
    buggy_dx = backward_without_variance_term(ones, forward(x, gamma, beta)[1])[0]
    assert np.abs(numeric).max() < 1e-8 and np.abs(buggy_dx - numeric).max() < 1e-8
    # A random dy exposes it, while the real backward passes.
    buggy = gradcheck_op(forward, backward_without_variance_term, inputs, wrt=["x"], seed=1)
    correct = gradcheck_op(forward, batchnorm2d_backward, inputs, wrt=["x"], seed=1)
    assert buggy["x"] > 0.1 and correct["x"] < 1e-6


def test_batchnorm_float32_stays_accurate_with_a_large_mean(xp):
    """One-pass E[x^2] - E[x]^2 in float32 loses everything here; two passes do not."""
    x32 = (1e4 + np.random.default_rng(6).standard_normal((4, 3, 8, 8))).astype(np.float32)
    params = [np.ones(3), np.zeros(3), np.zeros(3), np.ones(3)]
    p32 = [xp.asarray(p.astype(np.float32)) for p in params]
    p64 = [xp.asarray(p) for p in params]
    y32, cache32 = batchnorm2d_forward(xp.asarray(x32), *p32, training=True)
    y64, _ = batchnorm2d_forward(xp.asarray(x32.astype(np.float64)), *p64, training=True)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(to_numpy(y32), to_numpy(y64), atol=2e-3)
    np.testing.assert_allclose(to_numpy(p32[3]), to_numpy(p64[3]), rtol=1e-4)  # running_var
    dx, dgamma, dbeta = batchnorm2d_backward(xp.ones_like(y32), cache32)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.float32


def test_batchnorm_cache_keeps_the_statistics_of_its_step():
    rng = np.random.default_rng(9)
    x, dy = rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 2, 3, 3))
    gamma, beta, rm, rv = bn_params(rng, 2)
    _, cache = batchnorm2d_forward(x, gamma, beta, rm, rv, training=False)
    before = batchnorm2d_backward(dy, cache)
    batchnorm2d_forward(x, gamma, beta, rm, rv, training=True)  # updates rm, rv in place
    for g, g0 in zip(batchnorm2d_backward(dy, cache), before):
        np.testing.assert_array_equal(g, g0)


def test_batchnorm_training_without_running_stats():
    x = np.random.default_rng(0).standard_normal((2, 2, 2, 2))
    y, _ = batchnorm2d_forward(x, np.ones(2), np.zeros(2), None, None, training=True)
    np.testing.assert_allclose(y, bn_reference(x, np.ones(2), np.zeros(2)), rtol=1e-12, atol=1e-12)


OP = "batchnorm2d_forward"


@pytest.mark.parametrize(
    "change, match",
    [
        ({"x": np.ones((2, 3, 4))}, rf"{OP}: argument 'x' must be 4-D, got 3-D"),
        ({"x": np.ones((2, 3, 2, 2), dtype=np.int64)}, rf"{OP}: argument 'x' must have a floating"),
        ({"gamma": np.ones(4)}, rf"{OP}: argument 'gamma' expected shape \(3,\)"),
        ({"beta": np.ones((3, 1))}, rf"{OP}: argument 'beta' must be 1-D"),
        ({"running_var": np.ones(2)}, rf"{OP}: argument 'running_var' expected shape \(3,\)"),
        ({"gamma": np.ones(3, dtype=np.float32)}, rf"{OP}: arguments must share one dtype"),
        ({"x": np.ones((1, 3, 1, 1))}, rf"{OP}: argument 'x' needs more than 1 value per channel"),
        ({"momentum": 1.5}, rf"{OP}: argument 'momentum' must be in \[0, 1\], got 1.5"),
        ({"momentum": None}, rf"{OP}: argument 'momentum' must be in \[0, 1\], got None"),
        ({"eps": 0.0}, rf"{OP}: argument 'eps' must be > 0, got 0.0"),
        ({"running_mean": None, "training": False}, rf"{OP}: argument 'running_mean' is required"),
    ],
)
def test_batchnorm_bad_input(change, match):
    args = {"x": np.ones((2, 3, 2, 2)), "gamma": np.ones(3), "beta": np.zeros(3),
            "running_mean": np.zeros(3), "running_var": np.ones(3), "training": True}
    args.update(change)
    with pytest.raises(ValueError, match=match):
        batchnorm2d_forward(**args)


def test_batchnorm_backward_bad_dy():
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2))
    _, cache = batchnorm2d_forward(x, np.ones(3), np.zeros(3), None, None, training=True)
    with pytest.raises(ValueError, match=r"batchnorm2d_backward: argument 'dy' expected shape \(2, 3,"):
        batchnorm2d_backward(np.ones((2, 3, 2, 1)), cache)
