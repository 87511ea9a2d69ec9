"""Max- and average-pooling kernels (CuPy, GPU), PyTorch semantics; see
:mod:`sescratch.kernels.numba.pool`.

The forward runs one thread per output element and scans its window row by row (first maximum
wins, NaN wins). The backward runs one thread per (n, c) plane, which adds the plane's ``dy``
to their winners in output order, as the Numba kernel does: windows
overlap when the stride is smaller than the kernel, and ``atomicAdd`` would sum the shares of
an input in a different order from run to run; this way the sum, and so a resumed run, is
bit-for-bit reproducible (and equal to the Numba kernel's; the NumPy reference sums the shares
in float64 with ``bincount``, so its float32 results can differ in the last bit). N*C threads are enough for the stem pool
of the ImageNet models (64 channels), the one max pool of the SE-ResNets.

Average pooling runs one thread per output element forward and one per input element backward
(a gather over the windows that hold it, no atomics); both take the window's taps in row-by-row
order, as the NumPy reference does.
"""
from __future__ import annotations

import cupy as cp
import numpy

from sescratch.ops.window import conv_output_size

# The window geometry every pooling kernel takes, and the output cell of forward thread i
_WINDOW = "int64 H, int64 W, int64 OH, int64 OW, int64 KH, int64 KW, int64 SH, int64 SW, int64 PH, int64 PW"
_OUTPUT_CELL = """
    const long long ow = i % OW;
    const long long oh = (i / OW) % OH;
    const long long base = (i / (OW * OH)) * H * W;   // plane i / (OH OW) of x
"""

_max_pool = cp.ElementwiseKernel(
    f"raw T x, {_WINDOW}, T neg_inf",
    "T y, int64 argmax",
    _OUTPUT_CELL + """
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
    "raw T dy, raw int64 argmax, int64 OHW, int64 HW",
    "raw T dx",
    """
    const long long out = i * OHW, in = i * HW;   // thread i: the (n, c) plane i
    for (long long j = 0; j < OHW; ++j) {
        const long long a = argmax[out + j];
        if (a >= 0) dx[in + a] += dy[out + j];
    }
    """,
    "sescratch_max_pool2d_backward",
)

_avg_pool = cp.ElementwiseKernel(
    f"raw T x, raw T divisor, {_WINDOW}",
    "T y",
    _OUTPUT_CELL + """
    T sum = 0;
    for (long long kh = 0; kh < KH; ++kh) {
        const long long h = oh * SH - PH + kh;
        if (h < 0 || h >= H) continue;
        for (long long kw = 0; kw < KW; ++kw) {
            const long long w = ow * SW - PW + kw;
            if (w < 0 || w >= W) continue;
            sum += x[base + h * W + w];
        }
    }
    y = sum / divisor[oh * OW + ow];
    """,
    "sescratch_avg_pool2d",
)

_avg_pool_backward = cp.ElementwiseKernel(
    f"raw T dy, raw T divisor, {_WINDOW}",
    "T dx",
    """
    const long long w = i % W;
    const long long h = (i / W) % H;
    const long long base = (i / (W * H)) * OH * OW;
    T sum = 0;
    for (long long kh = 0; kh < KH; ++kh) {      // input (h, w) is tap (kh, kw) of window
        const long long r = h + PH - kh;          // (oh, ow) when oh*SH = h + PH - kh, ...
        if (r < 0 || r % SH != 0 || r / SH >= OH) continue;
        const long long oh = r / SH;
        for (long long kw = 0; kw < KW; ++kw) {
            const long long c = w + PW - kw;      // ... and ow*SW = w + PW - kw
            if (c < 0 || c % SW != 0 || c / SW >= OW) continue;
            const long long ow = c / SW;
            sum += dy[base + oh * OW + ow] / divisor[oh * OW + ow];
        }
    }
    dx = sum;
    """,
    "sescratch_avg_pool2d_backward",
)


def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False):
    """Max pooling; returns ``(y, argmax)``, argmax int64 flat ``h*W + w`` in the (n, c) plane."""
    x = cp.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH = conv_output_size(H, KH, SH, PH, ceil_mode=ceil_mode)
    OW = conv_output_size(W, KW, SW, PW, ceil_mode=ceil_mode)
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
        cp.ascontiguousarray(dy), cp.ascontiguousarray(argmax, dtype=cp.int64),
        dy.shape[2] * dy.shape[3], H * W, dx, size=N * C,
    )  # N,C,H,W
    return dx


def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, divisor):
    """Average pooling: (N, C, OH, OW), with (OH, OW) = divisor.shape."""
    x = cp.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = divisor.shape
    y = cp.empty((N, C, OH, OW), dtype=x.dtype)
    _avg_pool(x, cp.ascontiguousarray(divisor, dtype=x.dtype), H, W, OH, OW, KH, KW, SH, SW, PH, PW, y)
    return y


def avg_pool2d_backward(dy, divisor, H, W, KH, KW, SH, SW, PH, PW):
    """dx (N, C, H, W) of :func:`avg_pool2d_forward`."""
    N, C, OH, OW = dy.shape
    dx = cp.empty((N, C, H, W), dtype=dy.dtype)
    _avg_pool_backward(cp.ascontiguousarray(dy), cp.ascontiguousarray(divisor, dtype=dy.dtype),
                       H, W, OH, OW, KH, KW, SH, SW, PH, PW, dx)
    return dx
