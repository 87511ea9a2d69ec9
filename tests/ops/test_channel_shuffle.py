"""channel_shuffle: the permutation, its inverse backward, finite differences, PyTorch, bad input."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.ops.channel_shuffle import channel_shuffle_backward, channel_shuffle_forward
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp


@st.composite
def shuffle_cases(draw):
    groups, per_group = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rest = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    return (draw(st.integers(1, 2)), groups * per_group, *rest), groups


@with_xp
@given(case=shuffle_cases(), seed=st.integers(0, 2**31))
def test_channel_shuffle_forward_and_gradient(xp, case, seed):
    shape, G = case
    x = np.random.default_rng(seed).standard_normal(shape)
    y, cache = channel_shuffle_forward(xp.asarray(x), G)
    C, Cg = shape[1], shape[1] // G
    for g in range(G):  # the formula of the module docstring, channel by channel
        for j in range(Cg):
            np.testing.assert_array_equal(to_numpy(y)[:, j * G + g], x[:, g * Cg + j])
    dx = channel_shuffle_backward(y, cache)  # the backward is the inverse permutation
    np.testing.assert_array_equal(to_numpy(dx), x)
    check_gradients(xp, channel_shuffle_forward, channel_shuffle_backward, {"x": x},
                    kwargs={"groups": G}, seed=seed)


@pytest.mark.parametrize("groups", [1, 3, 8])
def test_channel_shuffle_matches_torch(xp, groups):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((2, 24, 3, 2))
    dy = rng.standard_normal(x.shape)
    y_t, (dx_t,) = torch_grads(torch, lambda t: torch.nn.functional.channel_shuffle(t, groups), [x], dy)
    y, cache = channel_shuffle_forward(xp.asarray(x), groups)
    assert_rel(y, y_t)
    assert_rel(channel_shuffle_backward(xp.asarray(dy), cache), dx_t)


def test_channel_shuffle_keeps_float32(xp):
    x = xp.asarray(np.arange(24, dtype=np.float32).reshape(1, 6, 2, 2))
    y, cache = channel_shuffle_forward(x, 3)
    dx = channel_shuffle_backward(xp.ones_like(y), cache)
    assert y.dtype == dx.dtype == np.float32 and dx.shape == x.shape


@pytest.mark.parametrize(
    "x, groups, match",
    [
        (np.ones((2, 6, 3, 3)), 4, r"argument 'groups' must divide the channels C=6 of x \(shape \(2, 6, 3, 3\)\), got groups=4"),
        (np.ones((2, 6, 3, 3)), 0, r"argument 'groups' must be a positive int, got 0"),
        (np.ones((2, 6, 3, 3)), 2.0, r"argument 'groups' must be a positive int, got 2.0"),
        (np.ones((2, 6, 3, 3)), True, r"argument 'groups' must be a positive int, got True"),
        (np.ones(6), 2, r"argument 'x' must be \(N, C, ...\) with at least 2 dimensions, got 1-D"),
        (np.ones((2, 6), dtype=np.int32), 2, r"argument 'x' must have a floating dtype"),
    ],
)
def test_channel_shuffle_bad_input(x, groups, match):
    with pytest.raises(ValueError, match=f"channel_shuffle_forward: {match}"):
        channel_shuffle_forward(x, groups)


def test_channel_shuffle_backward_bad_dy():
    _, cache = channel_shuffle_forward(np.ones((2, 6, 3, 3)), 3)
    with pytest.raises(ValueError, match=r"channel_shuffle_backward: argument 'dy' expected shape \(2, 6, 3, 3\)"):
        channel_shuffle_backward(np.ones((2, 6, 3)), cache)
