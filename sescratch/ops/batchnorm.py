"""Batch normalisation of NCHW feature maps, per channel over (N, H, W).

Notation
--------
N : batch size    C : channels    H, W : height, width    M = N * H * W values per channel
x, y : (N, C, H, W)    gamma, beta, running_mean, running_var, mean, var, inv_std : (C,)

Training mode (statistics of the batch)::

    mean    = (1/M) sum_{n,i,j} x              var = (1/M) sum_{n,i,j} (x - mean)^2   (biased)
    inv_std = 1 / sqrt(var + eps)              xhat = (x - mean) * inv_std
    y       = gamma * xhat + beta
    running_mean <- (1 - momentum) * running_mean + momentum * mean
    running_var  <- (1 - momentum) * running_var  + momentum * var * M / (M - 1)   (unbiased)

Evaluation mode uses ``running_mean`` and ``running_var`` in place of the batch statistics,
so ``y = x * scale + shift`` with ``scale = gamma / sqrt(running_var + eps)``, an affine map.

These are PyTorch's semantics (``torch.nn.functional.batch_norm``). The statistics are
computed in two passes (mean, then the mean of squared deviations) with float64 accumulators,
so float32 inputs with a large mean keep their variance. Long form with all three terms of
``dx``: ``docs/derivations/batchnorm2d.md``.

References
----------
Ioffe & Szegedy, *Batch Normalization*, ICML 2015, Algorithm 1 and Sec. 3. Every convolution
of the SE-ResNets is followed by batch norm (Hu, Shen, Sun, CVPR 2018, Sec. 5).
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple

from sescratch.backend import declare_kernels, get_array_module
from sescratch.ops._checks import check_float_array, check_same_dtype, check_shape

__all__ = [
    "BatchNorm2dCache", "batchnorm2d_forward", "batchnorm2d_backward",
    "batchnorm2d_forward_reference", "batchnorm2d_backward_reference",
    "batchnorm2d_eval_forward_reference", "batchnorm2d_running_update_reference",
]


class BatchNorm2dCache(NamedTuple):
    x: Any  # N,C,H,W
    mean: Any  # C  (batch mean in training mode, running mean in eval mode)
    inv_std: Any  # C
    gamma: Any  # C
    training: bool


def _per_channel(v):
    """View a (C,) vector as (1, C, 1, 1) so that it broadcasts over N, H, W."""
    return v.reshape(1, -1, 1, 1)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_inputs(op, x, gamma, beta, running_mean, running_var, training, momentum, eps):
    check_float_array(op, "x", x, ndim=4)
    C = x.shape[1]
    for name, v in (("gamma", gamma), ("beta", beta)):
        check_float_array(op, name, v, ndim=1)
        check_shape(op, name, v, (C,), "one entry per channel of x")
    check_same_dtype(op, x=x, gamma=gamma, beta=beta)
    for name, v in (("running_mean", running_mean), ("running_var", running_var)):
        if v is None and not training:
            raise ValueError(f"{op}: argument '{name}' is required in eval mode, got None")
        if v is not None:
            check_float_array(op, name, v, ndim=1)
            check_shape(op, name, v, (C,), "one entry per channel of x")
    if not _is_real(momentum) or not 0 <= momentum <= 1:
        raise ValueError(f"{op}: argument 'momentum' must be in [0, 1], got {momentum!r}")
    if not _is_real(eps) or not eps > 0:
        raise ValueError(f"{op}: argument 'eps' must be > 0, got {eps!r}")
    if training and x.shape[0] * x.shape[2] * x.shape[3] < 2:
        raise ValueError(
            f"{op}: argument 'x' needs more than 1 value per channel (N*H*W >= 2) in training "
            f"mode, got shape {tuple(x.shape)}"
        )


def batchnorm2d_forward_reference(x, gamma, beta, eps):
    """Training-mode forward in ``xp``: ``(y, mean, var)``, the batch statistics float64 (C,).

    Two passes (the mean, then the mean of squared deviations) with float64 accumulators.
    """
    xp = get_array_module(x)
    mean = x.mean(axis=(0, 2, 3), dtype=xp.float64)  # C  float64 accumulator
    xc = x - _per_channel(mean.astype(x.dtype))  # N,C,H,W  centred
    var = (xc * xc).mean(axis=(0, 2, 3), dtype=xp.float64)  # C  biased, second pass
    inv_std = 1 / xp.sqrt(var + eps)  # C
    xhat = xc * _per_channel(inv_std.astype(x.dtype))  # N,C,H,W
    y = _per_channel(gamma) * xhat + _per_channel(beta)  # N,C,H,W
    return y, mean, var


def batchnorm2d_running_update_reference(running_mean, running_var, mean, var, momentum, M):
    """In place: the running averages of the batch mean and unbiased variance (either may be None).

    ``var`` is the biased batch variance of ``M`` values per channel, so ``var * M / (M - 1)``
    is the unbiased one that PyTorch averages.
    """
    if running_mean is not None:
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean  # C
    if running_var is not None:
        running_var[...] = (1 - momentum) * running_var + momentum * var * M / (M - 1)  # C


def batchnorm2d_eval_forward_reference(x, scale, shift):
    """Eval-mode forward in ``xp``: the per-channel affine map ``y = x * scale + shift``."""
    return x * _per_channel(scale) + _per_channel(shift)  # N,C,H,W


def batchnorm2d_backward_reference(dy, x, mean, inv_std, gamma):
    """Training-mode backward in ``xp``: ``(dx, dgamma, dbeta)``; see :func:`batchnorm2d_backward`."""
    xp = get_array_module(dy)
    N, C, H, W = x.shape
    M = N * H * W
    xhat = (x - _per_channel(mean)) * _per_channel(inv_std)  # N,C,H,W  recomputed
    dbeta = dy.sum(axis=(0, 2, 3), dtype=xp.float64)  # C
    dgamma = (dy * xhat).sum(axis=(0, 2, 3), dtype=xp.float64)  # C
    g = _per_channel(gamma * inv_std)  # 1,C,1,1  d y / d x along the direct path
    mean_term = _per_channel((dbeta / M).astype(x.dtype))  # 1,C,1,1  term (2)
    var_term = xhat * _per_channel((dgamma / M).astype(x.dtype))  # N,C,H,W  term (3)
    dx = g * (dy - mean_term - var_term)  # N,C,H,W  terms (1) + (2) + (3)
    return dx, dgamma.astype(x.dtype), dbeta.astype(x.dtype)


def _eval_backward(dy, x, mean, inv_std, gamma):
    """Eval-mode backward: the statistics are constants, only the direct term (1) remains."""
    xp = get_array_module(dy)
    xhat = (x - _per_channel(mean)) * _per_channel(inv_std)  # N,C,H,W
    dbeta = dy.sum(axis=(0, 2, 3), dtype=xp.float64)  # C
    dgamma = (dy * xhat).sum(axis=(0, 2, 3), dtype=xp.float64)  # C
    dx = _per_channel(gamma * inv_std) * dy  # N,C,H,W  term (1) only
    return dx, dgamma.astype(x.dtype), dbeta.astype(x.dtype)


# Dispatch: the public ops check their inputs, then run a declared kernel or the reference.
_KERNELS = declare_kernels("batchnorm2d_forward", "batchnorm2d_backward", "batchnorm2d_eval_forward",
                           "batchnorm2d_running_update")


def batchnorm2d_forward(x, gamma, beta, running_mean, running_var, *, training,
                        momentum=0.1, eps=1e-5):
    """Normalise each channel, then scale by ``gamma`` and shift by ``beta``.

    Parameters
    ----------
    x : array, shape (N, C, H, W), float32 or float64
    gamma, beta : arrays, shape (C,), dtype of ``x``
    running_mean, running_var : arrays, shape (C,), floating
        Updated **in place** in training mode (they may be None there: no update); read in
        eval mode.
    training : bool
        Batch statistics (True) or running statistics (False).
    momentum : float in [0, 1]
        Weight of the new batch in the running averages (PyTorch's convention).
    eps : float > 0
        Added to the variance before the square root.

    Returns
    -------
    y : array, shape (N, C, H, W), dtype of ``x``
    cache : BatchNorm2dCache
    """
    op = "batchnorm2d_forward"
    _check_inputs(op, x, gamma, beta, running_mean, running_var, training, momentum, eps)
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    if training:
        gamma, beta = xp.ascontiguousarray(gamma), xp.ascontiguousarray(beta)
        kernel = _KERNELS.get("batchnorm2d_forward", x, gamma, beta)
        forward = batchnorm2d_forward_reference if kernel is None else kernel
        y, mean, var = forward(x, gamma, beta, eps)  # N,C,H,W and C, C (float64)
        return y, _training_cache(x, gamma, mean, var, running_mean, running_var, momentum, eps)
    scale, shift, cache = _eval_affine(x, gamma, beta, running_mean, running_var, eps)  # C, C
    kernel = _KERNELS.get("batchnorm2d_eval_forward", x, scale, shift)
    forward = batchnorm2d_eval_forward_reference if kernel is None else kernel
    return forward(x, scale, shift), cache  # N,C,H,W


def _eval_affine(x, gamma, beta, running_mean, running_var, eps):
    """Eval mode: ``(scale, shift, cache)``: batch norm as ``x * scale + shift`` with the running
    statistics (scale, shift (C,) of x's dtype), and the cache of the backward."""
    xp = get_array_module(x)
    inv_std = 1 / xp.sqrt(running_var.astype(xp.float64) + eps)  # C
    scale = gamma * inv_std.astype(x.dtype)  # C
    shift = beta - running_mean.astype(x.dtype) * scale  # C
    # astype copies: the cache keeps these statistics even after later in-place updates
    return scale, shift, BatchNorm2dCache(x, running_mean.astype(x.dtype), inv_std.astype(x.dtype), gamma, False)


def _training_cache(x, gamma, mean, var, running_mean, running_var, momentum, eps, count=None):
    """After a training-mode forward (batch ``mean``, ``var`` of ``count`` values per channel,
    default those of x): the running averages updated in place, and the cache of the backward."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    inv_std = 1 / xp.sqrt(var + eps)  # C
    kernel = _KERNELS.get("batchnorm2d_running_update", mean, running_mean, running_var)
    update = batchnorm2d_running_update_reference if kernel is None else kernel
    update(running_mean, running_var, mean, var, momentum, N * H * W if count is None else count)  # in place
    # astype copies: the cache keeps this step's statistics even after later in-place updates
    return BatchNorm2dCache(x, mean.astype(x.dtype), inv_std.astype(x.dtype), gamma, True)


def batchnorm2d_backward(dy, cache: BatchNorm2dCache):
    """Gradients of batch norm.

    Parameters
    ----------
    dy : array, shape (N, C, H, W)
    cache : BatchNorm2dCache

    Returns
    -------
    dx : array, shape (N, C, H, W)
    dgamma : array, shape (C,)
    dbeta : array, shape (C,)

    Derivation
    ----------
    ``dbeta = sum dy`` and ``dgamma = sum dy * xhat`` (sums over N, H, W). With
    ``dxhat = gamma * dy``, each ``x_k`` of a channel reaches the loss through ``xhat_k``
    directly, through the mean and through the variance
    (``∂mean/∂x_k = 1/M``, ``∂var/∂x_k = 2 (x_k - mean)/M``)::

        dx_k = inv_std * dxhat_k                                      (1) direct
             - inv_std * (1/M) sum_l dxhat_l                          (2) through mean
             - inv_std * xhat_k * (1/M) sum_l dxhat_l * xhat_l        (3) through var
             = gamma * inv_std * (dy_k - dbeta / M - xhat_k * dgamma / M)

    (The mean's effect inside the variance drops out since ``sum_l (x_l - mean) = 0``.)
    For ``dy = 1`` terms (1) and (2) cancel and (3) is zero, so an all-ones check cannot see
    term (3). Eval mode: mean and var are constants, only term (1) remains.
    """
    x, mean, inv_std, gamma, training = cache
    check_float_array("batchnorm2d_backward", "dy", dy, ndim=4)
    check_shape("batchnorm2d_backward", "dy", dy, x.shape, "the shape of y")
    check_same_dtype("batchnorm2d_backward", dy=dy, x=x)
    dy = get_array_module(dy).ascontiguousarray(dy)
    if not training:
        return _eval_backward(dy, x, mean, inv_std, gamma)
    kernel = _KERNELS.get("batchnorm2d_backward", dy, x)
    backward = batchnorm2d_backward_reference if kernel is None else kernel
    return backward(dy, x, mean, inv_std, gamma)
