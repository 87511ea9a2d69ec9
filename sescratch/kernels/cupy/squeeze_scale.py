"""Squeeze and scale kernels (CuPy, GPU): global average pooling and F_scale, with backwards.

Same semantics as :mod:`sescratch.kernels.numba.squeeze_scale`. Plane sums accumulate in
float64 and are rounded to the array dtype once.
"""
from __future__ import annotations

import cupy as cp

_dot_planes = cp.ReductionKernel(
    "T dy, T u",
    "float64 ds",
    "(double)dy * (double)u",
    "a + b",
    "ds = a",
    "0",
    "sescratch_se_scale_dot_planes",
)


def global_avg_pool_forward(x):
    """``z[n, c] = mean over (h, w) of x[n, c]``; (N, C, H, W) -> (N, C)."""
    N, C, H, W = x.shape
    return (x.reshape(N, C, H * W).sum(axis=2, dtype=cp.float64) / (H * W)).astype(x.dtype)


def global_avg_pool_backward(dz, H, W):
    """``dx[n, c, h, w] = dz[n, c] / (H*W)``; (N, C) -> (N, C, H, W)."""
    N, C = dz.shape
    dx = cp.empty((N, C, H, W), dtype=dz.dtype)
    dx[...] = (dz / (H * W)).reshape(N, C, 1, 1)
    return dx


def global_avg_pool_backward_into(dz, into):
    """``into[n, c, h, w] += dz[n, c] / (H*W)`` in place; returns into."""
    N, C, H, W = into.shape
    into += (dz / (H * W)).reshape(N, C, 1, 1)
    return into


def se_scale_forward(u, s):
    """``y = u * s[:, :, None, None]``."""
    return u * s.astype(u.dtype, copy=False)[:, :, None, None]


def se_scale_backward(dy, u, s):
    """``du = dy * s[:, :, None, None]``, ``ds = sum over (h, w) of dy * u``."""
    du = dy * s.astype(u.dtype, copy=False)[:, :, None, None]  # N,C,H,W
    ds = _dot_planes(dy, u, axis=(2, 3)).astype(u.dtype)  # N,C
    return du, ds
