"""The squeeze: global average pooling (paper Eq. 2) and global max pooling (the ablation)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.ops.squeeze import (
    global_avg_pool_backward,
    global_avg_pool_forward,
    global_max_pool_backward,
    global_max_pool_forward,
)
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp

nchw = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5))


def squeeze_reference(x, reduce):
    N, C = x.shape[:2]
    return np.array([[reduce(x[n, c]) for c in range(C)] for n in range(N)]).reshape(N, C)


def distinct_values(rng, shape):
    """Random values at least 1/size apart: no ties, whatever finite differences do."""
    size = int(np.prod(shape))
    return (rng.permutation(size) + rng.uniform(0.1, 0.4, size)).reshape(shape) / size


@with_xp
@given(shape=nchw, seed=st.integers(0, 2**31))
def test_global_avg_pool_forward_and_gradient(xp, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    z, _ = global_avg_pool_forward(xp.asarray(x))
    np.testing.assert_allclose(to_numpy(z), squeeze_reference(x, np.mean), rtol=1e-12, atol=1e-15)
    check_gradients(xp, global_avg_pool_forward, global_avg_pool_backward, {"x": x}, seed=seed)


@with_xp
@given(shape=nchw, seed=st.integers(0, 2**31))
def test_global_max_pool_forward_and_gradient(xp, shape, seed):
    x = distinct_values(np.random.default_rng(seed), shape)
    z, _ = global_max_pool_forward(xp.asarray(x))
    np.testing.assert_array_equal(to_numpy(z), squeeze_reference(x, np.max))
    check_gradients(xp, global_max_pool_forward, global_max_pool_backward, {"x": x}, seed=seed)


def test_global_max_pool_ties_go_to_the_first_maximum(xp):
    torch = pytest.importorskip("torch")
    x = np.array([[[[1.0, 3.0], [3.0, 0.0]]]])  # the maximum 3 appears twice
    z, cache = global_max_pool_forward(xp.asarray(x))
    dx = to_numpy(global_max_pool_backward(xp.asarray([[2.0]]), cache))
    np.testing.assert_array_equal(dx, [[[[0.0, 2.0], [0.0, 0.0]]]])  # row-major first
    pool = lambda t: torch.nn.functional.adaptive_max_pool2d(t, 1).flatten(1)  # noqa: E731
    _, (dx_t,) = torch_grads(torch, pool, [x], np.array([[2.0]]))
    np.testing.assert_array_equal(dx, dx_t)


def test_squeeze_matches_torch(xp):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    x, dz = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3))
    for forward, backward, pool in (
        (global_avg_pool_forward, global_avg_pool_backward, F.adaptive_avg_pool2d),
        (global_max_pool_forward, global_max_pool_backward, F.adaptive_max_pool2d),
    ):
        z_t, (dx_t,) = torch_grads(torch, lambda t: pool(t, 1).flatten(1), [x], dz)
        z, cache = forward(xp.asarray(x))
        assert_rel(z, z_t)
        assert_rel(backward(xp.asarray(dz), cache), dx_t)


@pytest.mark.parametrize("forward", [global_avg_pool_forward, global_max_pool_forward])
def test_squeeze_keeps_float32_and_returns_writable_gradient(xp, forward):
    backward = {global_avg_pool_forward: global_avg_pool_backward,
                global_max_pool_forward: global_max_pool_backward}[forward]
    z, cache = forward(xp.ones((2, 3, 4, 4), dtype=np.float32))
    dx = backward(xp.ones((2, 3), dtype=np.float32), cache)
    assert z.dtype == np.float32 and dx.dtype == np.float32 and dx.shape == (2, 3, 4, 4)
    dx += 1  # fan-out code accumulates into gradients in place


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_squeeze_backward_into_adds_to_another_gradient_in_place(xp, kind):
    """``into=g``: the fan-out sum ``g + dx`` without a third array, equal to the two steps."""
    forward = global_avg_pool_forward if kind == "avg" else global_max_pool_forward
    backward = global_avg_pool_backward if kind == "avg" else global_max_pool_backward
    rng = np.random.default_rng(3)
    x, dz, g = distinct_values(rng, (2, 3, 4, 5)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3, 4, 5))
    _, cache = forward(xp.asarray(x))
    expected = g + to_numpy(backward(xp.asarray(dz), cache))
    into = xp.asarray(g.copy())
    assert backward(xp.asarray(dz), cache, into=into) is into
    np.testing.assert_allclose(to_numpy(into), expected, rtol=0, atol=1e-15)
    bad = {"shape": (np.ones((2, 3, 4, 4)), r"argument 'into' expected shape \(2, 3, 4, 5\)"),
           "dtype": (np.ones((2, 3, 4, 5), dtype=np.float32), "argument 'into' must have the dtype of dz"),
           "layout": (np.ones((2, 3, 5, 4)).transpose(0, 1, 3, 2), "argument 'into' must be a C-contiguous, writeable")}
    for value, message in bad.values():
        with pytest.raises(ValueError, match=f"global_{kind}_pool_backward: {message}"):
            backward(np.asarray(dz), forward(np.asarray(x))[1], into=value)


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_squeeze_bad_input(kind):
    forward = global_avg_pool_forward if kind == "avg" else global_max_pool_forward
    backward = global_avg_pool_backward if kind == "avg" else global_max_pool_backward
    with pytest.raises(ValueError, match=rf"global_{kind}_pool_forward: argument 'x' must be 4-D"):
        forward(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=rf"global_{kind}_pool_forward: .*floating dtype.*int32"):
        forward(np.ones((2, 3, 4, 4), dtype=np.int32))
    _, cache = forward(np.ones((2, 3, 4, 4)))
    op = f"global_{kind}_pool_backward"
    with pytest.raises(ValueError, match=rf"{op}: argument 'dz' expected shape \(2, 3\)"):
        backward(np.ones((2, 4)), cache)
    with pytest.raises(ValueError, match=rf"{op}: argument 'dz' must be 2-D"):
        backward(np.ones((2, 3, 1, 1)), cache)
