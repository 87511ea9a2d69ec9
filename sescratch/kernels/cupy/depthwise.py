"""Depthwise convolution kernels (CuPy, GPU); see :mod:`sescratch.kernels.numba.depthwise`.

Same kernels and semantics as the Numba family:

- ``depthwise_conv2d_forward(x, w, b, stride, padding) -> y``
- ``depthwise_conv2d_backward(dy, x, w, stride, padding, has_bias) -> (dx, dw, db)``

x (N, C, H, W), w (K, 1, KH, KW) with K = M C (output channel ``k = c M + m`` reads input
channel ``c``). The forward runs one thread per output element over its KH x KW window. dx
runs one thread per *input* pixel, which gathers the outputs that read it (as col2im of
:mod:`sescratch.kernels.cupy.conv`: no atomics). dw runs one thread per (image, output
channel, tap), a dot product over the output plane, then a sum over the images. Everything
stays on the device.
"""
from __future__ import annotations

import cupy as cp

from sescratch.ops.window import conv_output_size, kernel_strides

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_backward"]

_GEOMETRY = ("int32 C, int32 M, int32 H, int32 W, int32 KH, int32 KW, int32 SH, int32 SW, "
             "int32 PH, int32 PW, int32 OH, int32 OW")

_forward = cp.ElementwiseKernel(
    "raw T x, raw T w, raw T b, " + _GEOMETRY,
    "T y",
    """
    const int ow = i % OW, oh = (i / OW) % OH;
    const ptrdiff_t nk = i / ((ptrdiff_t)OW * OH);     // n * K + k
    const int K = C * M, k = nk % K;
    const ptrdiff_t plane = (nk / K * C + k / M) * (ptrdiff_t)H * W;
    T s = b[k];
    for (int kh = 0; kh < KH; ++kh) {
        const int ih = oh * SH - PH + kh;
        if (ih < 0 || ih >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int iw = ow * SW - PW + kw;
            if (iw < 0 || iw >= W) continue;
            s += w[(k * KH + kh) * KW + kw] * x[plane + ih * W + iw];
        }
    }
    y = s;
    """,
    "sescratch_depthwise_conv2d_forward",
)

_input_grad = cp.ElementwiseKernel(
    "raw T dy, raw T w, " + _GEOMETRY,
    "T dx",
    """
    const int iw = i % W, ih = (i / W) % H;
    const ptrdiff_t nc = i / ((ptrdiff_t)W * H);       // n * C + c
    const int c = nc % C;
    const ptrdiff_t n = nc / C;
    T s = 0;
    for (int m = 0; m < M; ++m) {
        const int k = c * M + m;
        const ptrdiff_t plane = (n * C * M + k) * (ptrdiff_t)OH * OW;
        for (int kh = 0; kh < KH; ++kh) {
            const int oh_s = ih + PH - kh;            // = oh * SH when pixel ih feeds row oh
            if (oh_s < 0 || oh_s % SH != 0 || oh_s / SH >= OH) continue;
            for (int kw = 0; kw < KW; ++kw) {
                const int ow_s = iw + PW - kw;
                if (ow_s < 0 || ow_s % SW != 0 || ow_s / SW >= OW) continue;
                s += w[(k * KH + kh) * KW + kw] * dy[plane + (oh_s / SH) * OW + ow_s / SW];
            }
        }
    }
    dx = s;
    """,
    "sescratch_depthwise_conv2d_input_grad",
)

_weight_grad = cp.ElementwiseKernel(
    "raw T dy, raw T x, " + _GEOMETRY,
    "T dw_part",
    """
    const int kw = i % KW, kh = (i / KW) % KH;
    const ptrdiff_t nk = i / ((ptrdiff_t)KW * KH);     // n * K + k
    const int K = C * M, k = nk % K;
    const ptrdiff_t plane = (nk / K * C + k / M) * (ptrdiff_t)H * W;
    const ptrdiff_t out = nk * (ptrdiff_t)OH * OW;
    T s = 0;
    for (int oh = 0; oh < OH; ++oh) {
        const int ih = oh * SH - PH + kh;
        if (ih < 0 || ih >= H) continue;
        for (int ow = 0; ow < OW; ++ow) {
            const int iw = ow * SW - PW + kw;
            if (iw < 0 || iw >= W) continue;
            s += dy[out + oh * OW + ow] * x[plane + ih * W + iw];
        }
    }
    dw_part = s;
    """,
    "sescratch_depthwise_conv2d_weight_grad",
)


def _geometry(x, w, stride, padding):
    (N, C, H, W), (K, _, KH, KW), (SH, SW), (PH, PW) = x.shape, w.shape, stride, padding
    OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
    SH, SW = kernel_strides((SH, SW), OH, OW)  # 1 where one output: fits the kernels' int32
    return N, K, OH, OW, (C, K // C, H, W, KH, KW, SH, SW, PH, PW, OH, OW)


def depthwise_conv2d_forward(x, w, b, stride, padding):
    """Depthwise convolution of NCHW ``x`` with ``w`` (K, 1, KH, KW); returns ``y``."""
    x, w = cp.ascontiguousarray(x), cp.ascontiguousarray(w)
    N, K, OH, OW, geometry = _geometry(x, w, stride, padding)
    y = cp.empty((N, K, OH, OW), dtype=x.dtype)
    bias = cp.zeros(K, dtype=x.dtype) if b is None else cp.ascontiguousarray(b)
    _forward(x, w, bias, *geometry, y)
    return y


def depthwise_conv2d_backward(dy, x, w, stride, padding, has_bias):
    """``(dx, dw, db)`` of :func:`depthwise_conv2d_forward` (``db`` None without a bias)."""
    dy, x, w = cp.ascontiguousarray(dy), cp.ascontiguousarray(x), cp.ascontiguousarray(w)
    N, K, OH, OW, geometry = _geometry(x, w, stride, padding)
    dx = cp.empty(x.shape, dtype=x.dtype)
    _input_grad(dy, w, *geometry, dx)
    dw_part = cp.empty((N, *w.shape), dtype=x.dtype)  # per-image shares of dw
    _weight_grad(dy, x, *geometry, dw_part)
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw_part.sum(axis=0), db
