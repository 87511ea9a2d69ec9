"""The layers of issue 11's ops: MaxPool2d(ceil_mode), AvgPool2d, ChannelShuffle, ReLU6.

Each against its torch.nn twin (forward and input gradient, float64, random upstream gradient),
a finite-difference check of the module's backward, the shape trace (``summary``) agreeing with
the forward, and clear errors.
"""
import numpy as np
import pytest

from sescratch import nn
from sescratch.gradcheck import gradcheck
from sescratch.nn.module import ShapeError


def _cases(torch):
    F = torch.nn
    return [
        (nn.MaxPool2d(3, 2, ceil_mode=True), F.MaxPool2d(3, 2, ceil_mode=True)),
        (nn.MaxPool2d(3, 2, 1, ceil_mode=True), F.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (nn.AvgPool2d(3, 1, 1), F.AvgPool2d(3, 1, 1)),
        (nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
         F.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)),
        (nn.AvgPool2d(2), F.AvgPool2d(2)),
        (nn.ChannelShuffle(3), F.ChannelShuffle(3)),
        (nn.ReLU6(), F.ReLU6()),
    ]


@pytest.mark.parametrize("index", range(7))
def test_layer_matches_torch_forward_backward_and_trace(index):
    torch = pytest.importorskip("torch")
    ours, theirs = _cases(torch)[index]
    rng = np.random.default_rng(index)
    x = rng.uniform(-2, 8, (2, 6, 9, 10))  # ReLU6: both kinks inside the range
    y = ours(x)
    dy = rng.standard_normal(y.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert ours.trace((6, 9, 10), "layer") == y.shape[1:]


@pytest.mark.parametrize("make", [
    lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda: nn.ChannelShuffle(2),
    lambda: nn.ReLU6(),
])
def test_layer_backward_matches_finite_differences(make):
    layer = make()
    rng = np.random.default_rng(3)
    size = 2 * 4 * 5 * 5  # distinct values 1/size apart, away from ReLU6's kinks: no ties
    x = ((rng.permutation(size) + 0.5) / size * 7 - 0.7).reshape(2, 4, 5, 5)
    errors = gradcheck(lambda a: layer(a), lambda dy: (layer.backward(dy),), [x], seed=4)
    assert max(errors.values()) < 1e-6, errors


def test_summary_records_and_errors():
    records = []
    assert nn.AvgPool2d(3, 1, 1).trace((4, 8, 8), "pool", records) == (4, 8, 8)
    assert records[-1].kind == "AvgPool2d" and records[-1].macs == 4 * 8 * 8 * 9
    assert nn.MaxPool2d(3, 2, ceil_mode=True).trace((4, 112, 112), "pool", records) == (4, 56, 56)
    assert nn.ChannelShuffle(2).trace((4, 8, 8), "shuffle", records) == (4, 8, 8)
    assert records[-1].params == records[-1].macs == 0
    with pytest.raises(ShapeError, match=r"layer 'shuffle' \(ChannelShuffle, groups=3\) expects .* "
                                         r"C divisible by 3, got \(N, 4, 8, 8\)"):
        nn.ChannelShuffle(3).trace((4, 8, 8), "shuffle")
    with pytest.raises(ValueError, match=r"ChannelShuffle: argument 'groups' must be a positive int, got 0"):
        nn.ChannelShuffle(0)
    with pytest.raises(ValueError, match=r"channel_shuffle_forward: argument 'groups' must divide"):
        nn.ChannelShuffle(3)(np.ones((1, 4, 2, 2)))
    with pytest.raises(ShapeError, match=r"layer 'pool' \(AvgPool2d, kernel 5x5"):
        nn.AvgPool2d(5).trace((4, 3, 3), "pool")
