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


# Row loops. The kernels call them with the stride as a literal 1 or 2 where it is one: inlined,
# the constant stride lets LLVM vectorise the loop (unit-stride or interleaved loads), which a
# stride known only at run time prevents (measured: 3x slower).
@njit(cache=True, inline="always")
def _row3(row, line, w0, w1, w2, S, OW):
    """``row[ow] += w0 line[ow S] + w1 line[ow S + 1] + w2 line[ow S + 2]``: a kernel row of 3 taps."""
    for ow in range(OW):
        i = ow * S
        row[ow] += w0 * line[i] + w1 * line[i + 1] + w2 * line[i + 2]


@njit(cache=True, inline="always")
def _row_any(row, line, w_row, S, OW):
    """``row[ow] += sum_kw w_row[kw] line[ow S + kw]``: a kernel row of any width."""
    for kw in range(w_row.shape[0]):
        wv = w_row[kw]
        for ow in range(OW):
            row[ow] += wv * line[ow * S + kw]


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
                    line = pad[oh * SH + kh]
                    if KW == 3:
                        w0, w1, w2 = w3[k, kh, 0], w3[k, kh, 1], w3[k, kh, 2]
                        if SW == 1:
                            _row3(row, line, w0, w1, w2, 1, OW)
                        elif SW == 2:
                            _row3(row, line, w0, w1, w2, 2, OW)
                        else:
                            _row3(row, line, w0, w1, w2, SW, OW)
                    else:
                        _row_any(row, line, w3[k, kh], SW, OW)


@njit(cache=True, inline="always")
def _backward_taps3(g, pad, dpad, row, w0, w1, w2, S, L):
    """Kernel row ``kh`` (3 taps, ``row = kh * Wp``) over a whole plane, flat: returns
    ``<g, pad[row + kw + S j]>`` for kw = 0, 1, 2 (dw, three dot products in one pass) and
    adds ``w_kw g[j]`` into ``dpad[row + kw + S j]`` (dx, one axpy per tap: no loop-carried
    dependence)."""
    a0, a1, a2 = g[0] * 0, g[0] * 0, g[0] * 0
    for j in range(L):
        i = row + S * j
        a0 += g[j] * pad[i]
        a1 += g[j] * pad[i + 1]
        a2 += g[j] * pad[i + 2]
    for j in range(L):
        dpad[row + S * j] += w0 * g[j]
    for j in range(L):
        dpad[row + 1 + S * j] += w1 * g[j]
    for j in range(L):
        dpad[row + 2 + S * j] += w2 * g[j]
    return a0, a1, a2


@njit(cache=True, inline="always")
def _backward_tap(g, pad, dpad, off, wv, S, L):
    """One tap over a whole plane, flat: returns ``<g, pad[off + S j]>``, adds ``wv g`` to dx."""
    a = g[0] * 0
    for j in range(L):
        a += g[j] * pad[off + S * j]
    for j in range(L):
        dpad[off + S * j] += wv * g[j]
    return a


@njit(parallel=True, cache=True, fastmath=_FAST)
def _backward(dy3, x3, w3, M, SH, SW, PH, PW, tasks, dx3, dw_part, db_part):
    """Flat form: the padded plane has ``Hp`` rows of ``Wp`` (``W + 2 PW`` rounded up to a
    multiple of SW), and dy is copied into a buffer ``g`` of row stride ``G = SH Wp / SW``
    (``j = oh G + ow``; zeros between the rows). Then tap (kh, kw) of output (oh, ow) reads
    ``pad[kh Wp + kw + SW j]``: each tap is one long loop over the plane, with one horizontal
    sum per tap and plane rather than per row (the zeros of ``g`` add nothing)."""
    NC, H, W = x3.shape
    K, KH, KW = w3.shape
    NK, OH, OW = dy3.shape
    C = K // M
    Hp, Wp = H + 2 * PH, -(-(W + 2 * PW) // SW) * SW
    G = SH * Wp // SW  # row stride of g
    L = (OH - 1) * G + OW  # flat extent of the output plane in g
    for task in prange(tasks):
        start, stop = _span(task, tasks, NC)
        pad = np.zeros(Hp * Wp, dtype=x3.dtype)  # x plane, zero-bordered, flat
        dpad = np.empty_like(pad)  # its gradient, border included
        g = np.zeros(L, dtype=x3.dtype)  # dy plane at row stride Wp; the gaps stay 0
        for p in range(start, stop):  # input plane (n, c): its dx, and dw/db of its M outputs
            n, c = p // C, p % C
            _load(pad.reshape(Hp, Wp), x3[p], PH, PW)
            dpad[:] = 0
            for m in range(M):
                k = c * M + m
                q = n * K + k
                for oh in range(OH):
                    g[oh * G: oh * G + OW] = dy3[q, oh]
                db_part[n, k] = dy3[q].sum()
                for kh in range(KH):
                    row = kh * Wp
                    if KW == 3:
                        w0, w1, w2 = w3[k, kh, 0], w3[k, kh, 1], w3[k, kh, 2]
                        if SW == 1:
                            a = _backward_taps3(g, pad, dpad, row, w0, w1, w2, 1, L)
                        elif SW == 2:
                            a = _backward_taps3(g, pad, dpad, row, w0, w1, w2, 2, L)
                        else:
                            a = _backward_taps3(g, pad, dpad, row, w0, w1, w2, SW, L)
                        dw_part[n, k, kh, 0], dw_part[n, k, kh, 1], dw_part[n, k, kh, 2] = a
                    else:
                        for kw in range(KW):
                            dw_part[n, k, kh, kw] = _backward_tap(g, pad, dpad, row + kw,
                                                                  w3[k, kh, kw], SW, L)
            dx3[p] = dpad.reshape(Hp, Wp)[PH: PH + H, PW: PW + W]  # the padding's gradient dropped


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
