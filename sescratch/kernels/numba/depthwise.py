"""Depthwise convolution kernels (Numba, CPU): ``groups == C``, one (image, channel) plane per task.

Kernels ``depthwise_conv2d_forward`` and ``depthwise_conv2d_backward``, same arguments and
results as ``sescratch.ops.depthwise_conv2d_forward_reference`` / ``..._backward_reference``:

- ``depthwise_conv2d_forward(x, w, b, stride, padding) -> y``
- ``depthwise_conv2d_backward(dy, x, w, stride, padding, has_bias) -> (dx, dw, db)``

x (N, C, H, W), w (K, 1, KH, KW) with K = M C (output channel ``k = c M + m`` reads input
channel ``c``), y (N, K, OH, OW). There is no padded copy: each row of taps splits the output
columns into the *interior* ``[lo, hi)``, whose whole window row ``ow SW - PW + [0, KW)`` lies
inside the image (:func:`_interior`; a branch-free loop, unit-stride and so vectorised when
``SW == 1``), and the few border columns, which check each tap. Rows outside the image are
skipped. The 3-wide kernels of MobileNet and ShuffleNet take a path with the three taps of a
row fused into one pass (``_*3``); other widths loop over the taps (``_*_any``).

The ``prange`` unit is a plane: the forward writes output plane (n, k) alone; the backward
writes input plane (n, c) of dx and the per-image partial sums ``dw_part[n, k]``,
``db_part[n, k]``, reduced over the batch afterwards, so no two tasks write the same memory.
Sums accumulate in the dtype of the arrays (as PyTorch's float32 kernels do).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from sescratch.ops.window import conv_output_size

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_backward"]

_FAST = {"reassoc", "contract"}  # reorder sums (vectorised reductions); NaN and inf kept


@njit(cache=True, inline="always")
def _interior(KW, SW, PW, W, OW):
    """``[lo, hi)``: the outputs whose input columns ``ow * SW - PW + [0, KW)`` all lie in ``[0, W)``."""
    lo = min(OW, (PW + SW - 1) // SW)
    hi = (W - KW + PW) // SW + 1 if W - KW + PW >= 0 else 0
    return lo, max(lo, min(OW, hi))


@njit(cache=True, inline="always")
def _border_dot(w_row, line, i, W):
    """``sum_j w_row[j] line[i + j]`` over the taps inside ``[0, W)``."""
    s = line[0] * 0
    for j in range(w_row.shape[0]):
        if 0 <= i + j < W:
            s += w_row[j] * line[i + j]
    return s


@njit(parallel=True, cache=True, fastmath=_FAST)
def _forward(x3, w3, bias, M, SH, SW, PH, PW, y3):
    NC, H, W = x3.shape
    K, KH, KW = w3.shape
    NK, OH, OW = y3.shape
    C = K // M
    lo, hi = _interior(KW, SW, PW, W, OW)
    for q in prange(NK):  # output plane (n, k)
        n, k = q // K, q % K
        p = n * C + k // M  # its input plane
        for oh in range(OH):
            for ow in range(OW):
                y3[q, oh, ow] = bias[k]
            for kh in range(KH):
                ih = oh * SH - PH + kh
                if ih < 0 or ih >= H:
                    continue
                line, row = x3[p, ih], y3[q, oh]
                if KW == 3:
                    w0, w1, w2 = w3[k, kh, 0], w3[k, kh, 1], w3[k, kh, 2]
                    for ow in range(lo, hi):
                        i = ow * SW - PW
                        row[ow] += w0 * line[i] + w1 * line[i + 1] + w2 * line[i + 2]
                else:
                    for kw in range(KW):
                        wv = w3[k, kh, kw]
                        for ow in range(lo, hi):
                            row[ow] += wv * line[ow * SW - PW + kw]
                for ow in range(lo):
                    row[ow] += _border_dot(w3[k, kh], line, ow * SW - PW, W)
                for ow in range(hi, OW):
                    row[ow] += _border_dot(w3[k, kh], line, ow * SW - PW, W)


@njit(cache=True, inline="always")
def _border_backward(w_row, v, line, dline, i, W, acc):
    """Border column: ``acc[j] += v line[i + j]``, ``dline[i + j] += w_row[j] v`` inside ``[0, W)``."""
    for j in range(w_row.shape[0]):
        if 0 <= i + j < W:
            acc[j] += v * line[i + j]
            dline[i + j] += w_row[j] * v


@njit(parallel=True, cache=True, fastmath=_FAST)
def _backward(dy3, x3, w3, M, SH, SW, PH, PW, dx3, dw_part, db_part):
    NC, H, W = x3.shape
    K, KH, KW = w3.shape
    NK, OH, OW = dy3.shape
    C = K // M
    lo, hi = _interior(KW, SW, PW, W, OW)
    for p in prange(NC):  # input plane (n, c): its dx, and dw/db of its M output planes
        n, c = p // C, p % C
        acc = np.zeros(KW, dtype=dw_part.dtype)  # dw of one kernel row, this image
        for m in range(M):
            k = c * M + m
            q = n * K + k
            total = acc[0] * 0
            for oh in range(OH):
                for ow in range(OW):
                    total += dy3[q, oh, ow]
            db_part[n, k] = total
            for kh in range(KH):
                acc[:] = 0
                for oh in range(OH):
                    ih = oh * SH - PH + kh
                    if ih < 0 or ih >= H:
                        continue
                    g, line, dline = dy3[q, oh], x3[p, ih], dx3[p, ih]
                    if KW == 3:
                        a0, a1, a2 = acc[0] * 0, acc[0] * 0, acc[0] * 0
                        for ow in range(lo, hi):  # dw: three dot products in one pass
                            i = ow * SW - PW
                            a0 += g[ow] * line[i]
                            a1 += g[ow] * line[i + 1]
                            a2 += g[ow] * line[i + 2]
                        acc[0] += a0
                        acc[1] += a1
                        acc[2] += a2
                    else:
                        for kw in range(KW):
                            a = acc[0] * 0
                            for ow in range(lo, hi):
                                a += g[ow] * line[ow * SW - PW + kw]
                            acc[kw] += a
                    for kw in range(KW):  # dx: one axpy per tap (no loop-carried dependence)
                        wv = w3[k, kh, kw]
                        for ow in range(lo, hi):
                            dline[ow * SW - PW + kw] += wv * g[ow]
                    for ow in range(lo):
                        _border_backward(w3[k, kh], g[ow], line, dline, ow * SW - PW, W, acc)
                    for ow in range(hi, OW):
                        _border_backward(w3[k, kh], g[ow], line, dline, ow * SW - PW, W, acc)
                for kw in range(KW):
                    dw_part[n, k, kh, kw] = acc[kw]


def _sizes(x, w, stride, padding):
    (H, W), (KH, KW), (SH, SW), (PH, PW) = x.shape[2:], w.shape[2:], stride, padding
    return conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)


def depthwise_conv2d_forward(x, w, b, stride, padding):
    """Depthwise convolution of C-contiguous NCHW ``x`` with ``w`` (K, 1, KH, KW); returns ``y``."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = _sizes(x, w, stride, padding)
    y = np.empty((N, K, OH, OW), dtype=x.dtype)
    bias = np.zeros(K, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    _forward(np.ascontiguousarray(x).reshape(N * C, H, W),
             np.ascontiguousarray(w).reshape(K, KH, KW), bias, K // C,
             stride[0], stride[1], padding[0], padding[1], y.reshape(N * K, OH, OW))
    return y


def depthwise_conv2d_backward(dy, x, w, stride, padding, has_bias):
    """``(dx, dw, db)`` of :func:`depthwise_conv2d_forward` (``db`` None without a bias)."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = _sizes(x, w, stride, padding)
    dx = np.zeros((N, C, H, W), dtype=x.dtype)
    dw_part = np.empty((N, K, KH, KW), dtype=x.dtype)  # per-image shares of dw
    db_part = np.empty((N, K), dtype=x.dtype)
    _backward(np.ascontiguousarray(dy).reshape(N * K, OH, OW),
              np.ascontiguousarray(x).reshape(N * C, H, W),
              np.ascontiguousarray(w).reshape(K, KH, KW), K // C,
              stride[0], stride[1], padding[0], padding[1],
              dx.reshape(N * C, H, W), dw_part, db_part)
    dw = dw_part.sum(axis=0).reshape(K, 1, KH, KW)  # K,1,KH,KW
    return dx, dw, (db_part.sum(axis=0) if has_bias else None)
