"""Average-pooling kernels (Numba, CPU), PyTorch semantics; the window geometry as in
:mod:`sescratch.kernels.numba.pool`.

Each window's sum is divided by the ``divisor`` (OH, OW) the op computed (``count_include_pad``
and ``ceil_mode`` are in it). Both directions add the window's taps in row-by-row order, as the
NumPy reference does, so the results are the reference's bit for bit. Each ``prange`` task owns
a run of (n, c) planes and its buffers.

Stride 1 (Inception's 3x3 pool branch): the plane goes into a zero-bordered flat grid ``Wp = W +
2 PW`` wide, ``g[(PH + i) Wp + PW + j] = x[i, j]``; output grid cell ``q = oh Wp + ow`` then
reads tap (kh, kw) at ``q + kh Wp + kw``, so each tap is one unit-stride pass over the whole
plane, however short its rows (4x4 at the end of a CIFAR network), and the backward adds each
tap's shares back the same way (the grid's last KW - 1 columns, outside the output, carry
zeros). Stride 2 (ShuffleNet's shortcut) does the same on the input's four parity phases.
Other strides go one output row at a time, each tap a pass over the row's windows.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from sescratch.kernels.numba.depthwise import _span, _tasks
from sescratch.kernels.numba.norm import _planes
from sescratch.kernels.numba.pool import _columns, _from_phases, _phase_grid, _phase_tap, _to_phases

__all__ = ["avg_pool2d_forward", "avg_pool2d_backward"]


@njit(inline="always")
def _add_taps(acc, seg, step):
    """acc[i] += seg[i*step]."""
    for i in range(acc.shape[0]):
        acc[i] += seg[i * step]


@njit(inline="always")
def _spread(dst, step, share):
    """dst[i*step] += share[i]."""
    for i in range(share.shape[0]):
        dst[i * step] += share[i]


@njit(parallel=True, cache=True)
def _unit_stride(x3, W, KH, KW, PH, PW, divisor, tasks, y3):
    """Stride 1 on the flat grid (module docstring)."""
    P, HW = x3.shape
    H, (OH, OW) = HW // W, divisor.shape
    Wp = W + 2 * PW
    for task in prange(tasks):
        grid = np.zeros((H + 2 * PH) * Wp + KW, dtype=x3.dtype)  # the border stays zero
        acc = np.empty(OH * Wp, dtype=x3.dtype)
        p0, p1 = _span(task, tasks, P)
        for p in range(p0, p1):
            for i in range(H):
                grid[(PH + i) * Wp + PW:(PH + i) * Wp + PW + W] = x3[p, i * W:(i + 1) * W]
            acc[:] = 0
            for kh in range(KH):
                for kw in range(KW):
                    _add_taps(acc, grid[kh * Wp + kw:], 1)
            for oh in range(OH):
                for ow in range(OW):
                    y3[p, oh * OW + ow] = acc[oh * Wp + ow] / divisor[oh, ow]


@njit(parallel=True, cache=True)
def _unit_stride_backward(dy3, divisor, W, KH, KW, PH, PW, tasks, dx3):
    """The adjoint of :func:`_unit_stride`: shares dy / divisor on the output grid, added into the
    input's grid tap by tap, cropped into dx."""
    P, HW = dx3.shape
    H, (OH, OW) = HW // W, divisor.shape
    Wp = W + 2 * PW
    for task in prange(tasks):
        share = np.zeros(OH * Wp, dtype=dy3.dtype)  # columns OW .. Wp - 1 stay zero
        grid = np.empty((H + 2 * PH) * Wp + KW, dtype=dy3.dtype)
        p0, p1 = _span(task, tasks, P)
        for p in range(p0, p1):
            for oh in range(OH):
                for ow in range(OW):
                    share[oh * Wp + ow] = dy3[p, oh * OW + ow] / divisor[oh, ow]
            grid[:] = 0
            for kh in range(KH):
                for kw in range(KW):
                    _spread(grid[kh * Wp + kw:], 1, share)
            for i in range(H):
                dx3[p, i * W:(i + 1) * W] = grid[(PH + i) * Wp + PW:(PH + i) * Wp + PW + W]


@njit(parallel=True, cache=True)
def _stride_two(x3, W, KH, KW, PH, PW, divisor, tasks, y3):
    """Stride 2 on the input's four parity phases, zero where x_pad is padding or past the image
    (as :func:`sescratch.kernels.numba.pool._stride_two`): one unit-stride pass per tap."""
    P, HW = x3.shape
    H, (OH, OW) = HW // W, divisor.shape
    Rq, Wq = _phase_grid(OH, OW, KH, KW)
    Lq = Rq * Wq
    for task in prange(tasks):
        f = np.zeros(4 * Lq + KW, dtype=x3.dtype)  # cells no image value reaches stay zero
        acc = np.empty(OH * Wq, dtype=x3.dtype)
        p0, p1 = _span(task, tasks, P)
        for p in range(p0, p1):
            _to_phases(x3[p], H, W, PH, PW, Rq, Wq, f)
            acc[:] = 0
            for t in range(KH * KW):
                _add_taps(acc, f[_phase_tap(t, KW, Lq, Wq):], 1)
            for oh in range(OH):
                for ow in range(OW):
                    y3[p, oh * OW + ow] = acc[oh * Wq + ow] / divisor[oh, ow]


@njit(parallel=True, cache=True)
def _stride_two_backward(dy3, divisor, W, KH, KW, PH, PW, tasks, dx3):
    """The adjoint of :func:`_stride_two`: shares added into the phases tap by tap, then the
    phases' image cells into dx (cells no window holds get zero)."""
    P, HW = dx3.shape
    H, (OH, OW) = HW // W, divisor.shape
    Rq, Wq = _phase_grid(OH, OW, KH, KW)
    Lq = Rq * Wq
    for task in prange(tasks):
        share = np.zeros(OH * Wq, dtype=dy3.dtype)  # columns OW .. Wq - 1 stay zero
        f = np.empty(4 * Lq + KW, dtype=dy3.dtype)
        p0, p1 = _span(task, tasks, P)
        for p in range(p0, p1):
            for oh in range(OH):
                for ow in range(OW):
                    share[oh * Wq + ow] = dy3[p, oh * OW + ow] / divisor[oh, ow]
            f[:] = 0
            for t in range(KH * KW):
                _spread(f[_phase_tap(t, KW, Lq, Wq):], 1, share)
            dx3[p, :] = 0
            _from_phases(f, H, W, PH, PW, Rq, Wq, dx3[p])


@njit(parallel=True, cache=True)
def _by_rows(x3, W, KH, KW, SH, SW, PH, PW, divisor, tasks, y3):
    """Any stride, one output row at a time: each tap a pass adding its column of the row's
    windows (the padding adds nothing)."""
    P, HW = x3.shape
    H, (OH, OW) = HW // W, divisor.shape
    for task in prange(tasks):
        acc = np.empty(OW, dtype=x3.dtype)
        p0, p1 = _span(task, tasks, P)
        for p in range(p0, p1):
            for oh in range(OH):
                acc[:] = 0
                for kh in range(KH):
                    h = oh * SH - PH + kh
                    if h < 0 or h >= H:
                        continue
                    for kw in range(KW):
                        lo, hi = _columns(W, kw - PW, SW, OW)
                        seg, a = x3[p, h * W + lo * SW + kw - PW:], acc[lo:hi]
                        if SW == 2:
                            _add_taps(a, seg, 2)
                        else:
                            _add_taps(a, seg, SW)
                for ow in range(OW):
                    y3[p, oh * OW + ow] = acc[ow] / divisor[oh, ow]


@njit(parallel=True, cache=True)
def _by_rows_backward(dy3, divisor, W, KH, KW, SH, SW, PH, PW, tasks, dx3):
    """The adjoint of :func:`_by_rows`, tap by tap over the plane (each input gets its shares in
    the order of the taps)."""
    P, HW = dx3.shape
    H, (OH, OW) = HW // W, divisor.shape
    for task in prange(tasks):
        share = np.empty(OH * OW, dtype=dy3.dtype)
        p0, p1 = _span(task, tasks, P)
        for p in range(p0, p1):
            for j in range(OH * OW):
                share[j] = dy3[p, j] / divisor[j // OW, j % OW]
            dx3[p, :] = 0
            for kh in range(KH):
                for kw in range(KW):
                    lo, hi = _columns(W, kw - PW, SW, OW)
                    for oh in range(OH):
                        h = oh * SH - PH + kh
                        if h < 0 or h >= H:
                            continue
                        dst, s = dx3[p, h * W + lo * SW + kw - PW:], share[oh * OW + lo:oh * OW + hi]
                        if SW == 2:
                            _spread(dst, 2, s)
                        else:
                            _spread(dst, SW, s)


def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, divisor):
    """Average pooling of an NCHW array: (N, C, OH, OW), with (OH, OW) = divisor.shape."""
    N, C, H, W = x.shape
    OH, OW = divisor.shape
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    x3, y3 = _planes(x).reshape(N * C, H * W), y.reshape(N * C, OH * OW)
    d = np.ascontiguousarray(divisor, dtype=x.dtype)
    if SH == SW == 1:
        _unit_stride(x3, W, KH, KW, PH, PW, d, _tasks(N * C), y3)
    elif SH == SW == 2:
        _stride_two(x3, W, KH, KW, PH, PW, d, _tasks(N * C), y3)
    else:
        _by_rows(x3, W, KH, KW, SH, SW, PH, PW, d, _tasks(N * C), y3)
    return y


def avg_pool2d_backward(dy, divisor, H, W, KH, KW, SH, SW, PH, PW):
    """dx (N, C, H, W) of :func:`avg_pool2d_forward`."""
    N, C, OH, OW = dy.shape
    dx = np.empty((N, C, H, W), dtype=dy.dtype)
    dy3, dx3 = np.ascontiguousarray(dy).reshape(N * C, OH * OW), dx.reshape(N * C, H * W)
    d = np.ascontiguousarray(divisor, dtype=dy.dtype)
    if SH == SW == 1:
        _unit_stride_backward(dy3, d, W, KH, KW, PH, PW, _tasks(N * C), dx3)
    elif SH == SW == 2:
        _stride_two_backward(dy3, d, W, KH, KW, PH, PW, _tasks(N * C), dx3)
    else:
        _by_rows_backward(dy3, d, W, KH, KW, SH, SW, PH, PW, _tasks(N * C), dx3)
    return dx
