"""Batch-norm kernels (CuPy, GPU): training-mode forward and backward, eval-mode affine.

Same semantics as :mod:`sescratch.kernels.numba.norm`. Statistics are reduced over axes
(0, 2, 3) with float64 accumulators; the variance is two-pass (sum of squared deviations from
the mean), and each elementwise pass is one fused kernel, so no (N, C, H, W) temporary is made
besides the output. Everything stays on the device: no host round trip.
"""
from __future__ import annotations

import cupy as cp

_AXES = (0, 2, 3)

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
    "T x, T mean, T scale, T shift",
    "T y",
    "y = (x - mean) * scale + shift",
    "sescratch_bn_normalize",
)

_input_grad = cp.ElementwiseKernel(
    "T dy, T x, T mean, T inv_std, T k, T dbeta_mean, T dgamma_mean",
    "T dx",
    "dx = k * (dy - dbeta_mean - (x - mean) * inv_std * dgamma_mean)",
    "sescratch_bn_input_grad",
)

_affine = cp.ElementwiseKernel(
    "T x, T scale, T shift",
    "T y",
    "y = x * scale + shift",
    "sescratch_channel_affine",
)


def _per_channel(v, dtype):
    """(C,) -> (1, C, 1, 1) of ``dtype``, to broadcast against NCHW."""
    return v.astype(dtype, copy=False).reshape(1, -1, 1, 1)


def bn_train_forward(x, gamma, beta, eps):
    """Training-mode batch norm; returns ``(y, mean, inv_std)``, mean/inv_std of shape (C,)."""
    dtype = x.dtype
    M = x.size // x.shape[1]
    mean64 = x.sum(axis=_AXES, dtype=cp.float64) / M  # C
    var64 = _centered_square_sum(x, mean64.reshape(1, -1, 1, 1), axis=_AXES) / M  # C
    inv_std64 = 1.0 / cp.sqrt(var64 + eps)  # C
    scale64 = gamma.astype(cp.float64) * inv_std64  # C
    y = _normalize(
        x, _per_channel(mean64, dtype), _per_channel(scale64, dtype), _per_channel(beta, dtype)
    )  # N,C,H,W
    return y, mean64.astype(dtype), inv_std64.astype(dtype)


def bn_train_backward(dy, x, mean, inv_std, gamma):
    """Backward of :func:`bn_train_forward`; returns ``(dx, dgamma, dbeta)``."""
    dtype = x.dtype
    M = x.size // x.shape[1]
    inv_std64 = inv_std.astype(cp.float64)  # C
    dbeta64 = dy.sum(axis=_AXES, dtype=cp.float64)  # C
    dgamma64 = _dy_centered_sum(
        dy, x, mean.astype(cp.float64).reshape(1, -1, 1, 1), axis=_AXES
    ) * inv_std64  # C
    k64 = gamma.astype(cp.float64) * inv_std64  # C
    dx = _input_grad(
        dy, x, _per_channel(mean, dtype), _per_channel(inv_std, dtype), _per_channel(k64, dtype),
        _per_channel(dbeta64 / M, dtype), _per_channel(dgamma64 / M, dtype),
    )  # N,C,H,W
    return dx, dgamma64.astype(dtype), dbeta64.astype(dtype)


def channel_affine(x, scale, shift):
    """``y = x * scale[c] + shift[c]`` (batch norm in eval mode)."""
    return _affine(x, _per_channel(scale, x.dtype), _per_channel(shift, x.dtype))
