"""Depthwise convolution kernels (Numba, CPU): ``groups == C``, plane by plane.

Kernels ``depthwise_conv2d_forward`` and ``depthwise_conv2d_backward``, same arguments and
results as ``sescratch.ops.depthwise_conv2d_forward_reference`` / ``..._backward_reference``:

- ``depthwise_conv2d_forward(x, w, b, stride, padding) -> y``
- ``depthwise_conv2d_backward(dy, x, w, stride, padding, has_bias) -> (dx, dw, db)``

x (N, C, H, W), w (K, 1, KH, KW) with K = M C (output channel ``k = c M + m`` reads input
channel ``c``), y (N, K, OH, OW).

Each task of the ``prange`` owns a run of consecutive planes and one small zero-padded buffer
of a single plane, ``(H + 2 PH, W + 2 PW)``; it copies each input plane into the buffer's
interior once, so the loops over output columns have no bounds checks (and are unit-stride,
hence vectorised, when ``SW == 1``), however small the planes (4x4 at the end of a CIFAR
MobileNet, where the borders are half the plane). For the 3-wide kernels of MobileNet and
ShuffleNet the three taps of a kernel row are fused into one pass over the output row
(``KW == 3``); other widths loop over the taps.

The forward writes output plane (n, k) alone; the backward writes input plane (n, c) of dx
(through a padded buffer, cropped back) and the per-image partial sums ``dw_part[n, k]`` and
``db_part[n, k]``, reduced over the batch afterwards: no two tasks write the same memory, no
atomics. Sums accumulate in the dtype of the arrays, as PyTorch's float32 kernels do.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from sescratch.ops.window import conv_output_size

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_backward"]

_FAST = {"reassoc", "contract"}  # reorder sums (vectorised reductions); NaN and inf kept


@njit(cache=True, inline="always")
def _span(task, tasks, total):
    """Planes ``[start, stop)`` of task ``task`` of ``tasks`` (contiguous, sizes differing by 1)."""
    return task * total // tasks, (task + 1) * total // tasks


@njit(cache=True, inline="always")
def _load(pad, plane, PH, PW):
    """Copy ``plane`` (H, W) into the interior of the zero-bordered ``pad``."""
    H, W = plane.shape
    for h in range(H):
        for w in range(W):
            pad[PH + h, PW + w] = plane[h, w]


# Row loops. Each is called with the stride as a literal 1 or 2 where it is one (``_strided``):
# inlined, the constant stride lets LLVM vectorise the loop (unit-stride or interleaved loads).
@njit(cache=True, inline="always")
def _row3(row, line, w0, w1, w2, S, OW):
    """``row[ow] += w0 line[ow S] + w1 line[ow S + 1] + w2 line[ow S + 2]``: one kernel row, 3 taps."""
    for ow in range(OW):
        i = ow * S
        row[ow] += w0 * line[i] + w1 * line[i + 1] + w2 * line[i + 2]


@njit(cache=True, inline="always")
def _row_any(row, line, w_row, S, OW):
    """``row[ow] += sum_kw w_row[kw] line[ow S + kw]``: one kernel row, any width."""
    for kw in range(w_row.shape[0]):
        wv = w_row[kw]
        for ow in range(OW):
            row[ow] += wv * line[ow * S + kw]


@njit(cache=True, inline="always")
def _forward_row(row, line, w_row, S, OW):
    if w_row.shape[0] == 3:
        _row3(row, line, w_row[0], w_row[1], w_row[2], S, OW)
    else:
        _row_any(row, line, w_row, S, OW)


@njit(cache=True, inline="always")
def _strided_forward_row(row, line, w_row, SW, OW):
    if SW == 1:
        _forward_row(row, line, w_row, 1, OW)
    elif SW == 2:
        _forward_row(row, line, w_row, 2, OW)
    else:
        _forward_row(row, line, w_row, SW, OW)


@njit(parallel=True, cache=True, fastmath=_FAST)
def _forward(x3, w3, bias, M, SH, SW, PH, PW, tasks, y3):
    NC, H, W = x3.shape
    K, KH, KW = w3.shape
    NK, OH, OW = y3.shape
    C = K // M
    for task in prange(tasks):
        start, stop = _span(task, tasks, NK)
        pad = np.zeros((H + 2 * PH, W + 2 * PW), dtype=x3.dtype)  # windows fit: OH, OW floored
        loaded = -1
        for q in range(start, stop):  # output plane (n, k)
            n, k = q // K, q % K
            p = n * C + k // M  # its input plane
            if p != loaded:
                _load(pad, x3[p], PH, PW)
                loaded = p
            for oh in range(OH):
                row = y3[q, oh]  # OW
                row[:] = bias[k]
                for kh in range(KH):
                    _strided_forward_row(row, pad[oh * SH + kh], w3[k, kh], SW, OW)


@njit(cache=True, inline="always")
def _backward_row(acc, dline, grow, line, w_row, S, OW):
    """One kernel row against one output row: ``acc[kw] += <grow, line[kw::S]>`` (dw) and
    ``dline[ow S + kw] += w_row[kw] grow[ow]`` (dx, one axpy per tap: no loop-carried dependence)."""
    if w_row.shape[0] == 3:
        a0, a1, a2 = acc[0], acc[1], acc[2]
        for ow in range(OW):  # three dot products in one pass
            i = ow * S
            a0 += grow[ow] * line[i]
            a1 += grow[ow] * line[i + 1]
            a2 += grow[ow] * line[i + 2]
        acc[0], acc[1], acc[2] = a0, a1, a2
    else:
        for kw in range(w_row.shape[0]):
            a = acc[kw]
            for ow in range(OW):
                a += grow[ow] * line[ow * S + kw]
            acc[kw] = a
    for kw in range(w_row.shape[0]):
        wv = w_row[kw]
        for ow in range(OW):
            dline[ow * S + kw] += wv * grow[ow]


@njit(cache=True, inline="always")
def _strided_backward_row(acc, dline, grow, line, w_row, SW, OW):
    if SW == 1:
        _backward_row(acc, dline, grow, line, w_row, 1, OW)
    elif SW == 2:
        _backward_row(acc, dline, grow, line, w_row, 2, OW)
    else:
        _backward_row(acc, dline, grow, line, w_row, SW, OW)


@njit(parallel=True, cache=True, fastmath=_FAST)
def _backward(dy3, x3, w3, M, SH, SW, PH, PW, tasks, dx3, dw_part, db_part):
    NC, H, W = x3.shape
    K, KH, KW = w3.shape
    NK, OH, OW = dy3.shape
    C = K // M
    for task in prange(tasks):
        start, stop = _span(task, tasks, NC)
        pad = np.zeros((H + 2 * PH, W + 2 * PW), dtype=x3.dtype)  # x plane, zero-bordered
        dpad = np.empty_like(pad)  # its gradient, border included
        acc = np.empty(KW, dtype=x3.dtype)  # dw of one kernel row, this image
        for p in range(start, stop):  # input plane (n, c): its dx, and dw/db of its M outputs
            n, c = p // C, p % C
            _load(pad, x3[p], PH, PW)
            dpad[:, :] = 0
            for m in range(M):
                k = c * M + m
                g = dy3[n * K + k]  # OH,OW
                db_part[n, k] = g.sum()
                for kh in range(KH):
                    acc[:] = 0
                    for oh in range(OH):
                        r = oh * SH + kh
                        _strided_backward_row(acc, dpad[r], g[oh], pad[r], w3[k, kh], SW, OW)
                    dw_part[n, k, kh, :] = acc
            dx3[p] = dpad[PH: PH + H, PW: PW + W]  # the padding's gradient is dropped


def _sizes(x, w, stride, padding):
    (H, W), (KH, KW), (SH, SW), (PH, PW) = x.shape[2:], w.shape[2:], stride, padding
    return conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)


def _tasks(planes):
    """A few runs of planes per thread: even loads, and few buffers to allocate."""
    return max(1, min(planes, 4 * numba.get_num_threads()))


def depthwise_conv2d_forward(x, w, b, stride, padding):
    """Depthwise convolution of C-contiguous NCHW ``x`` with ``w`` (K, 1, KH, KW); returns ``y``."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = _sizes(x, w, stride, padding)
    y = np.empty((N, K, OH, OW), dtype=x.dtype)
    bias = np.zeros(K, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    _forward(np.ascontiguousarray(x).reshape(N * C, H, W),
             np.ascontiguousarray(w).reshape(K, KH, KW), bias, K // C,
             stride[0], stride[1], padding[0], padding[1], _tasks(N * K), y.reshape(N * K, OH, OW))
    return y


def depthwise_conv2d_backward(dy, x, w, stride, padding, has_bias):
    """``(dx, dw, db)`` of :func:`depthwise_conv2d_forward` (``db`` None without a bias)."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = _sizes(x, w, stride, padding)
    dx = np.empty((N, C, H, W), dtype=x.dtype)
    dw_part = np.empty((N, K, KH, KW), dtype=x.dtype)  # per-image shares of dw
    db_part = np.empty((N, K), dtype=x.dtype)
    _backward(np.ascontiguousarray(dy).reshape(N * K, OH, OW),
              np.ascontiguousarray(x).reshape(N * C, H, W),
              np.ascontiguousarray(w).reshape(K, KH, KW), K // C,
              stride[0], stride[1], padding[0], padding[1], _tasks(N * C),
              dx.reshape(N * C, H, W), dw_part, db_part)
    dw = dw_part.sum(axis=0).reshape(K, 1, KH, KW)  # K,1,KH,KW
    return dx, dw, (db_part.sum(axis=0) if has_bias else None)
