"""Batch norm + (residual) + ReLU kernels (Numba, CPU): :mod:`sescratch.ops.batchnorm_relu` fused.

Same layout and arithmetic as :mod:`sescratch.kernels.numba.norm` (rows of H*W values, one per
(n, c) plane, float64 per-channel constants, statistics merged with Chan's update): the
statistics pass is batch norm's own, then a single pass writes ``y = max(BN(x) (+ r), 0)``, batch
norm's affine map per plane (the pass the SE-ResNet block's fused tail uses too). The
backward folds the ReLU's mask ``y > 0`` into batch norm's two passes instead of writing ``dz``
first; with a residual, the sums pass also writes ``dz`` (the residual's gradient) and the dx pass
reads it back. ``max(z, 0)`` keeps NaN, as the reference's ``maximum`` does.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from sescratch.kernels.numba.norm import _REASSOCIATE, _backward_dx, _merge_moments, _plane_moments, _planes


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _plane_affine_relu(x2, A, B, y2):
    """y = max(A[p] x + B[p], 0) for every plane p (A, B float64, one entry per plane)."""
    P, HW = x2.shape
    for p in prange(P):
        a, b = A[p], B[p]
        for i in range(HW):
            v = x2[p, i] * a + b
            y2[p, i] = 0 if v <= 0 else v  # NaN stays NaN


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _plane_affine_add_relu(x2, A, B, r2, y2):
    """y = max(A[p] x + B[p] + r, 0) for every plane p."""
    P, HW = x2.shape
    for p in prange(P):
        a, b = A[p], B[p]
        for i in range(HW):
            v = x2[p, i] * a + b + r2[p, i]
            y2[p, i] = 0 if v <= 0 else v


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _backward_sums_relu(dy2, y2, x2, mean, dz2, write_dz):
    """Per-plane sum(dz) and sum(dz * (x - mean[c])), dz = dy where y > 0 else 0; float64.
    With ``write_dz``, dz is also stored in dz2 (the residual's gradient)."""
    P, HW = x2.shape
    C = mean.shape[0]
    sdz = np.empty(P, dtype=np.float64)
    sdzx = np.empty(P, dtype=np.float64)
    for p in prange(P):
        m = mean[p % C]
        s = 0.0
        t = 0.0
        if write_dz:
            for i in range(HW):
                g = dy2[p, i] if y2[p, i] > 0 else 0
                dz2[p, i] = g
                s += g
                t += g * (x2[p, i] - m)
        else:
            for i in range(HW):
                g = np.float64(dy2[p, i]) if y2[p, i] > 0 else 0.0
                s += g
                t += g * (x2[p, i] - m)
        sdz[p] = s
        sdzx[p] = t
    return sdz, sdzx


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _backward_dx_relu(dy2, y2, x2, mean, k, dbeta_mean, dgamma_mean, inv_std, dx2):
    """dx = k[c] * (dz - dbeta[c]/M - xhat * dgamma[c]/M), dz = dy where y > 0 else 0."""
    P, HW = x2.shape
    C = mean.shape[0]
    for p in prange(P):
        c = p % C
        m, a, s, q, r = mean[c], k[c], dbeta_mean[c], dgamma_mean[c], inv_std[c]
        for i in range(HW):
            g = dy2[p, i] if y2[p, i] > 0 else 0
            xhat = (x2[p, i] - m) * r
            dx2[p, i] = a * (g - s - xhat * q)


def plane_affine_relu(x, A, B, r):
    """``y = max(A[n, c] x + B[n, c] (+ r), 0)``, A and B float64 (N, C) (r None: no residual).

    Batch norm is the case of one (A, B) per channel (:func:`_per_plane`); the SE-ResNet block's
    fused tail scales each plane by its own excitation (:mod:`.bn_se_add_relu`)."""
    y = np.empty(x.shape, dtype=x.dtype)
    A = np.ascontiguousarray(A, dtype=np.float64).reshape(-1)  # N*C
    B = np.ascontiguousarray(B, dtype=np.float64).reshape(-1)  # N*C
    if r is None:
        _plane_affine_relu(_planes(x), A, B, _planes(y))
    else:
        _plane_affine_add_relu(_planes(x), A, B, _planes(r), _planes(y))
    return y


def _per_plane(v, N):
    """A per-channel (C,) vector repeated for the N*C planes (plane p has channel p % C), float64."""
    return np.tile(np.asarray(v, dtype=np.float64), N)


def batchnorm2d_relu_forward(x, gamma, beta, eps, r):
    """Training mode: ``(y, mean, var)``, ``y = max(BN(x) + r, 0)`` (r None: no residual); the
    statistics float64 (C,) as :func:`sescratch.kernels.numba.norm.batchnorm2d_forward`'s."""
    x2 = _planes(x)  # N*C,HW
    N, C = x.shape[:2]
    plane_mean, plane_m2 = _plane_moments(x2)  # N*C
    mean64, var64 = _merge_moments(plane_mean.reshape(N, C), plane_m2.reshape(N, C), x2.shape[1])  # C
    scale64 = np.asarray(gamma, dtype=np.float64) / np.sqrt(var64 + eps)  # C
    shift64 = np.asarray(beta, dtype=np.float64) - mean64 * scale64  # C: BN(x) = x * scale + shift
    return plane_affine_relu(x, _per_plane(scale64, N), _per_plane(shift64, N), r), mean64, var64


def batchnorm2d_relu_backward(dy, y, x, mean, inv_std, gamma, has_residual):
    """``(dx, dgamma, dbeta, dr)`` of the training-mode forward; dr (= dz) None without a residual."""
    dtype = x.dtype
    x2, y2, dy2 = _planes(x), _planes(y), _planes(dy)  # N*C,HW
    N, C = x.shape[:2]
    M = N * x2.shape[1]
    mean64 = np.asarray(mean, dtype=np.float64)  # C
    inv_std64 = np.asarray(inv_std, dtype=np.float64)  # C
    dz = np.empty(x.shape, dtype=dtype) if has_residual else np.empty((1, 1, 1, 1), dtype=dtype)
    dz2 = _planes(dz)
    sdz, sdzx = _backward_sums_relu(dy2, y2, x2, mean64, dz2, has_residual)  # N*C
    dbeta = sdz.reshape(N, C).sum(axis=0)  # C
    dgamma = sdzx.reshape(N, C).sum(axis=0) * inv_std64  # C
    k = np.asarray(gamma, dtype=np.float64) * inv_std64  # C
    dx = np.empty(x.shape, dtype=dtype)
    if has_residual:  # dz is stored: the dx pass reads it, as batch norm's own backward does
        _backward_dx(dz2, x2, mean64, k, dbeta / M, dgamma / M, inv_std64, _planes(dx))
    else:
        _backward_dx_relu(dy2, y2, x2, mean64, k, dbeta / M, dgamma / M, inv_std64, _planes(dx))
    return dx, dgamma.astype(dtype), dbeta.astype(dtype), dz if has_residual else None


def batchnorm2d_eval_relu_forward(x, scale, shift, r):
    """Eval mode: ``y = max(x * scale[c] + shift[c] (+ r), 0)``."""
    N = x.shape[0]
    return plane_affine_relu(x, _per_plane(scale, N), _per_plane(shift, N), r)
