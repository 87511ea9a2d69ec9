"""conv2d kernels (CuPy, GPU): im2col and col2im as CUDA kernels around cuBLAS batched GEMMs.

Same kernels and semantics as :mod:`sescratch.kernels.numba.conv`:

- ``conv2d_forward(x, w, b, stride, padding, groups) -> y``
- ``conv2d_backward(dy, x, w, stride, padding, groups, has_bias) -> (dx, dw, db)``

``cols`` has shape (C*KH*KW, N*OH*OW), rows ordered (c, kh, kw) so that group g's rows are one
contiguous block; ``cupy.matmul`` on the (G, ., .) views is one strided-batched cuBLAS call.
im2col runs one thread per column entry. col2im runs one thread per *input* pixel, which
gathers the entries that were copied from it (at most KH*KW of them), so no atomics are needed
and the sum runs in the same (kh, kw) order as the NumPy reference. Everything stays on the
device; no host round trip happens inside forward or backward.
"""
from __future__ import annotations

import cupy as cp

from sescratch.ops.window import conv_output_size, kernel_strides

__all__ = ["conv2d_forward", "conv2d_backward"]

_GEOMETRY = ("int32 N, int32 C, int32 H, int32 W, int32 KH, int32 KW, int32 SH, int32 SW, "
             "int32 PH, int32 PW, int32 OH, int32 OW")

_im2col = cp.ElementwiseKernel(
    "raw T x, " + _GEOMETRY,
    "T cols",
    """
    const ptrdiff_t P = (ptrdiff_t)N * OH * OW;       // cols is (C*KH*KW, P), row-major
    const ptrdiff_t row = i / P, col = i % P;
    const int ow = col % OW, oh = (col / OW) % OH;
    const ptrdiff_t n = col / ((ptrdiff_t)OW * OH);
    const int kw = row % KW, kh = (row / KW) % KH, c = row / ((ptrdiff_t)KW * KH);
    const int ih = oh * SH + kh - PH, iw = ow * SW + kw - PW;
    cols = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[((n * C + c) * H + ih) * W + iw] : (T)0;
    """,
    "sescratch_conv2d_im2col",
)

_col2im = cp.ElementwiseKernel(
    "raw T dcols, " + _GEOMETRY,
    "T dx",
    """
    const ptrdiff_t P = (ptrdiff_t)N * OH * OW;
    const int iw = i % W, ih = (i / W) % H, c = (i / ((ptrdiff_t)W * H)) % C;
    const ptrdiff_t n = i / ((ptrdiff_t)W * H * C);
    T s = 0;
    for (int kh = 0; kh < KH; ++kh) {
        const int oh_s = ih + PH - kh;                // = oh * SH when pixel ih feeds row oh
        if (oh_s < 0 || oh_s % SH != 0 || oh_s / SH >= OH) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int ow_s = iw + PW - kw;
            if (ow_s < 0 || ow_s % SW != 0 || ow_s / SW >= OW) continue;
            const ptrdiff_t row = ((ptrdiff_t)c * KH + kh) * KW + kw;
            s += dcols[row * P + (n * OH + oh_s / SH) * OW + ow_s / SW];
        }
    }
    dx = s;
    """,
    "sescratch_conv2d_col2im",
)


def _geometry(x, w, stride, padding):
    (N, C, H, W), (KH, KW), (SH, SW), (PH, PW) = x.shape, w.shape[2:], stride, padding
    OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
    SH, SW = kernel_strides((SH, SW), OH, OW)  # 1 where one output: fits the kernels' int32
    return N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW


def _columns(x, geometry):
    N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW = geometry
    cols = cp.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)  # C*KH*KW,N*OH*OW
    _im2col(x, *geometry, cols)
    return cols


def conv2d_forward(x, w, b, stride, padding, groups):
    """y (N, K, OH, OW) of :func:`sescratch.ops.conv2d_forward`."""
    x, w = cp.ascontiguousarray(x), cp.ascontiguousarray(w)
    geometry = _geometry(x, w, stride, padding)
    N, OH, OW = geometry[0], geometry[-2], geometry[-1]
    K, Cg, KH, KW = w.shape
    G = groups
    cols = _columns(x, geometry).reshape(G, Cg * KH * KW, N * OH * OW)
    y_mat = cp.matmul(w.reshape(G, K // G, Cg * KH * KW), cols)  # G,K/G,N*OH*OW
    y = cp.ascontiguousarray(y_mat.reshape(K, N, OH, OW).transpose(1, 0, 2, 3))  # N,K,OH,OW
    if b is not None:
        y += b.reshape(1, K, 1, 1)
    return y


def conv2d_backward(dy, x, w, stride, padding, groups, has_bias):
    """(dx, dw, db) of :func:`sescratch.ops.conv2d_backward`; db is None without a bias."""
    dy, x, w = cp.ascontiguousarray(dy), cp.ascontiguousarray(x), cp.ascontiguousarray(w)
    geometry = _geometry(x, w, stride, padding)
    N, OH, OW = geometry[0], geometry[-2], geometry[-1]
    K, Cg, KH, KW = w.shape
    G = groups
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None  # K
    dy_mat = cp.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(G, K // G, N * OH * OW)
    cols = _columns(x, geometry).reshape(G, Cg * KH * KW, N * OH * OW)
    dw = cp.matmul(dy_mat, cols.transpose(0, 2, 1)).reshape(w.shape)  # K,C/G,KH,KW
    w_mat = w.reshape(G, K // G, Cg * KH * KW)
    dcols = cp.matmul(w_mat.transpose(0, 2, 1), dy_mat)  # G,C/G*KH*KW,N*OH*OW
    dx = cp.empty_like(x)
    _col2im(dcols, *geometry, dx)
    return dx, dw, db
