"""Max and average pooling over KH x KW windows, with PyTorch's defaults.

Notation
--------
N : batch size    C : channels    H, W : input height, width    KH, KW : window
SH, SW (S) : stride (default: the window)    PH, PW (P) : padding, at most KH // 2, KW // 2
OH = floor((H + 2 PH - KH) / SH) + 1        OW = floor((W + 2 PW - KW) / SW) + 1
x : (N, C, H, W)    y : (N, C, OH, OW)

As ``torch.nn.functional.max_pool2d`` / ``avg_pool2d`` with ``ceil_mode=False``: max pooling
pads with -inf (padding never wins); average pooling pads with zeros and always divides by
``KH * KW`` (``count_include_pad=True``). The NumPy code loops over the ``KH * KW`` taps of
the window, each tap a strided view of the padded input covering all windows at once; the
``*_reference`` functions loop over windows, the oracle of the tests.
Long form: ``docs/derivations/pooling.md``.

References
----------
He et al., *Deep Residual Learning*, CVPR 2016 (3x3 max pool of the ResNet stem, kept by the
SE-ResNets: Hu, Shen, Sun, CVPR 2018, Table 1).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from sescratch.backend import get_array_module, get_kernel
from sescratch.ops._checks import check_float_array, check_shape, pair

__all__ = [
    "PoolGeometry", "MaxPool2dCache", "AvgPool2dCache",
    "max_pool2d_forward", "max_pool2d_backward", "max_pool2d_reference",
    "avg_pool2d_forward", "avg_pool2d_backward", "avg_pool2d_reference",
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


class MaxPool2dCache(NamedTuple):
    geometry: PoolGeometry
    argmax: Any  # N,C,OH,OW  int64 flat index into the (unpadded) H*W plane


class AvgPool2dCache(NamedTuple):
    geometry: PoolGeometry


def _geometry(op, x, kernel_size, stride, padding) -> PoolGeometry:
    check_float_array(op, "x", x, ndim=4)
    N, C, H, W = x.shape
    KH, KW = pair(op, "kernel_size", kernel_size, minimum=1)
    SH, SW = pair(op, "stride", kernel_size if stride is None else stride, minimum=1)
    PH, PW = pair(op, "padding", padding, minimum=0)
    if PH > KH // 2 or PW > KW // 2:
        raise ValueError(
            f"{op}: argument 'padding' must be at most half the kernel "
            f"(<= {(KH // 2, KW // 2)}), got {(PH, PW)}"
        )
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    if H + 2 * PH < KH or W + 2 * PW < KW:
        raise ValueError(
            f"{op}: argument 'kernel_size' {(KH, KW)} is larger than the padded input "
            f"{(H + 2 * PH, W + 2 * PW)} (x of shape {tuple(x.shape)}, padding {(PH, PW)})"
        )
    return PoolGeometry(N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW)


def _tap(xpad, i, j, g: PoolGeometry):
    """Entry (i, j) of every window at once: a strided view of shape (N, C, OH, OW)."""
    return xpad[:, :, i: i + g.SH * (g.OH - 1) + 1: g.SH, j: j + g.SW * (g.OW - 1) + 1: g.SW]


def _pad(x, g: PoolGeometry, value):
    xp = get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (g.PH, g.PH), (g.PW, g.PW)), constant_values=value)


def _check_dy(op, dy, g: PoolGeometry):
    check_float_array(op, "dy", dy, ndim=4)
    check_shape(op, "dy", dy, (g.N, g.C, g.OH, g.OW), "the shape of y")


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Maximum over each KH x KW window.

    Parameters
    ----------
    x : array, shape (N, C, H, W), float32 or float64
    kernel_size, stride, padding : int or (h, w) pair
        ``stride`` defaults to ``kernel_size``; ``padding <= kernel_size // 2``.

    Returns
    -------
    y : array, shape (N, C, OH, OW)
    cache : MaxPool2dCache (the argmax of each window: on ties the first maximum in row-major
        order, as PyTorch; a NaN counts as the maximum, the first NaN wins)
    """
    g = _geometry("max_pool2d_forward", x, kernel_size, stride, padding)
    xp = get_array_module(x)
    kernel = get_kernel("max_pool2d", x)
    if kernel is not None:
        y, argmax = kernel(xp.ascontiguousarray(x), g.KH, g.KW, g.SH, g.SW, g.PH, g.PW)
        return y, MaxPool2dCache(g, argmax)
    xpad = _pad(x, g, -xp.inf)  # N,C,H+2PH,W+2PW
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
    xp = get_array_module(dy)
    kernel = get_kernel("max_pool2d_backward", dy, argmax)
    if kernel is not None:
        return kernel(xp.ascontiguousarray(dy), argmax, g.H, g.W)
    plane = xp.arange(g.N * g.C).reshape(g.N, g.C, 1, 1) * (g.H * g.W)  # N,C,1,1
    target = (plane + argmax).ravel()  # N*C*OH*OW  flat index into x
    dx = xp.bincount(target, weights=dy.ravel(), minlength=g.N * g.C * g.H * g.W)  # scatter-add
    return dx.reshape(g.N, g.C, g.H, g.W).astype(dy.dtype)  # N,C,H,W


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Mean over each KH x KW window (zero padding counted: divisor always KH * KW).

    Parameters
    ----------
    x : array, shape (N, C, H, W), float32 or float64
    kernel_size, stride, padding : int or (h, w) pair
        ``stride`` defaults to ``kernel_size``; ``padding <= kernel_size // 2``.

    Returns
    -------
    y : array, shape (N, C, OH, OW)
    cache : AvgPool2dCache
    """
    g = _geometry("avg_pool2d_forward", x, kernel_size, stride, padding)
    xp = get_array_module(x)
    xpad = _pad(x, g, 0)  # N,C,H+2PH,W+2PW
    y = xp.zeros((g.N, g.C, g.OH, g.OW), dtype=x.dtype)  # N,C,OH,OW
    for i in range(g.KH):
        for j in range(g.KW):
            y += _tap(xpad, i, j, g)  # N,C,OH,OW
    return y / (g.KH * g.KW), AvgPool2dCache(g)


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
    ``y[oh, ow] = (1 / (KH KW)) sum_{i, j} xpad[oh S + i, ow S + j]``, so each window sends
    ``dy[oh, ow] / (KH KW)`` to each of its ``KH KW`` entries; overlapping windows add up
    (one ``+=`` per tap, mirroring the forward). Gradients landing on the padding are dropped.
    """
    (g,) = cache
    _check_dy("avg_pool2d_backward", dy, g)
    xp = get_array_module(dy)
    share = dy / (g.KH * g.KW)  # N,C,OH,OW
    dxpad = xp.zeros((g.N, g.C, g.H + 2 * g.PH, g.W + 2 * g.PW), dtype=dy.dtype)
    for i in range(g.KH):
        for j in range(g.KW):
            _tap(dxpad, i, j, g)[...] += share  # N,C,OH,OW into a strided view
    return xp.ascontiguousarray(dxpad[:, :, g.PH: g.PH + g.H, g.PW: g.PW + g.W])  # N,C,H,W


def max_pool2d_reference(x, kernel_size, stride=None, padding=0):
    """Plain-loop max pooling (NumPy only): the oracle of :func:`max_pool2d_forward`."""
    g = _geometry("max_pool2d_reference", x, kernel_size, stride, padding)
    xpad = np.pad(np.asarray(x), ((0, 0), (0, 0), (g.PH, g.PH), (g.PW, g.PW)),
                  constant_values=-np.inf)
    y = np.empty((g.N, g.C, g.OH, g.OW), dtype=x.dtype)
    for n in range(g.N):
        for c in range(g.C):
            for oh in range(g.OH):
                for ow in range(g.OW):
                    r, s = oh * g.SH, ow * g.SW
                    y[n, c, oh, ow] = xpad[n, c, r: r + g.KH, s: s + g.KW].max()
    return y


def avg_pool2d_reference(x, kernel_size, stride=None, padding=0):
    """Plain-loop average pooling (NumPy only): the oracle of :func:`avg_pool2d_forward`."""
    g = _geometry("avg_pool2d_reference", x, kernel_size, stride, padding)
    xpad = np.pad(np.asarray(x), ((0, 0), (0, 0), (g.PH, g.PH), (g.PW, g.PW)))
    y = np.empty((g.N, g.C, g.OH, g.OW), dtype=x.dtype)
    for n in range(g.N):
        for c in range(g.C):
            for oh in range(g.OH):
                for ow in range(g.OW):
                    r, s = oh * g.SH, ow * g.SW
                    y[n, c, oh, ow] = xpad[n, c, r: r + g.KH, s: s + g.KW].sum() / (g.KH * g.KW)
    return y
