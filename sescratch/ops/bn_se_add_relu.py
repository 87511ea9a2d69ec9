"""The tail of an SE-ResNet block as one op: batch norm, the SE block, the residual sum and the ReLU.

Notation
--------
x, r, y : (N, C, H, W)   the branch's last conv output (batch norm's input), the shortcut, the output
P = H * W values per plane, M = N * P per channel;  (n, c) a plane, pm[n, c] its mean of x
gamma, beta, mean, inv_std : (C,)   batch norm (batch statistics in training, running in eval)
w1 (C_r, C), b1 (C_r,), w2 (C, C_r), b2 (C,), gate : the SE block's excitation (sescratch.ops.se_block)

Forward: the composition ``y = ReLU(SE(BN(x)) + r)`` of the standard SE-ResNet block (paper
Fig. 3), rewritten so that the maps are read twice and written once::

    u      = BN(x)              = a_c (x - mean_c) + beta_c,   a_c = gamma_c inv_std_c
    z      = F_sq(u)            = a_c (pm[n, c] - mean_c) + beta_c          (N, C)  squeeze
    s      = gate(fc2(ReLU(fc1(z))))                                        (N, C)  excitation
    y      = ReLU(s ⊙ u + r)    = max(A[n, c] x + B[n, c] + r, 0)                   scale, sum, ReLU
             with A = s a_c and B = s (beta_c - a_c mean_c)

The squeeze of a batch-normalised map is an affine function of its plane means, which the
statistics pass computes anyway, so it costs no pass over the maps; nor do the scale and the
sum, folded into batch norm's per-channel affine map as a per-plane one. ``u`` is never stored.

Backward, the same lines bottom-up::

    dq     = dy [y > 0]                                  ReLU; dr = dq (the shortcut's gradient)
    S1, S2 = sum_plane dq,  sum_plane dq (x - mean_c)    (N, C), one pass that also writes dq
    ds     = sum_plane dq u = a_c S2 + beta_c S1          (N, C)  the scale's gradient w.r.t. s
    dz, dw1, db1, dw2, db2 = excitation backward of ds    (N, C)  small matrices
    du     = s ⊙ dq + dz / P                             u fans out into the scale and the squeeze
    dbeta  = sum_n (s S1 + dz)                           = sum over (n, i, j) of du
    dgamma = inv_std_c sum_n (s S2 + dz (pm - mean_c))   = sum of du * xhat
    dx     = a_c (du - dbeta / M - xhat dgamma / M)      batch norm's three terms (training);
             a_c du in eval mode                          one pass: reads dq and x, writes dx

``tests/ops/test_bn_se_add_relu.py`` checks it against the composition of batch norm, the SE
block and add + ReLU, against finite differences and against PyTorch. Long form:
``docs/derivations/bn_se_add_relu.md``.

References
----------
Hu, Shen, Sun, *Squeeze-and-Excitation Networks*, CVPR 2018, Eqs. 2-4 and Fig. 3; Ioffe &
Szegedy, ICML 2015 (batch norm's backward).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from sescratch.backend import declare_kernels, get_array_module
from sescratch.ops._checks import check_float_array, check_same_dtype, check_shape
from sescratch.ops.activation import relu_backward, relu_forward
from sescratch.ops.batchnorm import _check_inputs as _check_bn_inputs
from sescratch.ops.batchnorm import _training_cache
from sescratch.ops.linear import linear_backward, linear_forward
from sescratch.ops.se_block import GATES
from sescratch.ops.se_block import _check_inputs as _check_se_inputs
from sescratch.ops.sync_batchnorm import _reduced

__all__ = [
    "BnSeAddReluCache", "bn_se_add_relu_forward", "bn_se_add_relu_backward", "bn_se_add_relu_se_input",
    "batchnorm2d_plane_statistics_reference", "plane_affine_add_relu_reference",
    "relu_plane_sums_reference", "batchnorm2d_scaled_backward_dx_reference",
]


class BnSeAddReluCache(NamedTuple):
    x: Any  # N,C,H,W  batch norm's input
    y: Any  # N,C,H,W  the output (its sign: the ReLU's mask)
    plane_mean: Any  # N,C  float64
    s: Any  # N,C  the excitation (kept for analysis too)
    mean: Any  # C  float64  (batch mean in training, running mean in eval)
    inv_std: Any  # C  float64
    gamma: Any  # C
    beta: Any  # C
    training: bool
    count: float  # M, values per channel of the (global) batch
    reduce: Any  # None, or the sum over ranks of synchronised batch norm
    gate: str
    fc1_cache: Any
    relu_cache: Any
    fc2_cache: Any
    gate_cache: Any


def batchnorm2d_plane_statistics_reference(x):
    """``(pm, m2)`` in ``xp``: each plane's mean and sum of squared deviations from it, float64 (N, C)."""
    xp = get_array_module(x)
    x64 = x.astype(xp.float64)  # N,C,H,W  float64 arithmetic throughout, as the kernels'
    pm = x64.mean(axis=(2, 3))  # N,C
    d = x64 - pm[:, :, None, None]  # N,C,H,W  second pass, centred on the plane
    return pm, (d * d).sum(axis=(2, 3))  # N,C and N,C


def _channel_statistics(xp, pm, m2, P, reduce, op):
    """``(mean, var, M)`` of each channel from the planes' (pm, m2), merged over the batch (and the
    ranks, with ``reduce``) exactly: ``M var = sum_p [m2_p + P (pm_p - mean)^2]``, no cancellation."""
    N, C = pm.shape
    first = xp.empty(C + 1, dtype=xp.float64)  # C+1
    first[:C] = pm.sum(axis=0) * P  # C  sum of x
    first[C] = N * P  # values per channel
    first = first if reduce is None else _reduced(reduce, first, op)
    M = float(first[C])
    if M < 2:
        raise ValueError(f"{op}: the batch has {M:.0f} value(s) per channel, needs >= 2 in training mode")
    mean = first[:C] / M  # C
    q = (m2 + P * (pm - mean) ** 2).sum(axis=0)  # C  sum of squared deviations from the batch mean
    q = q if reduce is None else _reduced(reduce, q, op)
    return mean, q / M, M


def plane_affine_add_relu_reference(x, A, B, r):
    """``y = max(A[n, c] x + B[n, c] + r, 0)`` in ``xp`` (A, B float64 (N, C); y of x's dtype)."""
    xp = get_array_module(x)
    z = A[:, :, None, None] * x + B[:, :, None, None] + r  # N,C,H,W  float64
    return xp.maximum(z, 0).astype(x.dtype)


def relu_plane_sums_reference(dy, y, x, mean):
    """``(dq, S1, S2)`` in ``xp``: dq = dy where y > 0 else 0, S1 = sum_plane dq, S2 = sum_plane
    dq (x - mean_c), the sums float64 (N, C)."""
    xp = get_array_module(dy)
    dq = xp.where(y > 0, dy, dy.dtype.type(0))  # N,C,H,W
    dq64 = dq.astype(xp.float64)  # N,C,H,W  exact sums of the values, as the kernels'
    S1 = dq64.sum(axis=(2, 3))  # N,C
    S2 = (dq64 * (x.astype(xp.float64) - mean[None, :, None, None])).sum(axis=(2, 3))  # N,C
    return dq, S1, S2


def batchnorm2d_scaled_backward_dx_reference(dq, x, mean, k, s, c, dbeta_mean, dgamma_mean, inv_std):
    """``dx = k_c (s[n, c] dq + c[n, c] - dbeta_mean_c - xhat dgamma_mean_c)`` in ``xp``,
    ``xhat = (x - mean_c) inv_std_c``; every vector float64, dx of dq's dtype."""
    ch = lambda a: a[None, :, None, None]  # noqa: E731  (C,) -> 1,C,1,1
    pl = lambda a: a[:, :, None, None]  # noqa: E731  (N, C) -> N,C,1,1
    xhat = (x - ch(mean)) * ch(inv_std)  # N,C,H,W  float64
    return (ch(k) * (pl(s) * dq + pl(c) - ch(dbeta_mean) - xhat * ch(dgamma_mean))).astype(dq.dtype)


# Dispatch: the public ops check their inputs, then run a declared kernel or the reference.
_KERNELS = declare_kernels("batchnorm2d_plane_statistics", "plane_affine_add_relu", "relu_plane_sums",
                           "batchnorm2d_scaled_backward_dx")


def _run(name, reference, *args):
    kernel = _KERNELS.get(name, *args[:1])
    return (reference if kernel is None else kernel)(*args)


def bn_se_add_relu_forward(x, gamma, beta, running_mean, running_var, w1, b1, w2, b2, residual, *,
                           training, momentum=0.1, eps=1e-5, gate="sigmoid", reduce=None):
    """``y = ReLU(SE(BN(x)) + residual)``, the SE block's squeeze average pooling.

    Parameters
    ----------
    x : array (N, C, H, W), float32 or float64; gamma, beta, running_mean, running_var, training,
        momentum, eps as :func:`sescratch.ops.batchnorm2d_forward` (running averages updated in place)
    w1, b1, w2, b2, gate : as :func:`sescratch.ops.se_block_forward` (biases may be None)
    residual : array (N, C, H, W), dtype of x
    reduce : callable or None
        Training mode: synchronised batch norm's sum over ranks
        (:func:`sescratch.ops.sync_batchnorm2d_forward`); the statistics are then the global
        batch's, and the backward calls ``reduce`` once. None: this batch alone.

    Returns
    -------
    y : array (N, C, H, W);  cache : BnSeAddReluCache (``cache.s`` the excitation, (N, C))
    """
    op = "bn_se_add_relu_forward"
    shard = training and reduce is not None  # a rank's shard may hold < 2 values: checked globally
    _check_bn_inputs(op, x, gamma, beta, running_mean, running_var, training and not shard, momentum, eps)
    _check_se_inputs(op, x, w1, b1, w2, b2, "avg", gate)
    check_float_array(op, "residual", residual, ndim=4)
    check_shape(op, "residual", residual, x.shape, "the shape of x (it is added to the SE output)")
    check_same_dtype(op, x=x, residual=residual)
    xp = get_array_module(x)
    x, r = xp.ascontiguousarray(x), xp.ascontiguousarray(residual)
    N, C, H, W = x.shape
    pm, m2 = _run("batchnorm2d_plane_statistics", batchnorm2d_plane_statistics_reference, x)  # N,C each
    if training:  # the batch's statistics, and the running averages updated as batch norm's op does
        mean, var, M = _channel_statistics(xp, pm, m2, H * W, reduce, op)  # C, C float64
        _training_cache(x, gamma, mean, var, running_mean, running_var, momentum, eps, count=M)  # (its BN cache unused)
    else:
        mean, var, M = running_mean.astype(xp.float64), running_var.astype(xp.float64), N * H * W  # C
    inv_std = 1 / xp.sqrt(var + eps)  # C  float64
    a = gamma.astype(xp.float64) * inv_std  # C  BN's scale
    shift = beta.astype(xp.float64) - a * mean  # C  BN's shift: u = a x + shift
    z = (a * pm + shift).astype(x.dtype)  # N,C  squeeze of u, from the plane means
    h, fc1_cache = linear_forward(z, w1, b1)  # N,C_r  reduction
    hr, relu_cache = relu_forward(h)  # N,C_r
    e, fc2_cache = linear_forward(hr, w2, b2)  # N,C  increase
    s, gate_cache = GATES[gate][0](e)  # N,C  the excitation
    s64 = s.astype(xp.float64)
    y = _run("plane_affine_add_relu", plane_affine_add_relu_reference, x, s64 * a, s64 * shift, r)  # N,C,H,W
    cache = BnSeAddReluCache(x, y, pm, s, mean, inv_std, gamma, beta, training, M, reduce if training else None,
                             gate, fc1_cache, relu_cache, fc2_cache, gate_cache)
    return y, cache


def bn_se_add_relu_se_input(cache: BnSeAddReluCache):
    """``u = BN(x)`` of the forward that made ``cache``, the maps the SE block recalibrated: the op
    never stores them, so this is one more pass, for inspection (``SEBlock.keep_input``)."""
    xp = get_array_module(cache.x)
    ch = lambda a: a[None, :, None, None]  # noqa: E731  (C,) -> 1,C,1,1
    a = cache.gamma.astype(xp.float64) * cache.inv_std  # C
    return (ch(a) * (cache.x - ch(cache.mean)) + ch(cache.beta.astype(xp.float64))).astype(cache.x.dtype)  # N,C,H,W


def bn_se_add_relu_backward(dy, cache: BnSeAddReluCache):
    """Gradients of :func:`bn_se_add_relu_forward`: ``(dx, dgamma, dbeta, dw1, db1, dw2, db2,
    dresidual)`` (db1, db2 None without the biases). Derivation: the module docstring."""
    check_float_array("bn_se_add_relu_backward", "dy", dy, ndim=4)
    check_shape("bn_se_add_relu_backward", "dy", dy, cache.y.shape, "the shape of y")
    xp = get_array_module(dy)
    dy = xp.ascontiguousarray(dy)
    x, pm, s, mean, inv_std, M = cache.x, cache.plane_mean, cache.s, cache.mean, cache.inv_std, cache.count
    N, C, H, W = x.shape
    dq, S1, S2 = _run("relu_plane_sums", relu_plane_sums_reference, dy, cache.y, x, mean)  # N,C,H,W and N,C
    a = cache.gamma.astype(xp.float64) * inv_std  # C
    ds = (a * S2 + cache.beta.astype(xp.float64) * S1).astype(dy.dtype)  # N,C  sum of dq u per plane
    de = GATES[cache.gate][1](ds, cache.gate_cache)  # N,C
    dhr, dw2, db2 = linear_backward(de, cache.fc2_cache)  # N,C_r
    dh = relu_backward(dhr, cache.relu_cache)  # N,C_r
    dz, dw1, db1 = linear_backward(dh, cache.fc1_cache)  # N,C  the squeeze's gradient
    s64, dz64 = s.astype(xp.float64), dz.astype(xp.float64)  # N,C
    dbeta = (s64 * S1 + dz64).sum(axis=0)  # C  (this rank's share with reduce)
    dgamma = inv_std * (s64 * S2 + dz64 * (pm - mean)).sum(axis=0)  # C
    if not cache.training:  # eval: the statistics are constants, only the direct term remains
        dbeta_mean = dgamma_mean = xp.zeros_like(dbeta)  # C
    elif cache.reduce is None:
        dbeta_mean, dgamma_mean = dbeta / M, dgamma / M  # C
    else:  # sync BN: the sums of the global batch, one allreduce of 2C numbers
        total = _reduced(cache.reduce, xp.concatenate([dbeta, dgamma]), "bn_se_add_relu_backward")
        dbeta_mean, dgamma_mean = total[:C] / M, total[C:] / M  # C
    dx = _run("batchnorm2d_scaled_backward_dx", batchnorm2d_scaled_backward_dx_reference,
              dq, x, mean, a, s64, dz64 / (H * W), dbeta_mean, dgamma_mean, inv_std)  # N,C,H,W
    dtype = x.dtype
    return dx, dgamma.astype(dtype), dbeta.astype(dtype), dw1, db1, dw2, db2, dq
