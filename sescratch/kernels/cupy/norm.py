"""Batch-norm kernels (CuPy, GPU): training-mode forward and backward, eval-mode affine.

Same semantics as :mod:`sescratch.kernels.numba.norm`. Statistics use float64 accumulators and
are reduced in two steps, as the Numba kernels do: over each contiguous (n, c) plane of H*W
values first (N*C thread blocks: a reduction straight over axes (0, 2, 3) would run only C
blocks, too few to fill a GPU for C = 16), then over n. The variance is two-pass (the sum of
squared deviations from the channel mean). Each elementwise pass is one fused kernel that
computes in float64 from float64 per-channel values and rounds once, like the Numba kernels,
so no (N, C, H, W) temporary is made besides the output. Everything stays on the device: no
host round trip.
"""
from __future__ import annotations

import cupy as cp

_PLANE = 2  # the H*W axis of an (N, C, H*W) view

_centered_square_sum = cp.ReductionKernel(
    "T x, float64 mean",
    "float64 q",
    "((double)x - mean) * ((double)x - mean)",
    "a + b",
    "q = a",
    "0",
    "sescratch_bn_centered_square_sum",
)

_dy_centered_sum = cp.ReductionKernel(
    "T dy, T x, float64 mean",
    "float64 t",
    "(double)dy * ((double)x - mean)",
    "a + b",
    "t = a",
    "0",
    "sescratch_bn_dy_centered_sum",
)

_normalize = cp.ElementwiseKernel(
    "T x, float64 mean, float64 scale, float64 shift",
    "T y",
    "y = (T)(((double)x - mean) * scale + shift)",
    "sescratch_bn_normalize",
)

_input_grad = cp.ElementwiseKernel(
    "T dy, T x, float64 mean, float64 inv_std, float64 k, float64 dbeta_mean, "
    "float64 dgamma_mean",
    "T dx",
    "dx = (T)(k * ((double)dy - dbeta_mean - ((double)x - mean) * inv_std * dgamma_mean))",
    "sescratch_bn_input_grad",
)

_affine = cp.ElementwiseKernel(
    "T x, T scale, T shift",
    "T y",
    "y = x * scale + shift",
    "sescratch_bn_eval_affine",
)


def _planes(a):
    """(N, C, H*W) view of a C-contiguous NCHW array."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def _per_channel(v, dtype=cp.float64):
    """(C,) -> (1, C, 1) of ``dtype``, to broadcast against the (N, C, H*W) planes."""
    return v.astype(dtype, copy=False).reshape(1, -1, 1)


def batchnorm2d_forward(x, gamma, beta, eps):
    """Training-mode batch norm; returns ``(y, mean, var)``, float64 batch mean and biased variance (C,)."""
    x3 = _planes(cp.ascontiguousarray(x))  # N,C,HW
    M = x3.shape[0] * x3.shape[2]
    mean64 = x3.sum(axis=_PLANE, dtype=cp.float64).sum(axis=0) / M  # N,C -> C
    var64 = _centered_square_sum(x3, _per_channel(mean64), axis=_PLANE).sum(axis=0) / M  # C
    inv_std64 = 1.0 / cp.sqrt(var64 + eps)  # C
    scale64 = gamma.astype(cp.float64) * inv_std64  # C
    y3 = _normalize(x3, _per_channel(mean64), _per_channel(scale64), _per_channel(beta))  # N,C,HW
    return y3.reshape(x.shape), mean64, var64


def batchnorm2d_backward(dy, x, mean, inv_std, gamma):
    """Backward of :func:`batchnorm2d_forward`; returns ``(dx, dgamma, dbeta)``."""
    dtype = x.dtype
    x3, dy3 = _planes(cp.ascontiguousarray(x)), _planes(cp.ascontiguousarray(dy))  # N,C,HW
    M = x3.shape[0] * x3.shape[2]
    mean64, inv_std64 = mean.astype(cp.float64), inv_std.astype(cp.float64)  # C
    dbeta64 = dy3.sum(axis=_PLANE, dtype=cp.float64).sum(axis=0)  # N,C -> C
    dgamma64 = _dy_centered_sum(dy3, x3, _per_channel(mean64), axis=_PLANE).sum(axis=0) * inv_std64  # C
    k64 = gamma.astype(cp.float64) * inv_std64  # C
    dx3 = _input_grad(
        dy3, x3, _per_channel(mean64), _per_channel(inv_std64), _per_channel(k64),
        _per_channel(dbeta64 / M), _per_channel(dgamma64 / M),
    )  # N,C,HW
    return dx3.reshape(x.shape), dgamma64.astype(dtype), dbeta64.astype(dtype)


def batchnorm2d_eval_forward(x, scale, shift):
    """``y = x * scale[c] + shift[c]`` (batch norm in eval mode)."""
    x3 = _planes(cp.ascontiguousarray(x))  # N,C,HW
    return _affine(x3, _per_channel(scale, x.dtype), _per_channel(shift, x.dtype)).reshape(x.shape)
