"""Batch-norm kernels (Numba, CPU): fused training-mode forward and backward, eval-mode affine map.

Notation: x of shape (N, C, H, W), M = N*H*W values per channel c. Each (n, c) plane of H*W
values is contiguous, so the kernels run in parallel over the N*C planes (``prange``) and
reduce the per-plane partial results over n afterwards.

Statistics are accurate in float32 too: each plane's mean and sum of squared deviations come
from two passes over the plane in float64 (the plane is still in L1 cache for the second), and
the planes of a channel are merged with Chan et al.'s pairwise update, so memory is read once
and no E[x^2] - E[x]^2 cancellation happens.

References: Ioffe & Szegedy (2015), Algorithm 1 and the backward of Section 3; Chan, Golub &
LeVeque (1983) for merging (mean, M2) pairs.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

# Let LLVM reorder sums (several SIMD accumulators instead of one serial chain) and fuse
# multiply-adds. No "nnan"/"ninf": NaN and inf still propagate.
_REASSOCIATE = {"reassoc", "contract"}


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _plane_moments(x3):
    """Per-plane mean and sum of squared deviations, float64, shape (N, C) each."""
    N, C, HW = x3.shape
    mean = np.empty((N, C), dtype=np.float64)
    m2 = np.empty((N, C), dtype=np.float64)
    for p in prange(N * C):
        n, c = p // C, p % C
        s = 0.0
        for i in range(HW):
            s += x3[n, c, i]
        mu = s / HW
        q = 0.0
        for i in range(HW):
            d = x3[n, c, i] - mu
            q += d * d
        mean[n, c] = mu
        m2[n, c] = q
    return mean, m2


@njit(cache=True)
def _merge_moments(mean, m2, HW):
    """Chan's merge of N equal-sized groups per channel -> channel mean and biased variance."""
    N, C = mean.shape
    mu = np.empty(C, dtype=np.float64)
    var = np.empty(C, dtype=np.float64)
    for c in range(C):
        count, m, q = float(HW), mean[0, c], m2[0, c]
        for n in range(1, N):
            delta = mean[n, c] - m
            total = count + HW
            m += delta * HW / total
            q += m2[n, c] + delta * delta * count * HW / total
            count = total
        mu[c] = m
        var[c] = q / count
    return mu, var


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _normalize(x3, mean, scale, shift, y3):
    """y = (x - mean[c]) * scale[c] + shift[c] over every plane; float64 arithmetic, one rounding."""
    N, C, HW = x3.shape
    for p in prange(N * C):
        n, c = p // C, p % C
        m, a, b = mean[c], scale[c], shift[c]
        for i in range(HW):
            y3[n, c, i] = (x3[n, c, i] - m) * a + b


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _backward_sums(dy3, x3, mean):
    """Per-plane sum(dy) and sum(dy * (x - mean[c])), float64, shape (N, C) each."""
    N, C, HW = x3.shape
    sdy = np.empty((N, C), dtype=np.float64)
    sdyx = np.empty((N, C), dtype=np.float64)
    for p in prange(N * C):
        n, c = p // C, p % C
        m = mean[c]
        s = 0.0
        t = 0.0
        for i in range(HW):
            g = np.float64(dy3[n, c, i])
            s += g
            t += g * (x3[n, c, i] - m)
        sdy[n, c] = s
        sdyx[n, c] = t
    return sdy, sdyx


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _backward_dx(dy3, x3, mean, k, dbeta_mean, dgamma_mean, inv_std, dx3):
    """dx = k[c] * (dy - dbeta[c]/M - xhat * dgamma[c]/M), xhat = (x - mean[c]) * inv_std[c].

    The per-channel values are float64, so the arithmetic is too; dx is rounded once.
    """
    N, C, HW = x3.shape
    for p in prange(N * C):
        n, c = p // C, p % C
        m, a, s, q, r = mean[c], k[c], dbeta_mean[c], dgamma_mean[c], inv_std[c]
        for i in range(HW):
            xhat = (x3[n, c, i] - m) * r
            dx3[n, c, i] = a * (dy3[n, c, i] - s - xhat * q)


def _planes(a):
    """C-contiguous (N, C, H*W) view of an NCHW array (copies only if not contiguous)."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0], a.shape[1], -1)


def batchnorm2d_forward(x, gamma, beta, eps):
    """Training-mode batch norm: normalise with the batch statistics of each channel.

    Parameters
    ----------
    x : (N, C, H, W) float32 or float64
    gamma, beta : (C,) scale and shift
    eps : float added to the variance

    Returns
    -------
    y : (N, C, H, W), ``gamma * (x - mean) * inv_std + beta``, ``inv_std = 1 / sqrt(var + eps)``
    mean : (C,) float64 batch mean
    var : (C,) float64 biased batch variance
    """
    dtype = x.dtype
    x3 = _planes(x)
    N, C, HW = x3.shape
    plane_mean, plane_m2 = _plane_moments(x3)  # N,C
    mean64, var64 = _merge_moments(plane_mean, plane_m2, HW)  # C
    inv_std64 = 1.0 / np.sqrt(var64 + eps)  # C
    scale64 = np.asarray(gamma, dtype=np.float64) * inv_std64  # C
    y = np.empty(x.shape, dtype=dtype)
    _normalize(x3, mean64, scale64, np.asarray(beta, dtype=np.float64), y.reshape(N, C, HW))
    return y, mean64, var64


def batchnorm2d_backward(dy, x, mean, inv_std, gamma):
    """Backward of :func:`batchnorm2d_forward`.

    Returns ``(dx, dgamma, dbeta)`` with ``dbeta = sum(dy)``, ``dgamma = sum(dy * xhat)``
    (sums over N, H, W) and ``dx = gamma * inv_std / M * (M*dy - dbeta - xhat * dgamma)``.
    """
    dtype = x.dtype
    x3, dy3 = _planes(x), _planes(dy)
    N, C, HW = x3.shape
    M = N * HW
    mean64 = np.asarray(mean, dtype=np.float64)  # C
    inv_std64 = np.asarray(inv_std, dtype=np.float64)  # C
    sdy, sdyx = _backward_sums(dy3, x3, mean64)  # N,C
    dbeta = sdy.sum(axis=0)  # C
    dgamma = sdyx.sum(axis=0) * inv_std64  # C
    k = np.asarray(gamma, dtype=np.float64) * inv_std64  # C
    dx = np.empty(x.shape, dtype=dtype)
    _backward_dx(dy3, x3, mean64, k, dbeta / M, dgamma / M, inv_std64, dx.reshape(N, C, HW))
    return dx, dgamma.astype(dtype), dbeta.astype(dtype)


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _affine(x3, scale, shift, y3):
    N, C, HW = x3.shape
    for p in prange(N * C):
        n, c = p // C, p % C
        a, b = scale[c], shift[c]
        for i in range(HW):
            y3[n, c, i] = x3[n, c, i] * a + b


def batchnorm2d_eval_forward(x, scale, shift):
    """``y = x * scale[c] + shift[c]`` for every channel c (batch norm in eval mode)."""
    x3 = _planes(x)
    y = np.empty(x.shape, dtype=x.dtype)
    _affine(x3, np.asarray(scale, dtype=x.dtype), np.asarray(shift, dtype=x.dtype), y.reshape(x3.shape))
    return y
