"""Squeeze and scale kernels (Numba, CPU): the two ends of an SE block that touch (N, C, H, W).

* squeeze: ``z[n, c] = mean_hw u[n, c]`` (global average pooling, paper Eq. 2) and its backward
  ``du[n, c, h, w] = dz[n, c] / (H*W)``, or that added in place to another gradient (``_into``);
* scale: ``y[n, c] = u[n, c] * s[n, c]`` (F_scale, paper Eq. 4) and its backward
  ``du = dy * s``, ``ds[n, c] = sum_hw dy * u`` — one pass over dy and u for both.

Each (n, c) plane is contiguous; the kernels run in parallel over the N*C planes. Sums over a
plane accumulate in float64 and are rounded to the array dtype once.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from sescratch.kernels.numba.norm import _REASSOCIATE, _planes


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _plane_means(x3, z):
    P, HW = x3.shape
    for p in prange(P):
        s = 0.0
        for i in range(HW):
            s += x3[p, i]
        z[p] = s / HW


@njit(parallel=True, cache=True)
def _fill_planes(values, HW, dx2):
    P = values.shape[0]
    for p in prange(P):
        v = values[p]
        for i in range(HW):
            dx2[p, i] = v


@njit(parallel=True, cache=True)
def _add_to_planes(values, dx2):
    P, HW = dx2.shape
    for p in prange(P):
        v = values[p]
        for i in range(HW):
            dx2[p, i] += v


@njit(parallel=True, cache=True)
def _scale_planes(u2, s1, y2):
    P, HW = u2.shape
    for p in prange(P):
        a = s1[p]
        for i in range(HW):
            y2[p, i] = u2[p, i] * a


@njit(parallel=True, cache=True, fastmath=_REASSOCIATE)
def _scale_backward_planes(dy2, u2, s1, du2, ds1):
    P, HW = u2.shape
    for p in prange(P):
        a = s1[p]
        acc = 0.0
        for i in range(HW):
            g = dy2[p, i]
            du2[p, i] = g * a
            acc += np.float64(g) * u2[p, i]
        ds1[p] = acc


def global_avg_pool_forward(x):
    """``z[n, c] = mean over (h, w) of x[n, c]``; x (N, C, H, W) -> z (N, C), dtype of x."""
    N, C = x.shape[:2]
    z = np.empty(N * C, dtype=np.float64)
    _plane_means(_planes(x), z)
    return z.astype(x.dtype).reshape(N, C)


def global_avg_pool_backward(dz, H, W):
    """``dx[n, c, h, w] = dz[n, c] / (H*W)``; dz (N, C) -> dx (N, C, H, W)."""
    N, C = dz.shape
    dx = np.empty((N, C, H, W), dtype=dz.dtype)
    values = np.ascontiguousarray(dz).reshape(N * C) / dz.dtype.type(H * W)  # N*C
    _fill_planes(values, H * W, dx.reshape(N * C, H * W))
    return dx


def global_avg_pool_backward_into(dz, into):
    """``into[n, c, h, w] += dz[n, c] / (H*W)`` in place (into C-contiguous); returns into."""
    N, C, H, W = into.shape
    values = np.ascontiguousarray(dz).reshape(N * C) / dz.dtype.type(H * W)  # N*C
    _add_to_planes(values, _planes(into))
    return into


def se_scale_forward(u, s):
    """``y = u * s[:, :, None, None]``; u (N, C, H, W), s (N, C) -> y (N, C, H, W)."""
    N, C, H, W = u.shape
    y = np.empty(u.shape, dtype=u.dtype)
    s1 = np.ascontiguousarray(s, dtype=u.dtype).reshape(N * C)
    _scale_planes(_planes(u), s1, y.reshape(N * C, H * W))
    return y


def se_scale_backward(dy, u, s):
    """Backward of :func:`se_scale_forward`: ``du = dy * s[:, :, None, None]``, ``ds = sum_hw(dy * u)``."""
    N, C, H, W = u.shape
    du = np.empty(u.shape, dtype=u.dtype)
    ds = np.empty(N * C, dtype=np.float64)
    s1 = np.ascontiguousarray(s, dtype=u.dtype).reshape(N * C)
    _scale_backward_planes(_planes(dy), _planes(u), s1, du.reshape(N * C, H * W), ds)
    return du, ds.astype(u.dtype).reshape(N, C)
