"""The SGD update (Numba, CPU): one pass over a parameter instead of 6 to 9 NumPy passes.

Same semantics and roundings as :func:`sescratch.ops.sgd_update_reference`: the scalars are
rounded to the parameter's dtype first (as NumPy rounds a Python float meeting a float32
array), every product and sum is rounded to that dtype, in the reference's order, and there is
no ``fastmath`` (no fused multiply-adds, no reordering), so the result is bit-for-bit NumPy's.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _sgd_momentum(p, g, b, lr, mu, keep, wd, decay, nesterov, first):
    for i in range(p.size):
        d = g[i]
        if decay:
            d = d + wd * p[i]
        if first:
            b[i] = d
        else:
            b[i] = b[i] * mu
            b[i] = b[i] + keep * d
        d = d + mu * b[i] if nesterov else b[i]
        p[i] = p[i] - lr * d


@njit(cache=True)
def _sgd_plain(p, g, lr, wd, decay):
    for i in range(p.size):
        d = g[i]
        if decay:
            d = d + wd * p[i]
        p[i] = p[i] - lr * d


def sgd_update(p, g, b, lr, momentum, dampening, weight_decay, nesterov, first):
    """In place on ``p`` (and ``b``), as :func:`sescratch.ops.sgd_update_reference`."""
    T = p.dtype.type
    p1, g1 = p.reshape(-1), np.ascontiguousarray(g).reshape(-1)  # p is C-contiguous: a view
    decay = weight_decay != 0
    if momentum == 0:
        _sgd_plain(p1, g1, T(lr), T(weight_decay), decay)
    else:
        _sgd_momentum(p1, g1, b.reshape(-1), T(lr), T(momentum), T(1.0 - dampening),
                      T(weight_decay), decay, nesterov, first)
