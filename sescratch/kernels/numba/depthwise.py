"""Depthwise convolution kernels (Numba, CPU): ``groups == C``, plane by plane.

Kernels ``depthwise_conv2d_forward`` and ``depthwise_conv2d_backward``, same arguments and
results as ``sescratch.ops.depthwise_conv2d_forward_reference`` / ``..._backward_reference``:

- ``depthwise_conv2d_forward(x, w, b, stride, padding) -> y``
- ``depthwise_conv2d_backward(dy, x, w, stride, padding, has_bias) -> (dx, dw, db)``

x (N, C, H, W), w (K, 1, KH, KW) with K = M C (output channel ``k = c M + m`` reads input
channel ``c``), y (N, K, OH, OW).

Each task of the ``prange`` owns a run of consecutive planes and small buffers of one plane. It
copies each input plane into a zero-bordered buffer once, so no loop checks bounds, however
small the planes (4x4 at the end of a CIFAR MobileNet, where the borders are half the plane).
The loops run over *flat* planes: the padded plane has ``Hp = H + 2 PH`` rows of ``Wp``
(``W + 2 PW`` rounded up to a multiple of SW), an output plane is held at row stride
``G = SH Wp / SW`` (``j = oh G + ow``; the entries between its rows are unused in the forward
and zero in the backward), and tap (kh, kw) of output ``j`` then reads ``pad[kh Wp + kw + SW j]``.
So each kernel row is one long loop over the plane (not one short loop per output row) and each
dw entry one dot product per plane. For the 3-wide kernels of MobileNet and ShuffleNet the three
taps of a kernel row are fused into one pass (``KW == 3``); other widths loop over the taps.

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


# The loops over a flat plane. The kernels call them with the stride as a literal 1 or 2 where
# it is one: inlined, the constant stride lets LLVM vectorise (unit-stride or interleaved loads),
# which a stride known only at run time prevents (measured: 3x slower). Every index is an offset
# into a view starting at the row it reads, hence provably >= 0: Numba's wraparound of negative
# indices would add a branch to each access and stop the vectoriser (measured: 3x slower).
@njit(cache=True, inline="always")
def _y3(yflat, line, w0, w1, w2, S, L):
    """``yflat[j] += w0 line[S j] + w1 line[S j + 1] + w2 line[S j + 2]``: a kernel row of 3 taps."""
    for j in range(L):
        i = S * j
        yflat[j] += w0 * line[i] + w1 * line[i + 1] + w2 * line[i + 2]


@njit(cache=True, inline="always")
def _y1(yflat, line, wv, S, L):
    """``yflat[j] += wv line[S j]``: one tap (kernels of other widths)."""
    for j in range(L):
        yflat[j] += wv * line[S * j]


@njit(cache=True, inline="always")
def _flat_geometry(N, H, W, KH, SH, SW, PH, PW, OH, OW):
    """The tall flat layout (module docstring): rows ``Wp``, rows per image ``Hq`` (input) and
    ``Rq`` (output), output row stride ``G``, flat extent ``L`` of the batch's output."""
    Wp = -(-(W + 2 * PW) // SW) * SW
    Hq = -(-(H + 2 * PH) // SH) * SH
    G, Rq = SH * Wp // SW, Hq // SH
    return Wp, Hq, G, Rq, ((N - 1) * Rq + OH - 1) * G + OW


@njit(cache=True, inline="always")
def _load_batch(pad, x3, c, C, Hq, Wp, PH, PW):
    """Image n's plane of channel c into rows ``n Hq + PH ...`` of the zero-bordered tall ``pad``,
    row by row through 1-D views (every index provably >= 0, see the note above ``_y3``)."""
    N, H, W = x3.shape[0] // C, x3.shape[1], x3.shape[2]
    for n in range(N):
        for h in range(H):
            dst, src = pad[(n * Hq + PH + h) * Wp + PW:], x3[n * C + c, h]
            for w in range(W):
                dst[w] = src[w]


@njit(parallel=True, cache=True, fastmath=_FAST)
def _forward(x3, w3, bias, M, SH, SW, PH, PW, tasks, y3):
    NC, H, W = x3.shape
    K, KH, KW = w3.shape
    NK, OH, OW = y3.shape
    C, N = K // M, NK // K
    Wp, Hq, G, Rq, L = _flat_geometry(N, H, W, KH, SH, SW, PH, PW, OH, OW)
    for task in prange(tasks):
        start, stop = _span(task, tasks, K)
        pad = np.zeros(N * Hq * Wp, dtype=x3.dtype)  # channel c of every image, zero-bordered
        yflat = np.empty(L, dtype=x3.dtype)  # channel k of every image, at row stride G
        loaded = -1
        for k in range(start, stop):  # output channel k, all images at once
            c = k // M  # its input channel
            if c != loaded:
                _load_batch(pad, x3, c, C, Hq, Wp, PH, PW)
                loaded = c
            for j in range(L):
                yflat[j] = bias[k]
            for kh in range(KH):
                line = pad[kh * Wp:]
                if KW == 3:
                    w0, w1, w2 = w3[k, kh, 0], w3[k, kh, 1], w3[k, kh, 2]
                    if SW == 1:
                        _y3(yflat, line, w0, w1, w2, 1, L)
                    elif SW == 2:
                        _y3(yflat, line, w0, w1, w2, 2, L)
                    else:
                        _y3(yflat, line, w0, w1, w2, SW, L)
                else:
                    for kw in range(KW):
                        _y1(yflat, line[kw:], w3[k, kh, kw], SW, L)
            for n in range(N):  # the windows straddling two images are dropped
                for oh in range(OH):
                    dst, src = y3[n * K + k, oh], yflat[(n * Rq + oh) * G:]
                    for ow in range(OW):
                        dst[ow] = src[ow]


@njit(cache=True, inline="always")
def _dw3(g, line, S, L, zero):
    """``<g, line[kw + S j]>`` for kw = 0, 1, 2: three dot products in one pass (dw)."""
    a0, a1, a2 = zero, zero, zero  # of the arrays' dtype (g[0] * 0 would be float64)
    for j in range(L):
        i = S * j
        a0 += g[j] * line[i]
        a1 += g[j] * line[i + 1]
        a2 += g[j] * line[i + 2]
    return a0, a1, a2


@njit(cache=True, inline="always")
def _dx3_stride1(dline, gbuf, w0, w1, w2, L):
    """``dline[t] += w0 g[t] + w1 g[t - 1] + w2 g[t - 2]`` (dx of a 3-tap row, stride 1):
    the scatter of the three taps written as a gather, one store per element; ``g = gbuf[2:]``
    is read through its zero margins of 2 on each side (``g[-1] = g[L] = 0``)."""
    for t in range(L + 2):
        dline[t] += w0 * gbuf[t + 2] + w1 * gbuf[t + 1] + w2 * gbuf[t]


@njit(cache=True, inline="always")
def _dx3_stride2(dline, gbuf, w0, w1, w2, L):
    """The same for stride 2: even columns get taps 0 and 2, odd columns tap 1."""
    for j in range(L + 1):
        dline[2 * j] += w0 * gbuf[j + 2] + w2 * gbuf[j + 1]
        dline[2 * j + 1] += w1 * gbuf[j + 2]


@njit(cache=True, inline="always")
def _tap(g, line, dline, wv, S, L, zero):
    """Any tap, any stride: returns ``<g, line[S j]>`` (dw) and adds ``wv g[j]`` into
    ``dline[S j]`` (dx, a scatter: one axpy per tap)."""
    a = zero
    for j in range(L):
        a += g[j] * line[S * j]
    for j in range(L):
        dline[S * j] += wv * g[j]
    return a


@njit(parallel=True, cache=True, fastmath=_FAST)
def _backward(dy3, x3, w3, M, SH, SW, PH, PW, tasks, dx3, dw, db):
    """dx, dw and db in the tall flat layout of the module docstring, one input channel (and its
    M output channels) at a time. dw: three dot products per kernel row (``_dw3``) over the whole
    batch; dx: for stride 1 and 2 a gather (``_dx3_*``: one store per pixel) reading ``g``
    through zero margins of ``E`` on both sides; else a scatter per tap. Between the images,
    ``g`` is zero, so the windows straddling two images add nothing."""
    NC, H, W = x3.shape
    K, KH, KW = w3.shape
    NK, OH, OW = dy3.shape
    C, N = K // M, NK // K
    Wp, Hq, G, Rq, L = _flat_geometry(N, H, W, KH, SH, SW, PH, PW, OH, OW)
    E = 2  # zero margin of g on each side, for the gathers of _dx3_* (which assume 2)
    fast = KW == 3 and SW <= 2
    zero = np.zeros(1, dtype=x3.dtype)[0]
    for task in prange(tasks):
        start, stop = _span(task, tasks, C)
        pad = np.zeros(N * Hq * Wp + E, dtype=x3.dtype)  # channel c of every image, bordered
        dpad = np.empty_like(pad)  # its gradient, borders included (+ E for _dx3_stride2)
        gbuf = np.zeros(E + L + E, dtype=x3.dtype)  # dy of channel k at row stride G; gaps 0
        g = gbuf[E: E + L]
        for c in range(start, stop):  # input channel c: its dx, and dw/db of its M outputs
            _load_batch(pad, x3, c, C, Hq, Wp, PH, PW)
            for i in range(dpad.shape[0]):
                dpad[i] = 0
            for m in range(M):
                k = c * M + m
                total = zero
                for n in range(N):
                    for oh in range(OH):
                        dst, src = g[(n * Rq + oh) * G:], dy3[n * K + k, oh]
                        for ow in range(OW):
                            dst[ow] = src[ow]
                            total += src[ow]
                db[k] = total
                for kh in range(KH):
                    row = kh * Wp
                    if fast:
                        w0, w1, w2 = w3[k, kh, 0], w3[k, kh, 1], w3[k, kh, 2]
                        line, dline = pad[row:], dpad[row:]  # views: indices provably >= 0
                        if SW == 1:
                            a = _dw3(g, line, 1, L, zero)
                            _dx3_stride1(dline, gbuf, w0, w1, w2, L)
                        else:
                            a = _dw3(g, line, 2, L, zero)
                            _dx3_stride2(dline, gbuf, w0, w1, w2, L)
                        dw[k, kh, 0], dw[k, kh, 1], dw[k, kh, 2] = a
                    else:
                        for kw in range(KW):
                            dw[k, kh, kw] = _tap(g, pad[row + kw:], dpad[row + kw:],
                                                 w3[k, kh, kw], SW, L, zero)
            for n in range(N):  # the padding's share of the gradient is dropped
                for h in range(H):
                    dst, src = dx3[n * C + c, h], dpad[(n * Hq + PH + h) * Wp + PW:]
                    for w in range(W):
                        dst[w] = src[w]


def _sizes(x, w, stride, padding):
    (H, W), (KH, KW), (SH, SW), (PH, PW) = x.shape[2:], w.shape[2:], stride, padding
    return conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)


def _tasks(channels):
    """A few runs of channels per thread: even loads, and few buffers to allocate."""
    return max(1, min(channels, 4 * numba.get_num_threads()))


def depthwise_conv2d_forward(x, w, b, stride, padding):
    """Depthwise convolution of C-contiguous NCHW ``x`` with ``w`` (K, 1, KH, KW); returns ``y``."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = _sizes(x, w, stride, padding)
    y = np.empty((N, K, OH, OW), dtype=x.dtype)
    bias = np.zeros(K, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    _forward(np.ascontiguousarray(x).reshape(N * C, H, W),
             np.ascontiguousarray(w).reshape(K, KH, KW), bias, K // C,
             stride[0], stride[1], padding[0], padding[1], _tasks(K), y.reshape(N * K, OH, OW))
    return y


def depthwise_conv2d_backward(dy, x, w, stride, padding, has_bias):
    """``(dx, dw, db)`` of :func:`depthwise_conv2d_forward` (``db`` None without a bias)."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = _sizes(x, w, stride, padding)
    dx = np.empty((N, C, H, W), dtype=x.dtype)
    dw = np.empty((K, 1, KH, KW), dtype=x.dtype)
    db = np.empty(K, dtype=x.dtype)
    _backward(np.ascontiguousarray(dy).reshape(N * K, OH, OW),
              np.ascontiguousarray(x).reshape(N * C, H, W),
              np.ascontiguousarray(w).reshape(K, KH, KW), K // C,
              stride[0], stride[1], padding[0], padding[1], _tasks(C),
              dx.reshape(N * C, H, W), dw.reshape(K, KH, KW), db)
    return dx, dw, (db if has_bias else None)
