"""Batch norm followed by a ReLU, with an optional residual added before it: one op, one pass.

Notation
--------
x, r, y : (N, C, H, W)     gamma, beta, running_mean, running_var : (C,)
BN : :func:`sescratch.ops.batchnorm2d_forward` (same arguments, same statistics and running
averages)

Forward::

    z = BN(x) + r          (r: the residual, a block's shortcut; z = BN(x) without one)
    y = max(z, 0)

Every convolution's batch norm in a ResNet is followed by a ReLU, directly (``conv-bn-relu``
inside the branch) or after the shortcut is added (the end of a plain residual unit,
``ReLU(BN(conv(h)) + shortcut)``). Composed from separate ops, the maps make two or three more
trips through memory (BN writes z, the sum reads and writes it, the ReLU reads and writes it);
fused, the Numba kernel writes y directly from x (and r).

Backward (the chain rule through the ReLU, then batch norm's backward)::

    dz = dy * [y > 0]                          (ReLU: y > 0 exactly where z > 0)
    dx, dgamma, dbeta = BN backward of dz      (all three terms of dx, docs/derivations/batchnorm2d.md)
    dr = dz                                    (z = ... + r: the residual receives dz unchanged)

The fused backward computes ``dz`` on the fly inside batch norm's two passes (its sums, then
dx) instead of writing it first; only with a residual is ``dz`` also written, since it is the
residual's gradient. Eval mode composes the eval-mode affine map the same way.

References
----------
Ioffe & Szegedy, *Batch Normalization*, ICML 2015; He et al., *Deep Residual Learning*, CVPR 2016
(Fig. 2: the ReLU after the addition); Hu, Shen, Sun, CVPR 2018, Fig. 3.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from sescratch.backend import declare_kernels, get_array_module
from sescratch.ops._checks import check_float_array, check_same_dtype, check_shape
from sescratch.ops.activation import relu_backward_reference, relu_forward_reference
from sescratch.ops.batchnorm import (
    BatchNorm2dCache,
    _check_inputs,
    _eval_affine,
    _eval_backward,
    _training_cache,
    batchnorm2d_backward_reference,
    batchnorm2d_eval_forward_reference,
    batchnorm2d_forward_reference,
)

__all__ = [
    "BatchNorm2dReluCache", "batchnorm2d_relu_forward", "batchnorm2d_relu_backward",
    "batchnorm2d_relu_forward_reference", "batchnorm2d_relu_backward_reference",
    "batchnorm2d_eval_relu_forward_reference",
]


class BatchNorm2dReluCache(NamedTuple):
    bn: BatchNorm2dCache  # what batch norm's backward needs (x, statistics, gamma, mode)
    y: Any  # N,C,H,W  the output: its sign is the ReLU's mask
    has_residual: bool


def _add_relu_reference(z, r):
    """``max(z + r, 0)`` (``max(z, 0)`` for r None) in ``xp``."""
    return relu_forward_reference(z if r is None else z + r)  # N,C,H,W


def batchnorm2d_relu_forward_reference(x, gamma, beta, eps, r):
    """Training mode in ``xp``: ``(y, mean, var)``, ``y = max(BN(x) + r, 0)`` with batch
    norm's batch statistics (float64 (C,), as :func:`sescratch.ops.batchnorm2d_forward_reference`)."""
    z, mean, var = batchnorm2d_forward_reference(x, gamma, beta, eps)  # N,C,H,W and C, C
    return _add_relu_reference(z, r), mean, var


def batchnorm2d_eval_relu_forward_reference(x, scale, shift, r):
    """Eval mode in ``xp``: ``y = max(x * scale + shift (+ r), 0)``, scale and shift per channel."""
    return _add_relu_reference(batchnorm2d_eval_forward_reference(x, scale, shift), r)  # N,C,H,W


def batchnorm2d_relu_backward_reference(dy, y, x, mean, inv_std, gamma, has_residual):
    """Training-mode backward in ``xp``: ``(dx, dgamma, dbeta, dr)``, dr None without a residual."""
    dz = relu_backward_reference(dy, y)  # N,C,H,W  through the ReLU
    dx, dgamma, dbeta = batchnorm2d_backward_reference(dz, x, mean, inv_std, gamma)
    return dx, dgamma, dbeta, dz if has_residual else None


def _check_residual(op, x, residual):
    if residual is not None:
        check_float_array(op, "residual", residual, ndim=4)
        check_shape(op, "residual", residual, x.shape, "the shape of x (it is added to BN(x))")
        check_same_dtype(op, x=x, residual=residual)


# Dispatch: the public ops check their inputs, then run a declared kernel or the reference.
_KERNELS = declare_kernels("batchnorm2d_relu_forward", "batchnorm2d_relu_backward",
                           "batchnorm2d_eval_relu_forward")


def batchnorm2d_relu_forward(x, gamma, beta, running_mean, running_var, *, training, momentum=0.1,
                             eps=1e-5, residual=None):
    """``y = ReLU(BN(x) + residual)`` (``ReLU(BN(x))`` without a residual) in one op.

    Parameters
    ----------
    x, gamma, beta, running_mean, running_var, training, momentum, eps
        As :func:`sescratch.ops.batchnorm2d_forward` (the running averages are updated in place
        in training mode).
    residual : array, shape (N, C, H, W), dtype of ``x``, or None
        Added to the normalised maps before the ReLU.

    Returns
    -------
    y : array, shape (N, C, H, W), dtype of ``x``
    cache : BatchNorm2dReluCache
    """
    op = "batchnorm2d_relu_forward"
    _check_inputs(op, x, gamma, beta, running_mean, running_var, training, momentum, eps)
    _check_residual(op, x, residual)
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    r = None if residual is None else xp.ascontiguousarray(residual)
    if training:
        gamma, beta = xp.ascontiguousarray(gamma), xp.ascontiguousarray(beta)
        kernel = _KERNELS.get("batchnorm2d_relu_forward", x, gamma, beta)
        forward = batchnorm2d_relu_forward_reference if kernel is None else kernel
        y, mean, var = forward(x, gamma, beta, eps, r)  # N,C,H,W and C, C (float64)
        bn_cache = _training_cache(x, gamma, mean, var, running_mean, running_var, momentum, eps)
    else:
        scale, shift, bn_cache = _eval_affine(x, gamma, beta, running_mean, running_var, eps)  # C, C
        kernel = _KERNELS.get("batchnorm2d_eval_relu_forward", x, scale, shift)
        forward = batchnorm2d_eval_relu_forward_reference if kernel is None else kernel
        y = forward(x, scale, shift, r)  # N,C,H,W
    return y, BatchNorm2dReluCache(bn_cache, y, r is not None)


def batchnorm2d_relu_backward(dy, cache: BatchNorm2dReluCache):
    """Gradients of :func:`batchnorm2d_relu_forward`.

    Parameters
    ----------
    dy : array, shape (N, C, H, W)
    cache : BatchNorm2dReluCache

    Returns
    -------
    dx : array, shape (N, C, H, W)
    dgamma, dbeta : arrays, shape (C,)
    dresidual : array, shape (N, C, H, W), or None when the forward had no residual
        ``dy * [y > 0]``, the gradient of the sum before the ReLU.

    Derivation
    ----------
    ``dz = dy * [y > 0]`` through the ReLU; batch norm's backward of ``dz`` (its derivation:
    :func:`sescratch.ops.batchnorm2d_backward`) gives dx, dgamma and dbeta; the residual entered
    the sum with coefficient 1, so ``dresidual = dz``.
    """
    bn, y, has_residual = cache
    check_float_array("batchnorm2d_relu_backward", "dy", dy, ndim=4)
    check_shape("batchnorm2d_relu_backward", "dy", dy, y.shape, "the shape of y")
    check_same_dtype("batchnorm2d_relu_backward", dy=dy, y=y)
    dy = get_array_module(dy).ascontiguousarray(dy)
    if not bn.training:
        dz = relu_backward_reference(dy, y)  # N,C,H,W
        return (*_eval_backward(dz, bn.x, bn.mean, bn.inv_std, bn.gamma), dz if has_residual else None)
    kernel = _KERNELS.get("batchnorm2d_relu_backward", dy, y)
    backward = batchnorm2d_relu_backward_reference if kernel is None else kernel
    return backward(dy, y, bn.x, bn.mean, bn.inv_std, bn.gamma, has_residual)
