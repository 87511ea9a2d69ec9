"""The Squeeze-and-Excitation block as one function pair (paper Sec. 3, Eqs. 2-4).

Notation
--------
N : batch size    C : channels    H, W : height, width    C_r : bottleneck width (C / r)
u : (N, C, H, W) the features to recalibrate    y : (N, C, H, W) the recalibrated features
w1 : (C_r, C), b1 : (C_r,)  dimensionality reduction ``W_1``    (biases may be None)
w2 : (C, C_r), b2 : (C,)    dimensionality increase ``W_2``

Forward, one line per equation::

    z = F_sq(u)                 (N, C)        squeeze, Eq. 2: global average (or max) pooling
    h = z w1^T + b1             (N, C_r)      excitation, Eq. 3: reduction
    a = δ(h)                    (N, C_r)      ReLU
    e = a w2^T + b2             (N, C)        increase
    s = σ(e)                    (N, C)        gate (sigmoid; tanh, ReLU, hard sigmoid: ablation)
    y = F_scale(u, s) = s ⊙ u   (N, C, H, W)  scale, Eq. 4

The backward reads the same lines bottom-up, each the backward of the op that made it. ``u``
feeds two places, the squeeze and the scale, so its gradient is the sum of both paths:
``du = du_scale + du_squeeze`` (a backward that forgets the squeeze path fails the gradient
check), the squeeze's backward adding its share into the fresh ``du_scale`` (``into=``). Extra parameters per block (Eq. 5, biases aside): ``2 C^2 / r``.
Long form: ``docs/derivations/se_block.md``.

References
----------
Hu, Shen, Sun, *Squeeze-and-Excitation Networks*, CVPR 2018, Eqs. 2-5; TPAMI version, the
squeeze (average vs. max) and excitation (sigmoid vs. tanh vs. ReLU) ablations.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from sescratch.ops._checks import check_float_array, check_planes_nonempty, check_same_dtype, check_shape
from sescratch.ops.activation import (
    hard_sigmoid_backward,
    hard_sigmoid_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from sescratch.ops.linear import linear_backward, linear_forward
from sescratch.ops.se_scale import se_scale_backward, se_scale_forward
from sescratch.ops.squeeze import (
    global_avg_pool_backward,
    global_avg_pool_forward,
    global_max_pool_backward,
    global_max_pool_forward,
)

__all__ = ["SEBlockCache", "SQUEEZES", "GATES", "se_block_forward", "se_block_backward"]

# name -> (forward, backward); the functions are looked up here at every call
SQUEEZES = {
    "avg": (global_avg_pool_forward, global_avg_pool_backward),
    "max": (global_max_pool_forward, global_max_pool_backward),
}
GATES = {
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "relu": (relu_forward, relu_backward),
    "hard_sigmoid": (hard_sigmoid_forward, hard_sigmoid_backward),
}


class SEBlockCache(NamedTuple):
    squeeze: str
    gate: str
    squeeze_cache: Any  # of z = F_sq(u)
    fc1_cache: Any  # of h = z w1^T + b1
    relu_cache: Any  # of a = relu(h)
    fc2_cache: Any  # of e = a w2^T + b2
    gate_cache: Any  # of s = gate(e)
    scale_cache: Any  # of y = u * s; holds the excitation s (N, C)


def _check_inputs(op, u, w1, b1, w2, b2, squeeze, gate):
    if squeeze not in SQUEEZES:
        raise ValueError(f"{op}: argument 'squeeze' must be one of {sorted(SQUEEZES)}, got {squeeze!r}")
    if gate not in GATES:
        raise ValueError(f"{op}: argument 'gate' must be one of {sorted(GATES)}, got {gate!r}")
    check_float_array(op, "u", u, ndim=4)
    check_planes_nonempty(op, "u", u)  # an empty plane has no mean (NaN) and no maximum
    C = u.shape[1]
    check_float_array(op, "w1", w1, ndim=2)
    check_shape(op, "w1", w1, (None, C), f"w1 is (C_r, C) with C={C} from u")
    C_r = w1.shape[0]
    check_float_array(op, "w2", w2, ndim=2)
    check_shape(op, "w2", w2, (C, C_r), f"w2 is (C, C_r) with C={C} from u and C_r={C_r} from w1")
    for name, b, size in (("b1", b1, C_r), ("b2", b2, C)):
        if b is not None:
            check_float_array(op, name, b, ndim=1)
            check_shape(op, name, b, (size,), "one bias per output of its FC")
    check_same_dtype(op, u=u, w1=w1, b1=b1, w2=w2, b2=b2)


def se_block_forward(u, w1, b1, w2, b2, *, squeeze="avg", gate="sigmoid"):
    """Recalibrate the channels of ``u``: squeeze, excitation (FC, ReLU, FC, gate), scale.

    Parameters
    ----------
    u : array, shape (N, C, H, W), float32 or float64
    w1 : array, shape (C_r, C); b1 : array, shape (C_r,), or None
    w2 : array, shape (C, C_r); b2 : array, shape (C,), or None
    squeeze : {"avg", "max"}
        Global average pooling (the paper) or global max pooling (ablation).
    gate : {"sigmoid", "tanh", "relu", "hard_sigmoid"}
        The excitation's last non-linearity (the paper: sigmoid).

    Returns
    -------
    y : array, shape (N, C, H, W)
    cache : SEBlockCache (``cache.scale_cache.s`` is the excitation ``s``, shape (N, C))
    """
    _check_inputs("se_block_forward", u, w1, b1, w2, b2, squeeze, gate)
    squeeze_forward, _ = SQUEEZES[squeeze]
    gate_forward, _ = GATES[gate]
    z, squeeze_cache = squeeze_forward(u)  # N,C       squeeze (Eq. 2)
    h, fc1_cache = linear_forward(z, w1, b1)  # N,C_r     reduction
    a, relu_cache = relu_forward(h)  # N,C_r     δ
    e, fc2_cache = linear_forward(a, w2, b2)  # N,C       increase
    s, gate_cache = gate_forward(e)  # N,C       σ: the excitation (Eq. 3)
    y, scale_cache = se_scale_forward(u, s)  # N,C,H,W   scale (Eq. 4)
    cache = SEBlockCache(squeeze, gate, squeeze_cache, fc1_cache, relu_cache, fc2_cache,
                         gate_cache, scale_cache)
    return y, cache


def se_block_backward(dy, cache: SEBlockCache):
    """Gradients of :func:`se_block_forward`.

    Parameters
    ----------
    dy : array, shape (N, C, H, W)
    cache : SEBlockCache

    Returns
    -------
    du : array, shape (N, C, H, W)
    dw1 : array, shape (C_r, C); db1 : array, shape (C_r,), or None without b1
    dw2 : array, shape (C, C_r); db2 : array, shape (C,), or None without b2

    Derivation
    ----------
    The forward lines bottom-up, each the backward of its op (derived in that op's file).
    ``u`` is used twice, by ``F_sq`` and by ``F_scale``, so ``dL/du`` is the sum of the two
    paths: ``du = du_scale + du_squeeze`` with ``du_scale = dy * s`` and ``du_squeeze`` the
    squeeze's backward of ``dz`` (for the average, ``dz / (H W)`` spread over each plane).
    """
    check_float_array("se_block_backward", "dy", dy, ndim=4)
    check_shape("se_block_backward", "dy", dy, cache.scale_cache.u.shape, "the shape of y")
    _, squeeze_backward = SQUEEZES[cache.squeeze]
    _, gate_backward = GATES[cache.gate]
    du_scale, ds = se_scale_backward(dy, cache.scale_cache)  # N,C,H,W and N,C
    de = gate_backward(ds, cache.gate_cache)  # N,C
    da, dw2, db2 = linear_backward(de, cache.fc2_cache)  # N,C_r, (C, C_r), (C,)
    dh = relu_backward(da, cache.relu_cache)  # N,C_r
    dz, dw1, db1 = linear_backward(dh, cache.fc1_cache)  # N,C, (C_r, C), (C_r,)
    # u fans out into the scale and the squeeze: du = du_scale + du_squeeze, the squeeze's
    # gradient added into du_scale in place (one pass; no du_squeeze array is made)
    du = squeeze_backward(dz, cache.squeeze_cache, into=du_scale)  # N,C,H,W
    return du, dw1, db1, dw2, db2
