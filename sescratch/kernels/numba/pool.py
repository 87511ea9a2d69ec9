"""Max-pooling kernels (Numba, CPU), PyTorch semantics.

Notation: x (N, C, H, W), kernel KH x KW, stride SH, SW, padding PH, PW (implicit -inf),
``OH, OW`` from :func:`sescratch.ops.window.conv_output_size`. For each output position the window is
scanned row by row; the first maximum wins (NaN counts as the maximum, the first NaN wins), as
``numpy.argmax`` over the flattened window does. ``argmax`` holds the flat index ``h*W + w`` of
the winner in its (n, c) plane, so the backward is a scatter-add within the plane, and planes
(the ``prange`` unit) never write to one another.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from sescratch.kernels.numba.norm import _planes
from sescratch.ops.window import conv_output_size


@njit(parallel=True, cache=True)
def _max_pool(x3, W, KH, KW, SH, SW, PH, PW, OH, OW, neg_inf, y3, am3):
    P, HW = x3.shape
    H = HW // W
    for p in prange(P):
        for oh in range(OH):
            h0 = oh * SH - PH
            for ow in range(OW):
                w0 = ow * SW - PW
                best = neg_inf[0]  # a window of padding only (PH > KH // 2) gives -inf
                idx = -1
                for kh in range(KH):
                    h = h0 + kh
                    if h < 0 or h >= H:
                        continue
                    for kw in range(KW):
                        w = w0 + kw
                        if w < 0 or w >= W:
                            continue
                        v = x3[p, h * W + w]
                        if idx < 0 or v > best or (v != v and best == best):
                            best = v
                            idx = h * W + w
                y3[p, oh * OW + ow] = best
                am3[p, oh * OW + ow] = idx


@njit(parallel=True, cache=True)
def _max_pool_backward(dy2, am2, dx2):
    P, L = dy2.shape
    for p in prange(P):
        for j in range(L):
            i = am2[p, j]
            if i >= 0:
                dx2[p, i] += dy2[p, j]


def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False):
    """Max pooling of an NCHW array.

    Returns
    -------
    y : (N, C, OH, OW), dtype of x
    argmax : (N, C, OH, OW) int64, flat index ``h*W + w`` into the (n, c) plane of x
        (-1 for a window that covers padding only, where y is -inf)
    """
    N, C, H, W = x.shape
    OH = conv_output_size(H, KH, SH, PH, ceil_mode=ceil_mode)
    OW = conv_output_size(W, KW, SW, PW, ceil_mode=ceil_mode)
    if OH < 1 or OW < 1:
        raise ValueError(
            f"max_pool2d: kernel ({KH}, {KW}) larger than the padded input ({H + 2 * PH}, {W + 2 * PW})"
        )
    x3 = _planes(x).reshape(N * C, H * W)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, OH, OW), dtype=np.int64)
    _max_pool(
        x3, W, KH, KW, SH, SW, PH, PW, OH, OW, np.full(1, -np.inf, dtype=x.dtype),
        y.reshape(N * C, OH * OW), argmax.reshape(N * C, OH * OW),
    )
    return y, argmax


def max_pool2d_backward(dy, argmax, H, W):
    """Scatter ``dy`` to the winners: ``dx[n, c].flat[argmax[n, c, i]] += dy[n, c, i]``."""
    N, C = dy.shape[:2]
    dx = np.zeros((N, C, H, W), dtype=dy.dtype)
    _max_pool_backward(
        np.ascontiguousarray(dy).reshape(N * C, -1),
        np.ascontiguousarray(argmax, dtype=np.int64).reshape(N * C, -1),
        dx.reshape(N * C, H * W),
    )
    return dx
