"""batchnorm2d_relu: ReLU(BN(x) + residual) as one op — formula, gradients, PyTorch oracle, errors."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sescratch.ops.batchnorm import batchnorm2d_backward, batchnorm2d_forward
from sescratch.ops.batchnorm_relu import batchnorm2d_relu_backward, batchnorm2d_relu_forward
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp
from tests.ops.test_batchnorm import bn_params, bn_reference, nchw


@with_xp
@given(shape=nchw, residual=st.booleans(), training=st.booleans(), seed=st.integers(0, 2**31))
def test_forward_running_stats_and_gradients(xp, shape, residual, training, seed):
    N, C, H, W = shape
    assume(N * H * W >= 3)  # as batch norm's own test: M = 2 leaves only rounding noise in dx
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2 + 1
    r = rng.standard_normal(shape) if residual else None
    gamma, beta, rm0, rv0 = bn_params(rng, C)
    rm, rv = xp.array(rm0), xp.array(rv0)  # updated in place in training mode
    rm_bn, rv_bn = rm0.copy(), rv0.copy()  # the same update by batch norm's own op
    kw = {"training": training, "momentum": 0.3}
    y, _ = batchnorm2d_relu_forward(xp.asarray(x), xp.asarray(gamma), xp.asarray(beta), rm, rv, **kw,
                                    residual=None if r is None else xp.asarray(r))
    z = bn_reference(x, gamma, beta) if training else bn_reference(x, gamma, beta, rm0, rv0)
    np.testing.assert_allclose(to_numpy(y), np.maximum(z + (0 if r is None else r), 0), rtol=1e-10, atol=1e-10)
    batchnorm2d_forward(x, gamma, beta, rm_bn, rv_bn, **kw)
    np.testing.assert_allclose(to_numpy(rm), rm_bn, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(rv), rv_bn, rtol=1e-12)
    inputs = {"x": x, "gamma": gamma, "beta": beta} | ({"residual": r} if residual else {})

    def forward(x, gamma, beta, residual=None):
        return batchnorm2d_relu_forward(x, gamma, beta, rm, rv, **kw, residual=residual)

    def backward(dy, cache):
        dx, dgamma, dbeta, dr = batchnorm2d_relu_backward(dy, cache)
        assert (dr is None) == (not residual)
        return (dx, dgamma, dbeta) if dr is None else (dx, dgamma, dbeta, dr)

    check_gradients(xp, forward, backward, inputs, seed=seed)


def test_backward_is_batchnorm_backward_of_the_masked_gradient(xp):
    """dz = dy * [y > 0] into batch norm's backward; the residual receives dz itself."""
    rng = np.random.default_rng(3)
    x, r, dy = (xp.asarray(rng.standard_normal((4, 3, 5, 5))) for _ in range(3))
    gamma, beta, _, _ = (xp.asarray(p) for p in bn_params(rng, 3))
    y, cache = batchnorm2d_relu_forward(x, gamma, beta, None, None, training=True, residual=r)
    z, bn_cache = batchnorm2d_forward(x, gamma, beta, None, None, training=True)
    dz = xp.where(z + r > 0, dy, 0)
    for got, want in zip(batchnorm2d_relu_backward(dy, cache), (*batchnorm2d_backward(dz, bn_cache), dz)):
        assert_rel(got, want, tol=1e-12)
    assert 0.2 < float((y > 0).mean()) < 0.8  # both sides of the ReLU are exercised


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("residual", [False, True])
def test_matches_torch(xp, training, residual):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    x, dy = rng.standard_normal((4, 3, 5, 6)) * 3 - 1, rng.standard_normal((4, 3, 5, 6))
    r = rng.standard_normal(x.shape)
    gamma, beta, rm0, rv0 = bn_params(rng, 3)
    rm_t, rv_t = torch.tensor(rm0), torch.tensor(rv0)
    kw = {"training": training, "momentum": 0.3, "eps": 1e-3}

    def torch_fn(x, g, b, r):
        z = torch.nn.functional.batch_norm(x, rm_t, rv_t, g, b, **kw)
        return torch.relu(z + r) if residual else torch.relu(z) + 0 * r

    y_t, grads_t = torch_grads(torch, torch_fn, [x, gamma, beta, r], dy)
    rm, rv = xp.array(rm0), xp.array(rv0)
    y, cache = batchnorm2d_relu_forward(xp.asarray(x), xp.asarray(gamma), xp.asarray(beta), rm, rv, **kw,
                                        residual=xp.asarray(r) if residual else None)
    assert_rel(y, y_t)
    dx, dgamma, dbeta, dr = batchnorm2d_relu_backward(xp.asarray(dy), cache)
    for g, g_t in zip((dx, dgamma, dbeta), grads_t):
        assert_rel(g, g_t)
    if residual:
        assert_rel(dr, grads_t[3])
    assert_rel(rm, rm_t.numpy())
    assert_rel(rv, rv_t.numpy())


OP = "batchnorm2d_relu_forward"


@pytest.mark.parametrize(
    "change, match",
    [
        ({"residual": np.ones((2, 3, 2, 1))}, rf"{OP}: argument 'residual' expected shape \(2, 3, 2, 2\)"),
        ({"residual": np.ones((2, 3, 2, 2), dtype=np.float32)}, rf"{OP}: arguments must share one dtype"),
        ({"residual": np.ones((2, 3, 2))}, rf"{OP}: argument 'residual' must be 4-D"),
        ({"gamma": np.ones(4)}, rf"{OP}: argument 'gamma' expected shape \(3,\)"),
        ({"eps": -1.0}, rf"{OP}: argument 'eps' must be > 0"),
    ],
)
def test_bad_input(change, match):
    args = {"x": np.ones((2, 3, 2, 2)), "gamma": np.ones(3), "beta": np.zeros(3),
            "running_mean": np.zeros(3), "running_var": np.ones(3), "training": True}
    args.update(change)
    with pytest.raises(ValueError, match=match):
        batchnorm2d_relu_forward(**args)


def test_backward_bad_dy():
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2))
    _, cache = batchnorm2d_relu_forward(x, np.ones(3), np.zeros(3), None, None, training=True)
    with pytest.raises(ValueError, match=r"batchnorm2d_relu_backward: argument 'dy' expected shape \(2, 3,"):
        batchnorm2d_relu_backward(np.ones((2, 3, 2, 1)), cache)
