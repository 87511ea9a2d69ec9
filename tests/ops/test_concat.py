"""concat: forward = numpy.concatenate, split backward vs finite differences and PyTorch, bad input."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.ops.concat import concat_backward, concat_forward
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, torch_grads, with_xp


def forward_of(*xs, axis=1):
    """``concat_forward`` with the inputs as separate positional arguments (for the checker)."""
    return concat_forward(list(xs), axis=axis)


def backward_of(dy, cache):
    return tuple(concat_backward(dy, cache))


@st.composite
def concat_cases(draw):
    ndim = draw(st.integers(1, 4))
    axis = draw(st.integers(-ndim, ndim - 1))
    shape = draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim))
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    shapes = []
    for size in sizes:
        piece = list(shape)
        piece[axis] = size
        shapes.append(tuple(piece))
    return shapes, axis


@with_xp
@given(case=concat_cases(), seed=st.integers(0, 2**31))
def test_concat_forward_and_gradient(xp, case, seed):
    shapes, axis = case
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s) for s in shapes]
    y, cache = concat_forward([xp.asarray(x) for x in xs], axis=axis)
    np.testing.assert_array_equal(to_numpy(y), np.concatenate(xs, axis=axis))
    dxs = concat_backward(xp.asarray(rng.standard_normal(y.shape)), cache)
    assert [tuple(d.shape) for d in dxs] == shapes
    inputs = {f"x{b}": x for b, x in enumerate(xs)}
    check_gradients(xp, forward_of, backward_of, inputs, kwargs={"axis": axis}, seed=seed)


def test_concat_matches_torch(xp):
    """Inception's four branches of 64, 96, 32 and 32 channels, concatenated along C."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((2, c, 3, 3)) for c in (64, 96, 32, 32)]
    dy = rng.standard_normal((2, 224, 3, 3))
    y_t, dxs_t = torch_grads(torch, lambda *ts: torch.cat(ts, dim=1), xs, dy)
    y, cache = concat_forward([xp.asarray(x) for x in xs])
    assert_rel(y, y_t)
    for dx, dx_t in zip(concat_backward(xp.asarray(dy), cache), dxs_t):
        assert_rel(dx, dx_t)


def test_concat_keeps_float32_and_gives_separate_gradients(xp):
    xs = [xp.ones((1, c, 2, 2), dtype=np.float32) for c in (1, 2)]
    y, cache = concat_forward(xs)
    dxs = concat_backward(xp.ones_like(y), cache)
    assert y.dtype == dxs[0].dtype == dxs[1].dtype == np.float32
    dxs[0] += 1  # each branch may accumulate into its own gradient
    assert float(dxs[1].max()) == 1.0


@pytest.mark.parametrize(
    "xs, kwargs, match",
    [
        ([], {}, r"argument 'xs' must be a non-empty list of arrays"),
        (np.ones((2, 2)), {}, r"argument 'xs' must be a non-empty list of arrays"),
        ([np.ones((1, 2, 3, 3)), np.ones((1, 2, 4, 3))], {},
         r"argument 'xs\[1\]' expected shape \(1, \*, 3, 3\) \(that of xs\[0\] except along axis 1\), "
         r"got \(1, 2, 4, 3\)"),
        ([np.ones((1, 2, 3, 3)), np.ones((1, 2, 3))], {}, r"argument 'xs\[1\]' expected shape"),
        ([np.ones((1, 2)), np.ones((1, 2), dtype=np.float32)], {}, r"arguments must share one dtype"),
        ([np.ones((1, 2)), np.arange(2)], {}, r"argument 'xs\[1\]' must have a floating dtype"),
        ([np.ones((1, 2))], {"axis": 2}, r"argument 'axis' must be an int in \[-2, 1\] for 2-D arrays, got 2"),
        ([np.ones((1, 2))], {"axis": 1.0}, r"argument 'axis' must be an int"),
    ],
)
def test_concat_bad_input(xs, kwargs, match):
    with pytest.raises(ValueError, match=f"concat_forward: {match}"):
        concat_forward(xs, **kwargs)


def test_concat_backward_bad_dy():
    _, cache = concat_forward([np.ones((1, 2, 3, 3)), np.ones((1, 1, 3, 3))])
    with pytest.raises(ValueError, match=r"concat_backward: argument 'dy' expected shape \(1, 3, 3, 3\)"):
        concat_backward(np.ones((1, 2, 3, 3)), cache)
