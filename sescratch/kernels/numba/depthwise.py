"""Depthwise convolution kernels (Numba, CPU): ``groups == C``, a channel of the batch at a time.

Kernels ``depthwise_conv2d_forward`` and ``depthwise_conv2d_backward``, same arguments and
results as ``sescratch.ops.depthwise_conv2d_forward_reference`` / ``..._backward_reference``:

- ``depthwise_conv2d_forward(x, w, b, stride, padding) -> y``
- ``depthwise_conv2d_backward(dy, x, w, stride, padding, has_bias) -> (dx, dw, db)``

x (N, C, H, W), w (K, 1, KH, KW) with K = M C (output channel ``k = c M + m`` reads input
channel ``c``), y (N, K, OH, OW).

Each task of the ``prange`` owns a run of channels and buffers holding one channel of the whole
batch, the images' planes stacked into one *tall* zero-bordered plane. Each input plane is
copied into it once, so no loop checks bounds, and every loop runs over the whole batch at once,
however small the planes (4x4 at the end of a CIFAR MobileNet: per-plane loops would be 16
iterations long, and half the plane border). The loops run over *flat* planes: the tall padded
plane has rows of ``Wp`` (``W + 2 PW`` rounded up to a multiple of SW), ``Hq`` rows per image
(``H + 2 PH`` rounded up to a multiple of SH); the output is held at row stride
``G = SH Wp / SW`` with ``Rq = Hq / SH`` rows per image (``j = (n Rq + oh) G + ow``). Tap
(kh, kw) of output ``j`` then reads ``pad[kh Wp + kw + SW j]``: each kernel row is one long loop
and each dw entry one dot product. The outputs between the rows and between the images (windows
straddling two images) are computed and dropped in the forward; in the backward the output
gradient is zero there, so they add nothing. For the 3-wide kernels of MobileNet and ShuffleNet
the three taps of a kernel row are fused into one pass (``KW == 3``); other widths loop over the
taps.

The forward writes output channel k of every image alone; the backward writes input channel c
of dx (through the tall padded buffer, cropped back) and dw, db of its M output channels: no two
tasks write the same memory, no atomics, no reduction over the batch afterwards. Sums accumulate
in the dtype of the arrays, as PyTorch's float32 kernels do.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from sescratch.ops.window import conv_output_size, kernel_strides

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_backward"]

_FAST = {"reassoc", "contract"}  # reorder sums (vectorised reductions); NaN and inf kept
_TALL = 16384  # elements of a tall plane (64 KiB in float32, within L2): images stacked per pass


@njit(cache=True, inline="always")
def _span(task, tasks, total):
    """Planes ``[start, stop)`` of task ``task`` of ``tasks`` (contiguous, sizes differing by 1)."""
    return task * total // tasks, (task + 1) * total // tasks


# The loops over a flat plane. The kernels call them with the stride as a literal 1 or 2 where
# it is one: inlined, the constant stride lets LLVM vectorise (unit-stride or interleaved loads),
# which a stride known only at run time prevents. Every index is an offset
# into a view starting at the row it reads, hence provably >= 0: Numba's wraparound of negative
# indices would add a branch to each access and stop the vectoriser.
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
    """The tall flat layout (module docstring): row length ``Wp``, rows per image ``Hq`` (input)
    and ``Rq`` (output), output row stride ``G``, and ``B``, the images per tall plane."""
    Wp = -(-(W + 2 * PW) // SW) * SW
    Hq = -(-(H + 2 * PH) // SH) * SH
    B = max(1, min(N, _TALL // (Hq * Wp)))
    return Wp, Hq, SH * Wp // SW, Hq // SH, B


@njit(cache=True, inline="always")
def _extent(b, Rq, G, OH, OW):
    """Flat extent of the outputs of ``b`` stacked images."""
    return ((b - 1) * Rq + OH - 1) * G + OW


@njit(cache=True, inline="always")
def _load_batch(pad, x3, c, C, n0, b, Hq, Wp, PH, PW):
    """Planes of channel c of images ``n0 ... n0 + b - 1`` into rows ``i Hq + PH ...`` of the
    zero-bordered tall ``pad``, row by row through 1-D views (indices provably >= 0)."""
    H, W = x3.shape[1], x3.shape[2]
    for i in range(b):
        for h in range(H):
            dst, src = pad[(i * Hq + PH + h) * Wp + PW:], x3[(n0 + i) * C + c, h]
            for w in range(W):
                dst[w] = src[w]


@njit(parallel=True, cache=True, fastmath=_FAST)
def _forward(x3, w3, bias, M, SH, SW, PH, PW, tasks, y3):
    NC, H, W = x3.shape
    K, KH, KW = w3.shape
    NK, OH, OW = y3.shape
    C, N = K // M, NK // K
    Wp, Hq, G, Rq, B = _flat_geometry(N, H, W, KH, SH, SW, PH, PW, OH, OW)
    for task in prange(tasks):
        start, stop = _span(task, tasks, K)
        pad = np.zeros(B * Hq * Wp, dtype=x3.dtype)  # channel c of B images, zero-bordered
        yflat = np.empty(_extent(B, Rq, G, OH, OW), dtype=x3.dtype)  # channel k, row stride G
        for k in range(start, stop):  # output channel k of every image
            c = k // M  # its input channel
            for n0 in range(0, N, B):
                b = min(B, N - n0)
                L = _extent(b, Rq, G, OH, OW)
                _load_batch(pad, x3, c, C, n0, b, Hq, Wp, PH, PW)
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
                for i in range(b):  # the windows straddling two images are dropped
                    for oh in range(OH):
                        dst, src = y3[(n0 + i) * K + k, oh], yflat[(i * Rq + oh) * G:]
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
    M output channels) at a time. dw: three dot products per kernel row (``_dw3``), summed over
    the tall planes of the batch; dx: for stride 1 and 2 a gather (``_dx3_*``: one store per
    pixel) reading ``g`` through zero margins of ``E`` on both sides; else a scatter per tap.
    Between the rows and the images ``g`` is zero, so the windows there add nothing."""
    NC, H, W = x3.shape
    K, KH, KW = w3.shape
    NK, OH, OW = dy3.shape
    C, N = K // M, NK // K
    Wp, Hq, G, Rq, B = _flat_geometry(N, H, W, KH, SH, SW, PH, PW, OH, OW)
    E = 2  # zero margin of g on each side, for the gathers of _dx3_* (which assume 2)
    fast = KW == 3 and SW <= 2
    zero = np.zeros(1, dtype=x3.dtype)[0]
    for task in prange(tasks):
        start, stop = _span(task, tasks, C)
        pad = np.zeros(B * Hq * Wp + E, dtype=x3.dtype)  # channel c of B images, bordered
        dpad = np.empty_like(pad)  # its gradient, borders included (+ E for _dx3_stride2)
        gbuf = np.zeros(E + _extent(B, Rq, G, OH, OW) + E, dtype=x3.dtype)  # dy, row stride G
        g = gbuf[E:]
        for c in range(start, stop):  # input channel c: its dx, and dw/db of its M outputs
            for m in range(M):
                db[c * M + m] = zero
                dw[c * M + m] = zero
            for n0 in range(0, N, B):
                b = min(B, N - n0)
                L = _extent(b, Rq, G, OH, OW)
                _load_batch(pad, x3, c, C, n0, b, Hq, Wp, PH, PW)
                for i in range(dpad.shape[0]):
                    dpad[i] = 0
                for m in range(M):
                    k = c * M + m
                    total = zero
                    for i in range(b):
                        for oh in range(OH):
                            dst, src = g[(i * Rq + oh) * G:], dy3[(n0 + i) * K + k, oh]
                            for ow in range(OW):
                                dst[ow] = src[ow]
                                total += src[ow]
                    g[L] = g[L + 1] = zero  # the gathers read 2 past the end (a last, short chunk)
                    db[k] += total
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
                            dw[k, kh, 0] += a[0]
                            dw[k, kh, 1] += a[1]
                            dw[k, kh, 2] += a[2]
                        else:
                            for kw in range(KW):
                                dw[k, kh, kw] += _tap(g, pad[row + kw:], dpad[row + kw:],
                                                      w3[k, kh, kw], SW, L, zero)
                for i in range(b):  # the padding's share of the gradient is dropped
                    for h in range(H):
                        dst, src = dx3[(n0 + i) * C + c, h], dpad[(i * Hq + PH + h) * Wp + PW:]
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
             *kernel_strides(stride, OH, OW), padding[0], padding[1], _tasks(K), y.reshape(N * K, OH, OW))
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
              *kernel_strides(stride, OH, OW), padding[0], padding[1], _tasks(C),
              dx.reshape(N * C, H, W), dw.reshape(K, KH, KW), db)
    return dx, dw, (db if has_bias else None)
