"""Max-pooling kernels (CuPy, GPU), PyTorch semantics; see :mod:`sescratch.kernels.numba.pool`.

The forward runs one thread per output element and scans its window row by row (first maximum
wins, NaN wins); the backward scatters each ``dy`` to its winner with ``atomicAdd`` (windows
overlap when the stride is smaller than the kernel).
"""
from __future__ import annotations

import cupy as cp
import numpy

_max_pool = cp.ElementwiseKernel(
    "raw T x, int64 H, int64 W, int64 OH, int64 OW, int64 KH, int64 KW, "
    "int64 SH, int64 SW, int64 PH, int64 PW, T neg_inf",
    "T y, int64 argmax",
    """
    const long long ow = i % OW;
    const long long oh = (i / OW) % OH;
    const long long base = (i / (OW * OH)) * H * W;
    T best = neg_inf;
    long long best_idx = -1;
    for (long long kh = 0; kh < KH; ++kh) {
        const long long h = oh * SH - PH + kh;
        if (h < 0 || h >= H) continue;
        for (long long kw = 0; kw < KW; ++kw) {
            const long long w = ow * SW - PW + kw;
            if (w < 0 || w >= W) continue;
            const T v = x[base + h * W + w];
            if (best_idx < 0 || v > best || (isnan(v) && !isnan(best))) {
                best = v;
                best_idx = h * W + w;
            }
        }
    }
    y = best;
    argmax = best_idx;
    """,
    "sescratch_max_pool2d",
)

_max_pool_backward = cp.ElementwiseKernel(
    "T dy, int64 argmax, int64 OHW, int64 HW",
    "raw T dx",
    "if (argmax >= 0) atomicAdd(&dx[(i / OHW) * HW + argmax], dy);",
    "sescratch_max_pool2d_backward",
)


def max_pool2d(x, KH, KW, SH, SW, PH, PW):
    """Max pooling; returns ``(y, argmax)``, argmax int64 flat ``h*W + w`` in the (n, c) plane."""
    x = cp.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    if OH < 1 or OW < 1:
        raise ValueError(
            f"max_pool2d: kernel ({KH}, {KW}) larger than the padded input ({H + 2 * PH}, {W + 2 * PW})"
        )
    y = cp.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = cp.empty((N, C, OH, OW), dtype=cp.int64)
    neg_inf = numpy.array(-numpy.inf, dtype=x.dtype)[()]
    _max_pool(x, H, W, OH, OW, KH, KW, SH, SW, PH, PW, neg_inf, y, argmax)
    return y, argmax


def max_pool2d_backward(dy, argmax, H, W):
    """``dx[n, c].flat[argmax[n, c, i]] += dy[n, c, i]``."""
    N, C = dy.shape[:2]
    dx = cp.zeros((N, C, H, W), dtype=dy.dtype)
    _max_pool_backward(
        cp.ascontiguousarray(dy), cp.ascontiguousarray(argmax), dy.shape[2] * dy.shape[3], H * W, dx
    )
    return dx
