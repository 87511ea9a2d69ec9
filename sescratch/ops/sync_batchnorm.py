"""Synchronised batch normalisation: the statistics of the *global* batch, split across processes.

Notation
--------
R : processes (ranks), rank r holds the shard x_r of the global batch
N_r, C, H, W : the shard's shape    M_r = N_r * H * W    M = sum_r M_r values per channel
reduce : callable, ``reduce(v) = sum_r v_r`` for a float64 vector ``v`` (an allreduce; the
         identity for one process), called collectively by every rank in the same order

Forward, training mode (two passes, as :func:`sescratch.ops.batchnorm2d_forward`, each a
float64 allreduce of per-rank partial sums)::

    [S, M]  = reduce([sum_{n,i,j} x_r, M_r])           mean = S / M            pass 1: C + 1 numbers
    Q       = reduce(sum_{n,i,j} (x_r - mean)^2)       var  = Q / M (biased)  pass 2: C numbers
    inv_std = 1 / sqrt(var + eps)     xhat_r = (x_r - mean) * inv_std     y_r = gamma * xhat_r + beta
    running_mean, running_var: as plain batch norm, with the global M (identical on every rank)

Backward (one allreduce of 2C numbers: the two sums plain batch norm needs, now global)::

    [Sdy, Sdyx] = reduce([sum dy_r, sum dy_r * xhat_r])
    dx_r   = gamma * inv_std * (dy_r - Sdy / M - xhat_r * Sdyx / M)
    dbeta  = sum dy_r               dgamma = sum dy_r * xhat_r       (this rank's share)

``dgamma`` and ``dbeta`` are returned **per rank** (the local sums, not ``Sdy``/``Sdyx``):
data-parallel training sums every parameter gradient over the ranks once per step, which turns
the shares into the global sums; returning the global sums would count them R times.

With ``reduce`` the identity (one process) the op computes exactly plain batch norm; with R
shards of one batch it computes plain batch norm of the whole batch, to float64 rounding
(``tests/distributed/test_sync_batchnorm.py``). Two passes instead of one pass of
``(sum x, sum x^2)``: the single-pass variance ``E[x^2] - mean^2`` cancels catastrophically
for channels with a large mean; the price is one more small allreduce per layer.
Derivation: ``docs/derivations/sync_batchnorm.md``.

References
----------
Ioffe & Szegedy, ICML 2015 (batch norm); Peng et al., *MegDet*, CVPR 2018 (cross-GPU batch
norm); PyTorch ``torch.nn.SyncBatchNorm``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from sescratch.backend import get_array_module
from sescratch.ops._checks import check_float_array, check_shape
from sescratch.ops.batchnorm import _check_inputs, _per_channel, batchnorm2d_running_update_reference

__all__ = ["SyncBatchNorm2dCache", "sync_batchnorm2d_forward", "sync_batchnorm2d_backward"]


class SyncBatchNorm2dCache(NamedTuple):
    x: Any  # N_r,C,H,W  this rank's shard
    mean: Any  # C  global batch mean
    inv_std: Any  # C  global
    gamma: Any  # C
    count: float  # M, values per channel in the global batch
    reduce: Callable  # the allreduce the backward calls once


def _reduced(reduce: Callable, v, op: str):
    """``reduce(v)``, checked to keep the shape of ``v`` (a wrong reduce fails here, by name)."""
    out = reduce(v)
    if tuple(out.shape) != tuple(v.shape):
        raise ValueError(f"{op}: reduce returned shape {tuple(out.shape)}, expected {tuple(v.shape)}")
    return out


def sync_batchnorm2d_forward(x, gamma, beta, running_mean, running_var, *, reduce: Callable,
                             momentum=0.1, eps=1e-5):
    """Training-mode batch norm over the global batch whose shard ``x`` this rank holds.

    Parameters
    ----------
    x : array, shape (N_r, C, H, W), float32 or float64 (N_r may be 0 on a rank)
    gamma, beta : arrays, shape (C,), dtype of ``x``
    running_mean, running_var : arrays (C,) or None, updated in place with the global statistics
    reduce : callable ``float64 (K,) -> float64 (K,)``, the sum over ranks (collective)
    momentum, eps : as :func:`sescratch.ops.batchnorm2d_forward`

    Returns
    -------
    y : array, shape (N_r, C, H, W), dtype of ``x``
    cache : SyncBatchNorm2dCache
    """
    op = "sync_batchnorm2d_forward"
    xp = get_array_module(x)
    # plain batch norm's checks, with stand-in running statistics: a shard may hold < 2 values
    C = x.shape[1] if getattr(x, "ndim", 0) == 4 else 0
    stand_in = xp.zeros(C, dtype=xp.float64)  # C
    _check_inputs(op, x, gamma, beta, stand_in if running_mean is None else running_mean,
                  stand_in if running_var is None else running_var, False, momentum, eps)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    first = xp.empty(C + 1, dtype=xp.float64)  # C+1
    first[:C] = x.sum(axis=(0, 2, 3), dtype=xp.float64)  # C  partial sums
    first[C] = N * H * W  # this rank's count
    first = _reduced(reduce, first, op)  # C+1  global
    M = float(first[C])
    if M < 2:
        raise ValueError(f"{op}: the global batch has {M:.0f} value(s) per channel, needs >= 2")
    mean = first[:C] / M  # C  float64
    xc = x - _per_channel(mean.astype(x.dtype))  # N_r,C,H,W  centred on the global mean
    var = _reduced(reduce, (xc * xc).sum(axis=(0, 2, 3), dtype=xp.float64), op) / M  # C  biased
    inv_std = 1 / xp.sqrt(var + eps)  # C
    xhat = xc * _per_channel(inv_std.astype(x.dtype))  # N_r,C,H,W
    y = _per_channel(gamma) * xhat + _per_channel(beta)  # N_r,C,H,W
    batchnorm2d_running_update_reference(running_mean, running_var, mean, var, momentum, M)
    cache = SyncBatchNorm2dCache(x, mean.astype(x.dtype), inv_std.astype(x.dtype), gamma, M, reduce)
    return y, cache


def sync_batchnorm2d_backward(dy, cache: SyncBatchNorm2dCache):
    """Gradients of synchronised batch norm (collective: calls ``cache.reduce`` once).

    Parameters
    ----------
    dy : array, shape (N_r, C, H, W)
    cache : SyncBatchNorm2dCache

    Returns
    -------
    dx : array, shape (N_r, C, H, W)
    dgamma, dbeta : arrays, shape (C,): this rank's shares (sum them over the ranks)

    Derivation
    ----------
    Plain batch norm's (``docs/derivations/batchnorm2d.md``) with every sum over the batch
    split into a sum over ranks of sums over shards: ``x_k`` on rank r reaches the loss through
    its own ``xhat_k`` and through the global mean and variance, which depend on every rank's
    values with ``∂mean/∂x_k = 1/M`` and ``∂var/∂x_k = 2 (x_k - mean)/M``::

        dx_k = gamma * inv_std * (dy_k - (1/M) sum_{r', l} dy_l - xhat_k (1/M) sum_{r', l} dy_l xhat_l)

    The two global sums are the allreduce of the per-rank ``dbeta`` and ``dgamma``.
    """
    op = "sync_batchnorm2d_backward"
    x, mean, inv_std, gamma, M, reduce = cache
    check_float_array(op, "dy", dy, ndim=4)
    check_shape(op, "dy", dy, x.shape, "the shape of y")
    xp = get_array_module(dy)
    C = x.shape[1]
    xhat = (x - _per_channel(mean)) * _per_channel(inv_std)  # N_r,C,H,W  recomputed
    sums = xp.empty(2 * C, dtype=xp.float64)  # 2C
    sums[:C] = dy.sum(axis=(0, 2, 3), dtype=xp.float64)  # C  this rank's dbeta
    sums[C:] = (dy * xhat).sum(axis=(0, 2, 3), dtype=xp.float64)  # C  this rank's dgamma
    dbeta, dgamma = sums[:C].copy(), sums[C:].copy()  # C, C  kept: reduce may work in place
    total = _reduced(reduce, sums, op)  # 2C  global
    g = _per_channel(gamma * inv_std)  # 1,C,1,1
    mean_term = _per_channel((total[:C] / M).astype(x.dtype))  # 1,C,1,1
    var_term = xhat * _per_channel((total[C:] / M).astype(x.dtype))  # N_r,C,H,W
    dx = g * (dy - mean_term - var_term)  # N_r,C,H,W
    return dx, dgamma.astype(x.dtype), dbeta.astype(x.dtype)
