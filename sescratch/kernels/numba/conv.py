"""conv2d kernels (Numba, CPU): parallel im2col / col2im around BLAS, and a Winograd fast path.

Exported hooks, same semantics as the NumPy code of :mod:`sescratch.ops.conv` (C-contiguous
NCHW arrays in, new arrays out):

- ``conv2d_forward(x, w, b, stride, padding, groups) -> y``
- ``conv2d_backward(dy, x, w, stride, padding, groups, has_bias) -> (dx, dw, db)``

Two strategies:

* 3x3 kernels with stride 1 and one group (every 3x3 conv of a CIFAR ResNet but the two that
  downsample) use Winograd F(2x2, 3x3) (:mod:`sescratch.kernels.numba.winograd`): 2.25x fewer
  multiplications, and its transformed tiles are 4x the input instead of im2col's 9x.
* Everything else uses im2col in the layout BLAS wants: one matrix ``cols`` of shape
  (C*KH*KW, N*OH*OW), rows ordered (c, kh, kw) so that group g's rows are one contiguous block,
  columns ordered (n, oh, ow). ``y_mat = w_mat @ cols`` per group is one (batched) GEMM; small
  parallel kernels move ``y_mat`` (K, N*OH*OW) into NCHW and back. col2im runs in parallel over
  the N*C image planes: each plane is written by one thread only, so no atomics are needed.

The columns are rebuilt in the backward rather than kept from the forward: that costs one more
im2col but keeps the memory of a training step near PyTorch's (the columns are up to 9x the input).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from sescratch.kernels.numba.winograd import winograd_backward, winograd_forward

__all__ = ["conv2d_forward", "conv2d_backward"]


@njit(cache=True)
def _valid_range(kw, SW, PW, W, OW):
    """The ow in [lo, hi) whose input column ow*SW + kw - PW lies inside [0, W)."""
    lo = max(0, (PW - kw + SW - 1) // SW)
    hi = min(OW, (W - 1 + PW - kw) // SW + 1)
    return lo, max(lo, hi)


@njit(parallel=True, cache=True)
def _im2col(x, KH, KW, SH, SW, PH, PW, OH, OW, cols):
    """cols[(c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow] = x_pad[n, c, oh*SH + kh, ow*SW + kw]."""
    N, C, H, W = x.shape
    for task in prange(C * N):
        c, n = task // N, task % N
        for kh in range(KH):
            for kw in range(KW):
                row = (c * KH + kh) * KW + kw
                lo, hi = _valid_range(kw, SW, PW, W, OW)
                for oh in range(OH):
                    col = (n * OH + oh) * OW
                    ih = oh * SH + kh - PH
                    if ih < 0 or ih >= H:
                        cols[row, col:col + OW] = 0
                        continue
                    cols[row, col:col + lo] = 0
                    for ow in range(lo, hi):
                        cols[row, col + ow] = x[n, c, ih, ow * SW + kw - PW]
                    cols[row, col + hi:col + OW] = 0


@njit(parallel=True, cache=True)
def _col2im(dcols, KH, KW, SH, SW, PH, PW, OH, OW, dx):
    """dx[n, c] = sum of the column entries copied from each pixel (the adjoint of _im2col)."""
    N, C, H, W = dx.shape
    for task in prange(N * C):
        n, c = task // C, task % C
        plane = dx[n, c]
        plane[:, :] = 0
        for kh in range(KH):
            for kw in range(KW):
                row = (c * KH + kh) * KW + kw
                lo, hi = _valid_range(kw, SW, PW, W, OW)
                for oh in range(OH):
                    ih = oh * SH + kh - PH
                    if ih < 0 or ih >= H:
                        continue
                    col = (n * OH + oh) * OW
                    for ow in range(lo, hi):
                        plane[ih, ow * SW + kw - PW] += dcols[row, col + ow]


@njit(parallel=True, cache=True)
def _to_images(y_mat, bias, y):
    """y[n, k, p] = y_mat[k, n*P + p] + bias[k]: (K, N*P) -> (N, K, P)."""
    N, K, P = y.shape
    for task in prange(N * K):
        n, k = task // K, task % K
        for p in range(P):
            y[n, k, p] = y_mat[k, n * P + p] + bias[k]


@njit(parallel=True, cache=True)
def _to_channel_major(dy, dy_mat, sums):
    """dy_mat[k, n*P + p] = dy[n, k, p]: (N, K, P) -> (K, N*P); sums[k] = sum of channel k."""
    N, K, P = dy.shape
    for k in prange(K):
        s = 0.0
        for n in range(N):
            for p in range(P):
                v = dy[n, k, p]
                dy_mat[k, n * P + p] = v
                s += v
        sums[k] = s


def _winograd_applies(w, stride, groups):
    return w.shape[2:] == (3, 3) and stride == (1, 1) and groups == 1


def _geometry(x, w, stride, padding):
    (H, W), (KH, KW), (SH, SW), (PH, PW) = x.shape[2:], w.shape[2:], stride, padding
    return (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1


def _columns(x, w, stride, padding, OH, OW):
    (N, C), (KH, KW) = x.shape[:2], w.shape[2:]
    cols = np.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)  # C*KH*KW,N*OH*OW
    _im2col(x, KH, KW, *stride, *padding, OH, OW, cols)
    return cols


def conv2d_forward(x, w, b, stride, padding, groups):
    """y (N, K, OH, OW) of :func:`sescratch.ops.conv2d_forward`."""
    if _winograd_applies(w, stride, groups):
        return winograd_forward(x, w, b, padding)
    N = x.shape[0]
    K, Cg, KH, KW = w.shape
    G = groups
    OH, OW = _geometry(x, w, stride, padding)
    cols = _columns(x, w, stride, padding, OH, OW).reshape(G, Cg * KH * KW, N * OH * OW)
    y_mat = np.matmul(w.reshape(G, K // G, Cg * KH * KW), cols)  # G,K/G,N*OH*OW
    y = np.empty((N, K, OH, OW), dtype=x.dtype)
    bias = np.zeros(K, dtype=x.dtype) if b is None else b
    _to_images(y_mat.reshape(K, N * OH * OW), bias, y.reshape(N, K, OH * OW))
    return y


def conv2d_backward(dy, x, w, stride, padding, groups, has_bias):
    """(dx, dw, db) of :func:`sescratch.ops.conv2d_backward`; db is None without a bias."""
    if _winograd_applies(w, stride, groups):
        return winograd_backward(dy, x, w, padding, has_bias)
    N = x.shape[0]
    K, Cg, KH, KW = w.shape
    G = groups
    OH, OW = _geometry(x, w, stride, padding)
    dy_mat = np.empty((K, N * OH * OW), dtype=dy.dtype)
    sums = np.empty(K, dtype=np.float64)
    _to_channel_major(dy.reshape(N, K, OH * OW), dy_mat, sums)
    dy_mat = dy_mat.reshape(G, K // G, N * OH * OW)  # G,K/G,N*OH*OW
    cols = _columns(x, w, stride, padding, OH, OW).reshape(G, Cg * KH * KW, N * OH * OW)
    dw = np.matmul(dy_mat, cols.transpose(0, 2, 1)).reshape(w.shape)  # K,C/G,KH,KW
    w_mat = w.reshape(G, K // G, Cg * KH * KW)
    dcols = np.matmul(w_mat.transpose(0, 2, 1), dy_mat, out=cols)  # G,C/G*KH*KW,N*OH*OW
    dx = np.empty_like(x)
    _col2im(dcols.reshape(G * Cg * KH * KW, N * OH * OW), KH, KW, *stride, *padding, OH, OW, dx)
    db = sums.astype(dy.dtype) if has_bias else None
    return dx, dw, db
