"""ReLU, ReLU6, sigmoid, tanh, hard-sigmoid: formula, gradient check, PyTorch oracle, ±1e4 inputs."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.ops import activation as act
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp

# name -> (forward, backward, scalar formula, kinks to keep away from, torch.nn.functional name)
OPS = {
    "relu": (act.relu_forward, act.relu_backward, lambda v: max(v, 0.0), (0.0,), "relu"),
    "sigmoid": (act.sigmoid_forward, act.sigmoid_backward, lambda v: 1 / (1 + math.exp(-v)), (),
                "sigmoid"),
    "tanh": (act.tanh_forward, act.tanh_backward, math.tanh, (), "tanh"),
    "hard_sigmoid": (act.hard_sigmoid_forward, act.hard_sigmoid_backward,
                     lambda v: min(max(v + 3, 0.0), 6.0) / 6, (-3.0, 3.0), "hardsigmoid"),
    "relu6": (act.relu6_forward, act.relu6_backward, lambda v: min(max(v, 0.0), 6.0), (0.0, 6.0),
              "relu6"),
}


def away_from(x, kinks, gap=0.05):
    """Move entries within ``gap`` of a kink out to ``kink ± gap`` (finite differences straddle
    no kink)."""
    for k in kinks:
        near = np.abs(x - k) < gap
        x[near] = k + np.where(x[near] >= k, gap, -gap)
    return x


@with_xp
@pytest.mark.parametrize("name", OPS)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 2**31))
def test_activation_forward_and_gradient(xp, name, shape, seed):
    forward, backward, formula, kinks, _ = OPS[name]
    x = away_from(np.random.default_rng(seed).uniform(-5, 5, shape), kinks)
    y, _ = forward(xp.asarray(x))
    expected = np.vectorize(formula)(x)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12, atol=1e-15)
    check_gradients(xp, forward, backward, {"x": x}, seed=seed)


@pytest.mark.parametrize("name", OPS)
def test_activation_matches_torch(xp, name):
    torch = pytest.importorskip("torch")
    forward, backward, _, kinks, torch_name = OPS[name]
    rng = np.random.default_rng(3)
    x = away_from(rng.uniform(-5, 5, (2, 3, 4, 5)), kinks)
    dy = rng.standard_normal(x.shape)
    y_t, (dx_t,) = torch_grads(torch, getattr(torch.nn.functional, torch_name), [x], dy)
    y, cache = forward(xp.asarray(x))
    assert_rel(y, y_t)
    # PyTorch's CPU hardsigmoid backward multiplies by the float32 constant 1.0f / 6.0f
    # (relative error 3e-8) even in float64; ours divides by 6 exactly.
    assert_rel(backward(xp.asarray(dy), cache), dx_t, tol=1e-7 if name == "hard_sigmoid" else 1e-9)


@pytest.mark.parametrize("name", OPS)
def test_activation_gradient_at_kinks_matches_torch(name):
    """At a kink we take PyTorch's choice (subgradient 0: ReLU at 0, hard-sigmoid at ±3)."""
    torch = pytest.importorskip("torch")
    forward, backward, _, kinks, torch_name = OPS[name]
    x = np.array([-3.0, 0.0, 3.0, -6.0, 6.0])
    _, (dx_t,) = torch_grads(torch, getattr(torch.nn.functional, torch_name), [x], np.ones(5))
    _, cache = forward(x)
    np.testing.assert_allclose(backward(np.ones(5), cache), dx_t, rtol=1e-7, atol=0)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_extreme_inputs_no_warning_no_nan(xp, name, dtype):
    forward, backward, _, _, _ = OPS[name]
    x = xp.asarray(np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]] * 2, dtype=dtype).reshape(1, 2, 1, 5))
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y, cache = forward(x)
        dx = backward(xp.ones_like(x), cache)
    y, dx = to_numpy(y), to_numpy(dx)
    assert y.dtype == dtype and dx.dtype == dtype
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    if name in ("sigmoid", "hard_sigmoid"):
        assert y[0, 0, 0, 0] == 0 and y[0, 0, 0, -1] == 1


def test_sigmoid_is_accurate_in_both_tails():
    """The stable form keeps relative accuracy for very negative inputs (1 - 1/(1+e) would not)."""
    x = np.array([-700.0, -30.0, 30.0])
    y, _ = act.sigmoid_forward(x)
    expected = [math.exp(-700.0), 1 / (1 + math.exp(30.0)), 1 / (1 + math.exp(-30.0))]
    np.testing.assert_allclose(y, expected, rtol=1e-14)


@pytest.mark.parametrize("name", OPS)
def test_activation_bad_input(name):
    forward, backward, _, _, _ = OPS[name]
    op = f"{name}_forward"
    with pytest.raises(ValueError, match=rf"{op}: argument 'x' must have a floating dtype .*int64"):
        forward(np.arange(4))
    with pytest.raises(ValueError, match=rf"{op}: argument 'x' must be an array, got list"):
        forward([1.0, 2.0])
    _, cache = forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=rf"{name}_backward: argument 'dy' expected shape \(2, 3"):
        backward(np.ones((3, 2)), cache)


@with_xp
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 2**31))
def test_relu6_gradient_on_both_sides_of_both_kinks(xp, shape, seed):
    """Inputs over [-8, 8] reach the upper clip at 6 as well as the lower one at 0."""
    x = away_from(np.random.default_rng(seed).uniform(-8, 8, shape), (0.0, 6.0))
    y, _ = act.relu6_forward(xp.asarray(x))
    np.testing.assert_array_equal(to_numpy(y), np.clip(x, 0, 6))
    check_gradients(xp, act.relu6_forward, act.relu6_backward, {"x": x}, seed=seed)
