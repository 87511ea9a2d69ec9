"""Max-pooling kernels (Numba, CPU), PyTorch semantics (average pooling:
:mod:`sescratch.kernels.numba.avg_pool`).

Notation: x (N, C, H, W), kernel KH x KW, stride SH, SW, padding PH, PW (implicit -inf),
``OH, OW`` from :func:`sescratch.ops.window.conv_output_size`. Each window's values are taken
row by row; the first maximum wins (NaN counts as the maximum, the first NaN wins), as
``numpy.argmax`` over the flattened window does. ``argmax`` holds the flat index ``h*W + w`` of
the winner in its (n, c) plane, so the backward is a scatter-add within the plane, and planes
(the ``prange`` unit) never write to one another.

Strides 1 and 2 go over the whole plane at once: the plane (stride 1) or its four parity phases
(stride 2) inside a -inf border, flat, so that each tap of the window is one unit-stride pass
over all the windows, however short the rows. Other strides go one output row at a time.
Measured against the scan of one window at a time (2-core Xeon, 2026-12-03): the 3x3/2 pool of
an ImageNet stem at batch 8 (64 x 112 x 112) 27.9 -> 5.7 ms (PyTorch 24), BN-Inception's 3x3/2
pools at 16x16 and 8x8 (batch 64) 6.9 -> 1.6 and 4.0 -> 1.1 ms, its 3x3/1 pools 2-3x faster.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from sescratch.kernels.numba.conv import _gather, _image_columns, _scatter
from sescratch.kernels.numba.depthwise import _span, _tasks
from sescratch.kernels.numba.norm import _planes
from sescratch.ops.window import conv_output_size


@njit(inline="always")
def _columns(W, offset, SW, OW):
    """The ow < OW whose window column w = ow*SW + offset lies in [0, W): range(lo, hi)."""
    lo, hi = _image_columns(offset, SW, 0, W)
    lo, hi = max(0, lo), min(OW, hi)
    return lo, max(lo, hi)


@njit(inline="always")
def _phase_grid(OH, OW, KH, KW):
    """Rows Rq and columns Wq of each parity phase a stride-2 window of KH x KW reads."""
    return OH + (KH - 1) // 2, OW + (KW - 1) // 2


@njit(inline="always")
def _phase_tap(t, KW, Lq, Wq):
    """Where tap t = kh*KW + kw of output grid cell 0 reads in the four phases of Lq cells."""
    kh, kw = t // KW, t % KW
    return (2 * (kh % 2) + kw % 2) * Lq + (kh // 2) * Wq + kw // 2


@njit(inline="always")
def _take_max(seg, step, first, best, idx):
    """best[i], idx[i] = seg[i*step], first + i*step where that value wins over best[i]."""
    for i in range(best.shape[0]):
        v, b = seg[i * step], best[i]
        take = (idx[i] < 0) | (v > b) | ((v != v) & (b == b))
        best[i] = v if take else b
        idx[i] = first + i * step if take else idx[i]


@njit(inline="always")
def _take_tap(seg, t, best, tap):
    """One tap t over a grid: best[q], tap[q] = seg[q], t where seg[q] wins (strict ``>``: the
    padding's -inf never does; NaN beats a number)."""
    for q in range(best.shape[0]):
        v, b = seg[q], best[q]
        take = (v > b) | ((v != v) & (b == b))
        best[q] = v if take else b
        tap[q] = t if take else tap[q]


@njit(inline="always")
def _crop(best, tap, Wq, S, KW, PH, PW, W, p, OH, OW, y3, am3):
    """y and argmax of plane p from grid cells q = oh*Wq + ow (stride S): tap t's cell is
    (S oh + t // KW - PH, S ow + t % KW - PW); t = -1 (all -inf) the window's first in-image cell."""
    for oh in range(OH):
        for ow in range(OW):
            q = oh * Wq + ow
            t = tap[q]
            y3[p, oh * OW + ow] = best[q]
            if t < 0:
                am3[p, oh * OW + ow] = max(S * oh - PH, 0) * W + max(S * ow - PW, 0)
            else:
                am3[p, oh * OW + ow] = (S * oh + t // KW - PH) * W + S * ow + t % KW - PW


@njit(parallel=True, cache=True)
def _max_pool(x3, W, KH, KW, SH, SW, PH, PW, OH, OW, neg_inf, y3, am3):
    """Other strides, one output row at a time: each tap (kh, kw) is one pass over the row's
    windows, ``take`` a select rather than a branch. The taps go in the window's row-by-row
    order, so each window sees its candidates in the order of a scan of its own: the first
    maximum (or NaN) wins. A window scanned on its own, with branches, had been 3.2x slower."""
    P, HW = x3.shape
    H = HW // W
    for p in prange(P):
        best = np.empty(OW, dtype=x3.dtype)
        idx = np.empty(OW, dtype=np.int64)
        for oh in range(OH):
            best[:] = neg_inf[0]  # a window of padding only (PH > KH // 2) gives -inf
            idx[:] = -1
            for kh in range(KH):
                h = oh * SH - PH + kh
                if h < 0 or h >= H:
                    continue
                row = x3[p, h * W:(h + 1) * W]
                for kw in range(KW):
                    lo, hi = _columns(W, kw - PW, SW, OW)
                    w0 = lo * SW + kw - PW  # the column of window lo's tap
                    seg, b, i = row[w0:], best[lo:hi], idx[lo:hi]
                    if SW == 2:  # a literal stride: LLVM vectorises its loads
                        _take_max(seg, 2, h * W + w0, b, i)
                    elif SW == 1:
                        _take_max(seg, 1, h * W + w0, b, i)
                    else:
                        _take_max(seg, SW, h * W + w0, b, i)
            y3[p, oh * OW:(oh + 1) * OW] = best
            am3[p, oh * OW:(oh + 1) * OW] = idx


@njit(parallel=True, cache=True)
def _unit_stride(x3, W, KH, KW, PH, PW, OH, OW, neg_inf, tasks, y3, am3):
    """Stride 1 (Inception's pool branches) on a flat grid, as the stride-1 average pool
    (:mod:`sescratch.kernels.numba.avg_pool`): the plane inside a -inf border ``Wp = W + 2 PW``
    wide, each tap t = kh*KW + kw one unit-stride pass over the whole plane that keeps the
    winning tap. Padding never wins (strict ``>``); a window whose values are all -inf keeps its
    first in-bounds cell, as the scan of :func:`_max_pool` does (t = -1 below)."""
    P, HW = x3.shape
    H, Wp = HW // W, W + 2 * PW
    L = OH * Wp
    for task in prange(tasks):
        grid = np.full((H + 2 * PH) * Wp + KW, neg_inf[0], dtype=x3.dtype)  # the border stays -inf
        best = np.empty(L, dtype=x3.dtype)
        tap = np.empty(L, dtype=np.int64)
        p0, p1 = _span(task, tasks, P)
        for p in range(p0, p1):
            for i in range(H):
                grid[(PH + i) * Wp + PW:(PH + i) * Wp + PW + W] = x3[p, i * W:(i + 1) * W]
            best[:] = neg_inf[0]
            tap[:] = -1
            for t in range(KH * KW):
                _take_tap(grid[(t // KW) * Wp + t % KW:], t, best, tap)
            _crop(best, tap, Wp, 1, KW, PH, PW, W, p, OH, OW, y3, am3)


@njit(inline="always")
def _to_phases(plane, H, W, PH, PW, Rq, Wq, f):
    """f[(2a + b) Lq + r Wq + s] = x_pad[2r + a, 2s + b] for the image's cells (r < Rq, s < Wq;
    Lq = Rq Wq); f's other cells (the padding) are left as they are."""
    Lq = Rq * Wq
    for i in range(H):
        r, a = (i + PH) // 2, (i + PH) % 2
        if r >= Rq:
            break
        for b in range(2):
            s0, s1 = _columns(W, b - PW, 2, Wq)  # image column 2s + b - PW, phase column s
            _gather(f[(2 * a + b) * Lq + r * Wq + s0:], plane[i * W + 2 * s0 + b - PW:], 2, s1 - s0)


@njit(inline="always")
def _from_phases(f, H, W, PH, PW, Rq, Wq, plane):
    """The inverse of :func:`_to_phases`: plane[i*W + j] = f's cell of x_pad[PH + i, PW + j]."""
    Lq = Rq * Wq
    for i in range(H):
        r, a = (i + PH) // 2, (i + PH) % 2
        if r >= Rq:
            break
        for b in range(2):
            s0, s1 = _columns(W, b - PW, 2, Wq)
            _scatter(plane[i * W + 2 * s0 + b - PW:], f[(2 * a + b) * Lq + r * Wq + s0:], 2, s1 - s0)


@njit(parallel=True, cache=True)
def _stride_two(x3, W, KH, KW, PH, PW, OH, OW, neg_inf, tasks, y3, am3):
    """Stride 2 (the stems' and reduction modules' pools) on the input's four parity phases:
    ``f[(2a + b) Lq + r Wq + s] = x_pad[2r + a, 2s + b]`` (Rq = OH + (KH - 1) // 2 rows, Wq =
    OW + (KW - 1) // 2 columns, -inf where x_pad is padding or past the image), so that tap
    (kh, kw) of output grid cell q = oh Wq + ow is cell ``q + (2 (kh % 2) + kw % 2) Lq +
    (kh // 2) Wq + kw // 2``: one unit-stride pass per tap over the plane, as :func:`_unit_stride`."""
    P, HW = x3.shape
    H = HW // W
    Rq, Wq = _phase_grid(OH, OW, KH, KW)
    Lq, L = Rq * Wq, OH * Wq
    for task in prange(tasks):
        f = np.full(4 * Lq + KW, neg_inf[0], dtype=x3.dtype)  # cells no image value reaches stay -inf
        best = np.empty(L, dtype=x3.dtype)
        tap = np.empty(L, dtype=np.int64)
        p0, p1 = _span(task, tasks, P)
        for p in range(p0, p1):
            _to_phases(x3[p], H, W, PH, PW, Rq, Wq, f)
            best[:] = neg_inf[0]
            tap[:] = -1
            for t in range(KH * KW):
                _take_tap(f[_phase_tap(t, KW, Lq, Wq):], t, best, tap)
            _crop(best, tap, Wq, 2, KW, PH, PW, W, p, OH, OW, y3, am3)


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
    neg_inf, y3, am3 = np.full(1, -np.inf, dtype=x.dtype), y.reshape(N * C, OH * OW), argmax.reshape(N * C, OH * OW)
    tasks = _tasks(N * C)
    if SH == SW == 1:
        _unit_stride(x3, W, KH, KW, PH, PW, OH, OW, neg_inf, tasks, y3, am3)
    elif SH == SW == 2:
        _stride_two(x3, W, KH, KW, PH, PW, OH, OW, neg_inf, tasks, y3, am3)
    else:
        _max_pool(x3, W, KH, KW, SH, SW, PH, PW, OH, OW, neg_inf, y3, am3)
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
