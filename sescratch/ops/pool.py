"""Max pooling over KH x KW windows, with PyTorch's semantics, and the window geometry that
average pooling (:mod:`sescratch.ops.avg_pool`) shares.

Notation
--------
N : batch size    C : channels    H, W : input height, width    KH, KW : window
SH, SW (S) : stride (default: the window)    PH, PW (P) : padding, at most KH // 2, KW // 2
OH = floor((H + 2 PH - KH) / SH) + 1        OW = floor((W + 2 PW - KW) / SW) + 1
   (``ceil`` instead of ``floor`` with ``ceil_mode=True``, dropping a last window that would
   start in the right padding: :func:`sescratch.ops.window.conv_output_size`)
x : (N, C, H, W)    y : (N, C, OH, OW)

As ``torch.nn.functional.max_pool2d`` / ``avg_pool2d``: max pooling pads with -inf (padding
never wins). Average pooling pads with zeros; with ``count_include_pad=True`` (the default)
the divisor counts the padding cells of the window, with ``False`` only its input cells. The
overhang of a ``ceil_mode`` window past the right padding is never counted (PyTorch's rule).
The NumPy code loops over the ``KH * KW`` taps of the window, each tap a strided view of the
padded input covering all windows at once; the ``*_reference`` functions loop over windows,
the oracle of the tests. Long form: ``docs/derivations/pooling.md``.

References
----------
He et al., *Deep Residual Learning*, CVPR 2016 (3x3 max pool of the ResNet stem, kept by the
SE-ResNets: Hu, Shen, Sun, CVPR 2018, Table 1); Szegedy et al., *Going Deeper with
Convolutions*, CVPR 2015 (``ceil_mode`` pooling and 3x3 stride-1 average pooling in Inception).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from sescratch.backend import declare_kernels, get_array_module
from sescratch.ops._checks import check_float_array, check_nonempty, check_shape, pair
from sescratch.ops.window import check_allocation, conv_output_size

__all__ = [
    "PoolGeometry", "MaxPool2dCache",
    "max_pool2d_forward", "max_pool2d_backward", "max_pool2d_reference",
    "max_pool2d_forward_reference", "max_pool2d_backward_reference",
]


class PoolGeometry(NamedTuple):
    N: int
    C: int
    H: int
    W: int
    KH: int
    KW: int
    SH: int
    SW: int
    PH: int
    PW: int
    OH: int
    OW: int
    EH: int = 0  # extra padding rows at the bottom for ceil_mode's last windows
    EW: int = 0  # extra padding columns on the right


class MaxPool2dCache(NamedTuple):
    geometry: PoolGeometry
    argmax: Any  # N,C,OH,OW  int64 flat index into the (unpadded) H*W plane


def _geometry(op, x, kernel_size, stride, padding, ceil_mode) -> PoolGeometry:
    check_float_array(op, "x", x, ndim=4)
    check_nonempty(op, "x", x)
    KH, KW = pair(op, "kernel_size", kernel_size, minimum=1)
    SH, SW = pair(op, "stride", kernel_size if stride is None else stride, minimum=1)
    PH, PW = pair(op, "padding", padding, minimum=0)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise ValueError(f"{op}: argument 'ceil_mode' must be True or False, got {ceil_mode!r}")
    N, C, H, W = x.shape
    if PH > KH // 2 or PW > KW // 2:
        raise ValueError(
            f"{op}: argument 'padding' must be at most half the kernel "
            f"(<= {(KH // 2, KW // 2)}), got {(PH, PW)}"
        )
    if H + 2 * PH < KH or W + 2 * PW < KW:
        raise ValueError(
            f"{op}: argument 'kernel_size' {(KH, KW)} is larger than the padded input "
            f"{(H + 2 * PH, W + 2 * PW)} (x of shape {tuple(x.shape)}, padding {(PH, PW)})"
        )
    g = _window(x.shape, KH, KW, SH, SW, PH, PW, bool(ceil_mode))
    check_allocation(op, "padding", padding, {
        "the padded input": (N, C, H + 2 * PH + g.EH, W + 2 * PW + g.EW), "y": (N, C, g.OH, g.OW)})
    return g


def _window(shape, KH, KW, SH, SW, PH, PW, ceil_mode=False) -> PoolGeometry:
    """The geometry of a (checked) pooling of an input of ``shape`` (N, C, H, W)."""
    OH = conv_output_size(shape[2], KH, SH, PH, ceil_mode=ceil_mode)
    OW = conv_output_size(shape[3], KW, SW, PW, ceil_mode=ceil_mode)
    return _with_output(shape, KH, KW, SH, SW, PH, PW, OH, OW)


def _with_output(shape, KH, KW, SH, SW, PH, PW, OH, OW) -> PoolGeometry:
    """The geometry of a pooling of ``shape`` (N, C, H, W) into OH x OW windows."""
    N, C, H, W = shape
    EH = max(0, (OH - 1) * SH + KH - (H + 2 * PH))  # how far the last window overhangs
    EW = max(0, (OW - 1) * SW + KW - (W + 2 * PW))
    return PoolGeometry(N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, EH, EW)


def _tap(xpad, i, j, g: PoolGeometry):
    """Entry (i, j) of every window at once: a strided view of shape (N, C, OH, OW)."""
    return xpad[:, :, i: i + g.SH * (g.OH - 1) + 1: g.SH, j: j + g.SW * (g.OW - 1) + 1: g.SW]


def _pad(x, g: PoolGeometry, value):
    xp = get_array_module(x)
    widths = ((0, 0), (0, 0), (g.PH, g.PH + g.EH), (g.PW, g.PW + g.EW))
    return xp.pad(x, widths, constant_values=value)  # N,C,H+2PH+EH,W+2PW+EW


def _check_dy(op, dy, g: PoolGeometry):
    check_float_array(op, "dy", dy, ndim=4)
    check_shape(op, "dy", dy, (g.N, g.C, g.OH, g.OW), "the shape of y")


def max_pool2d_forward_reference(x, KH, KW, SH, SW, PH, PW, ceil_mode=False):
    """Max pooling in ``xp``, one strided view per tap; returns ``(y, argmax)``, both (N, C, OH, OW).

    ``argmax`` is the int64 flat index ``h * W + w`` of each window's winner in its (n, c) plane.
    """
    g = _window(x.shape, KH, KW, SH, SW, PH, PW, ceil_mode)
    xp = get_array_module(x)
    xpad = _pad(x, g, -xp.inf)  # N,C,H+2PH+EH,W+2PW+EW
    top = xp.arange(g.OH)[:, None] * g.SH - g.PH  # OH,1   first row of each window
    left = xp.arange(g.OW)[None, :] * g.SW - g.PW  # 1,OW  first column of each window
    y = xp.full((g.N, g.C, g.OH, g.OW), -xp.inf, dtype=x.dtype)  # N,C,OH,OW
    argmax = xp.maximum(top, 0) * g.W + xp.maximum(left, 0)  # OH,OW  first in-bounds cell
    for i in range(g.KH):
        for j in range(g.KW):
            tap = _tap(xpad, i, j, g)  # N,C,OH,OW
            better = (tap > y) | (xp.isnan(tap) & ~xp.isnan(y))  # strict: first maximum wins
            y = xp.where(better, tap, y)  # N,C,OH,OW
            argmax = xp.where(better, (top + i) * g.W + (left + j), argmax)  # N,C,OH,OW
    argmax = xp.broadcast_to(argmax, y.shape).astype(xp.int64)  # N,C,OH,OW
    return y, argmax


def max_pool2d_backward_reference(dy, argmax, H, W):
    """Scatter-add of ``dy`` to the winners: ``dx[n, c].flat[argmax[n, c, i]] += dy[n, c, i]``."""
    xp = get_array_module(dy)
    N, C = dy.shape[:2]
    plane = xp.arange(N * C).reshape(N, C, 1, 1) * (H * W)  # N,C,1,1
    target = (plane + argmax).ravel()  # N*C*OH*OW  flat index into x
    dx = xp.bincount(target, weights=dy.ravel(), minlength=N * C * H * W)  # scatter-add
    return dx.reshape(N, C, H, W).astype(dy.dtype)  # N,C,H,W


def _loop_pool(op, x, kernel_size, stride, padding, ceil_mode, window_value):
    """Plain loops over windows: ``window_value(cells, rows, cols)`` per window (NumPy only)."""
    g = _geometry(op, x, kernel_size, stride, padding, ceil_mode)
    x = np.asarray(x)
    y = np.empty((g.N, g.C, g.OH, g.OW), dtype=x.dtype)
    for oh in range(g.OH):
        for ow in range(g.OW):
            r, s = oh * g.SH - g.PH, ow * g.SW - g.PW  # the window's first row, column
            rows = (r, min(r + g.KH, g.H + g.PH))  # the padded rows it covers
            cols = (s, min(s + g.KW, g.W + g.PW))
            cells = x[:, :, max(r, 0): min(r + g.KH, g.H), max(s, 0): min(s + g.KW, g.W)]
            y[:, :, oh, ow] = window_value(cells, rows, cols)
    return y


def max_pool2d_reference(x, kernel_size, stride=None, padding=0, *, ceil_mode=False):
    """Plain-loop max pooling (NumPy only): the oracle of :func:`max_pool2d_forward`."""
    return _loop_pool("max_pool2d_reference", x, kernel_size, stride, padding, ceil_mode,
                      lambda cells, rows, cols: cells.max(axis=(2, 3)))


# Dispatch: the public max-pooling ops check their inputs, then run a declared kernel or the
# reference. Average pooling: sescratch/ops/avg_pool.py.
_KERNELS = declare_kernels("max_pool2d_forward", "max_pool2d_backward")


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, *, ceil_mode=False):
    """Maximum over each KH x KW window.

    Parameters
    ----------
    x : array, shape (N, C, H, W), float32 or float64
    kernel_size, stride, padding : int or (h, w) pair
        ``stride`` defaults to ``kernel_size``; ``padding <= kernel_size // 2``.
    ceil_mode : bool
        Round the output size up (see the module notation).

    Returns
    -------
    y : array, shape (N, C, OH, OW)
    cache : MaxPool2dCache (the argmax of each window: on ties the first maximum in row-major
        order, as PyTorch; a NaN counts as the maximum, the first NaN wins, where PyTorch's CPU
        kernel takes the last of several)
    """
    g = _geometry("max_pool2d_forward", x, kernel_size, stride, padding, ceil_mode)
    x = get_array_module(x).ascontiguousarray(x)
    kernel = _KERNELS.get("max_pool2d_forward", x)
    forward = max_pool2d_forward_reference if kernel is None else kernel
    y, argmax = forward(x, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, bool(ceil_mode))
    return y, MaxPool2dCache(g, argmax)


def max_pool2d_backward(dy, cache: MaxPool2dCache):
    """Gradient of max pooling.

    Parameters
    ----------
    dy : array, shape (N, C, OH, OW)
    cache : MaxPool2dCache

    Returns
    -------
    dx : array, shape (N, C, H, W)

    Derivation
    ----------
    ``y[n, c, oh, ow] = x[n, c, a]`` with ``a = argmax[n, c, oh, ow]``: locally a copy of one
    input (away from ties), so its gradient goes to that input alone. Windows overlap when
    ``S < K``; an input that wins several windows collects the sum of their gradients
    (a scatter-add), inputs that win none get 0.
    """
    g, argmax = cache
    _check_dy("max_pool2d_backward", dy, g)
    dy = get_array_module(dy).ascontiguousarray(dy)
    kernel = _KERNELS.get("max_pool2d_backward", dy, argmax)
    backward = max_pool2d_backward_reference if kernel is None else kernel
    return backward(dy, argmax, g.H, g.W)
