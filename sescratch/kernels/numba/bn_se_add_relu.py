"""The passes of :mod:`sescratch.ops.bn_se_add_relu` (Numba, CPU): an SE-ResNet block's tail.

Same layout as :mod:`sescratch.kernels.numba.norm`: each (n, c) plane a row of H*W values,
rows in parallel (``prange``), per-plane and per-channel constants float64, one rounding per
output value. The statistics, the per-plane affine map + residual + ReLU and the masked sums are
the fused batch-norm kernels' (:mod:`.norm_relu`); the dx pass here takes per-plane constants
where batch norm's takes per-channel ones. The op merges the plane statistics into the channels'
(and over ranks, for synchronised batch norm).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from sescratch.kernels.numba.norm import _REASSOCIATE, _plane_moments, _planes
from sescratch.kernels.numba.norm_relu import _backward_sums_relu, plane_affine_relu


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _scaled_dx(dq2, x2, mean, k, s, c, dbeta_mean, dgamma_mean, inv_std, dx2):
    """dx = k[ch] (s[p] dq + c[p] - dbeta_mean[ch] - (x - mean[ch]) inv_std[ch] dgamma_mean[ch])."""
    P, HW = x2.shape
    C = mean.shape[0]
    for p in prange(P):
        ch = p % C
        a = k[ch] * s[p]  # the coefficient of dq
        b = k[ch] * (c[p] - dbeta_mean[ch])  # the plane's constant
        q = k[ch] * dgamma_mean[ch] * inv_std[ch]  # the coefficient of (x - mean)
        m = mean[ch]
        for i in range(HW):
            dx2[p, i] = a * dq2[p, i] + b - q * (x2[p, i] - m)


def batchnorm2d_plane_statistics(x):
    """``(pm, m2)``: each plane's mean and sum of squared deviations from it, float64 (N, C)."""
    N, C = x.shape[:2]
    plane_mean, plane_m2 = _plane_moments(_planes(x))  # N*C each
    return plane_mean.reshape(N, C), plane_m2.reshape(N, C)


def plane_affine_add_relu(x, A, B, r):
    """``y = max(A[n, c] x + B[n, c] + r, 0)``, A and B float64 (N, C)."""
    return plane_affine_relu(x, A, B, r)


def relu_plane_sums(dy, y, x, mean):
    """``(dq, S1, S2)``: dq = dy where y > 0 else 0, S1 = sum_plane dq, S2 = sum_plane dq (x - mean_c)."""
    N, C = x.shape[:2]
    dq = np.empty(x.shape, dtype=dy.dtype)
    S1, S2 = _backward_sums_relu(_planes(dy), _planes(y), _planes(x), np.asarray(mean, dtype=np.float64),
                                 _planes(dq), True)  # N*C each
    return dq, S1.reshape(N, C), S2.reshape(N, C)


def batchnorm2d_scaled_backward_dx(dq, x, mean, k, s, c, dbeta_mean, dgamma_mean, inv_std):
    """``dx = k_c (s[n, c] dq + c[n, c] - dbeta_mean_c - xhat dgamma_mean_c)``."""
    dx = np.empty(x.shape, dtype=dq.dtype)
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64).reshape(-1)  # noqa: E731
    _scaled_dx(_planes(dq), _planes(x), f64(mean), f64(k), f64(s), f64(c), f64(dbeta_mean),
               f64(dgamma_mean), f64(inv_std), _planes(dx))
    return dx
