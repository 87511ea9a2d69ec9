"""Channel shuffle (ShuffleNet): a fixed permutation of the channels, and its inverse backward.

Notation
--------
N : batch size    C : channels, ``C = G * Cg``    G : groups    Cg : channels per group
x, y : (N, C, H, W), or any (N, C, ...) array

After a grouped 1x1 convolution each group of channels has only seen its own group's inputs.
The shuffle regroups them so that the next grouped convolution mixes information across
groups: view the channels as a ``G x Cg`` matrix, transpose it to ``Cg x G``, flatten,

``y[:, j * G + g] = x[:, g * Cg + j]``    for ``0 <= g < G``, ``0 <= j < Cg``,

which is PyTorch's ``channel_shuffle`` / torchvision's ``reshape, transpose(1, 2), reshape``.
Long form: ``docs/derivations/channel_shuffle.md``.

References
----------
Zhang, Zhou, Lin, Sun, *ShuffleNet: An Extremely Efficient Convolutional Neural Network for
Mobile Devices*, CVPR 2018, Sec. 3.1 and Fig. 1; Hu, Shen, Sun, CVPR 2018, Table 3.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sescratch.backend import get_array_module
from sescratch.ops._checks import check_float_array

__all__ = ["ChannelShuffleCache", "channel_shuffle_forward", "channel_shuffle_backward"]


class ChannelShuffleCache(NamedTuple):
    groups: int
    shape: tuple  # N,C,... of x (and y)


def _shuffle(x, rows: int):
    """View the channels as a ``rows x (C / rows)`` matrix and transpose it."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    rest = x.shape[2:]
    grid = x.reshape(N, rows, C // rows, *rest)  # N,rows,C/rows,...
    return xp.ascontiguousarray(grid.swapaxes(1, 2)).reshape(x.shape)  # N,C,...


def channel_shuffle_forward(x, groups):
    """Shuffle the channels of ``x`` across ``groups`` groups.

    Parameters
    ----------
    x : array, shape (N, C, ...) (NCHW in ShuffleNet), float32 or float64
    groups : int >= 1 dividing C

    Returns
    -------
    y : array, shape of ``x``: ``y[:, j * G + g] = x[:, g * Cg + j]``
    cache : ChannelShuffleCache
    """
    op = "channel_shuffle_forward"
    check_float_array(op, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{op}: argument 'x' must be (N, C, ...) with at least 2 dimensions, "
                         f"got {x.ndim}-D array of shape {tuple(x.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: argument 'groups' must be a positive int, got {groups!r}")
    C = x.shape[1]
    if C % groups:
        raise ValueError(f"{op}: argument 'groups' must divide the channels C={C} of x "
                         f"(shape {tuple(x.shape)}), got groups={groups}")
    y = _shuffle(x, int(groups))  # N,C,...  (G x Cg transposed)
    return y, ChannelShuffleCache(int(groups), tuple(x.shape))


def channel_shuffle_backward(dy, cache: ChannelShuffleCache):
    """Gradient of the channel shuffle: the inverse permutation applied to ``dy``.

    Parameters
    ----------
    dy : array, shape of ``y``
    cache : ChannelShuffleCache

    Returns
    -------
    dx : array, shape of ``x``

    Derivation
    ----------
    ``y = P x`` with ``P`` the permutation matrix of the channels, ``y_{jG+g} = x_{gCg+j}``.
    A permutation matrix is orthogonal, ``P^T = P^{-1}``, so ``dx = P^T dy = P^{-1} dy``:
    ``dx[:, g * Cg + j] = dy[:, j * G + g]``. Undoing the ``G x Cg`` transpose is the
    ``Cg x G`` transpose, i.e. a shuffle with ``Cg = C / G`` groups.
    """
    check_float_array("channel_shuffle_backward", "dy", dy)
    if tuple(dy.shape) != cache.shape:
        raise ValueError(f"channel_shuffle_backward: argument 'dy' expected shape {cache.shape} "
                         f"(the shape of y), got {tuple(dy.shape)}")
    return _shuffle(dy, cache.shape[1] // cache.groups)  # N,C,...  (Cg x G transposed)
