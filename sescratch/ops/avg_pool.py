"""Average pooling over KH x KW windows, with PyTorch's semantics (notation, geometry and the
padding rules: :mod:`sescratch.ops.pool`).

Zeros pad the input; with ``count_include_pad=True`` (the default) each window's divisor counts
its padding cells, with ``False`` only its input cells, and the overhang of a ``ceil_mode``
window past the right padding is never counted (PyTorch's rule). The op computes the divisor
(OH, OW) once; the NumPy reference adds the ``KH * KW`` taps of the window, each a strided
view of the padded input covering all windows at once, and the kernels add them in the same
order. :func:`avg_pool2d_reference` loops over windows: the oracle of the tests. Long form:
``docs/derivations/pooling.md``.

References
----------
Szegedy et al., *Going Deeper with Convolutions*, CVPR 2015 (3x3 stride-1 average pooling in
Inception's pool branch); Zhang et al., *ShuffleNet*, CVPR 2018 (the 3x3/2 average pool of a
downsampling unit's shortcut).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from sescratch.backend import declare_kernels, get_array_module
from sescratch.ops.pool import PoolGeometry, _check_dy, _geometry, _loop_pool, _pad, _tap, _with_output

__all__ = [
    "AvgPool2dCache", "avg_pool2d_forward", "avg_pool2d_backward", "avg_pool2d_reference",
    "avg_pool2d_forward_reference", "avg_pool2d_backward_reference",
]


class AvgPool2dCache(NamedTuple):
    geometry: PoolGeometry
    divisor: Any  # OH,OW  cells counted in each window


def _counts(xp, size, K, S, P, O, count_include_pad):
    """Cells of each window along one axis: padding included or not, the overhang never."""
    start = xp.arange(O) * S - P  # O
    end = xp.minimum(start + K, size + P)  # O  (a ceil_mode window stops at the right padding)
    if not count_include_pad:
        start, end = xp.maximum(start, 0), xp.minimum(end, size)
    return end - start  # O


def avg_pool2d_forward_reference(x, KH, KW, SH, SW, PH, PW, divisor):
    """Average pooling in ``xp``, one strided view per tap: ``y`` (N, C, OH, OW) the window sums
    (taps in row-by-row order) divided by ``divisor`` (OH, OW), which fixes OH and OW."""
    g = _with_output(x.shape, KH, KW, SH, SW, PH, PW, *divisor.shape)
    xp = get_array_module(x)
    xpad = _pad(x, g, 0)  # N,C,H+2PH+EH,W+2PW+EW
    y = xp.zeros((g.N, g.C, g.OH, g.OW), dtype=x.dtype)  # N,C,OH,OW
    for i in range(g.KH):
        for j in range(g.KW):
            y += _tap(xpad, i, j, g)  # N,C,OH,OW
    return y / divisor  # N,C,OH,OW


def avg_pool2d_backward_reference(dy, divisor, H, W, KH, KW, SH, SW, PH, PW):
    """``dx`` (N, C, H, W) of average pooling in ``xp``: ``dy / divisor`` added back through each
    tap's strided view, the taps in row-by-row order."""
    N, C, OH, OW = dy.shape
    g = _with_output((N, C, H, W), KH, KW, SH, SW, PH, PW, OH, OW)
    xp = get_array_module(dy)
    share = dy / divisor  # N,C,OH,OW
    dxpad = xp.zeros((g.N, g.C, g.H + 2 * g.PH + g.EH, g.W + 2 * g.PW + g.EW), dtype=dy.dtype)
    for i in range(g.KH):
        for j in range(g.KW):
            _tap(dxpad, i, j, g)[...] += share  # N,C,OH,OW into a strided view
    return xp.ascontiguousarray(dxpad[:, :, g.PH: g.PH + g.H, g.PW: g.PW + g.W])  # N,C,H,W


def avg_pool2d_reference(x, kernel_size, stride=None, padding=0, *, ceil_mode=False,
                         count_include_pad=True):
    """Plain-loop average pooling (NumPy only): the oracle of :func:`avg_pool2d_forward`."""

    def mean(cells, rows, cols):
        counted = (rows[1] - rows[0]) * (cols[1] - cols[0])
        return cells.sum(axis=(2, 3)) / (counted if count_include_pad else cells[0, 0].size)

    return _loop_pool("avg_pool2d_reference", x, kernel_size, stride, padding, ceil_mode, mean)


# Dispatch: the public ops check their inputs, then run a declared kernel or the reference.
_KERNELS = declare_kernels("avg_pool2d_forward", "avg_pool2d_backward")


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, *, ceil_mode=False,
                       count_include_pad=True):
    """Mean over each KH x KW window.

    Parameters
    ----------
    x : array, shape (N, C, H, W), float32 or float64
    kernel_size, stride, padding : int or (h, w) pair
        ``stride`` defaults to ``kernel_size``; ``padding <= kernel_size // 2``.
    ceil_mode : bool
        Round the output size up (see the module notation).
    count_include_pad : bool
        Divide by the window's cells including the zero padding (True, PyTorch's default) or
        by its input cells only.

    Returns
    -------
    y : array, shape (N, C, OH, OW)
    cache : AvgPool2dCache
    """
    op = "avg_pool2d_forward"
    g = _geometry(op, x, kernel_size, stride, padding, ceil_mode)
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise ValueError(f"{op}: argument 'count_include_pad' must be True or False, "
                         f"got {count_include_pad!r}")
    xp = get_array_module(x)
    rows = _counts(xp, g.H, g.KH, g.SH, g.PH, g.OH, count_include_pad)  # OH
    cols = _counts(xp, g.W, g.KW, g.SW, g.PW, g.OW, count_include_pad)  # OW
    divisor = (rows[:, None] * cols[None, :]).astype(x.dtype)  # OH,OW
    kernel = _KERNELS.get("avg_pool2d_forward", x)
    forward = avg_pool2d_forward_reference if kernel is None else kernel
    return forward(xp.ascontiguousarray(x), g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, divisor), AvgPool2dCache(g, divisor)


def avg_pool2d_backward(dy, cache: AvgPool2dCache):
    """Gradient of average pooling.

    Parameters
    ----------
    dy : array, shape (N, C, OH, OW)
    cache : AvgPool2dCache

    Returns
    -------
    dx : array, shape (N, C, H, W)

    Derivation
    ----------
    ``y[oh, ow] = (1 / D[oh, ow]) sum_{i, j} xpad[oh S + i, ow S + j]`` with the divisor ``D``
    a constant of the geometry (``KH KW`` by default), so each window sends ``dy[oh, ow] / D``
    to each of its ``KH KW`` entries; overlapping windows add up (one ``+=`` per tap,
    mirroring the forward). Gradients landing on the padding are dropped.
    """
    g, divisor = cache
    _check_dy("avg_pool2d_backward", dy, g)
    dy = get_array_module(dy).ascontiguousarray(dy)
    kernel = _KERNELS.get("avg_pool2d_backward", dy)
    backward = avg_pool2d_backward_reference if kernel is None else kernel
    return backward(dy, divisor.astype(dy.dtype), g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW)
