"""The SGD update (CuPy, GPU): one fused kernel per parameter instead of 6 to 9 launches.

Same semantics and roundings as :func:`sescratch.ops.sgd_update_reference`: the scalars arrive
rounded to the parameter's dtype (``T``), each product and sum is rounded to ``T`` in the
reference's order, and the kernels are compiled with ``--fmad=false`` (NVRTC contracts
``a * b + c`` into one fused multiply-add by default, which rounds once instead of twice), so
a GPU step equals the CPU's bit for bit.
"""
from __future__ import annotations

import cupy as cp

_NO_FMA = ("--fmad=false",)

_sgd_momentum = cp.ElementwiseKernel(
    "T g, T lr, T mu, T keep, T wd, bool decay, bool nesterov, bool first",
    "T p, T b",
    """
    T d = g;
    if (decay) d = d + wd * p;
    if (first) {
        b = d;
    } else {
        b = b * mu;
        b = b + keep * d;
    }
    d = nesterov ? d + mu * b : b;
    p = p - lr * d;
    """,
    "sescratch_sgd_momentum",
    options=_NO_FMA,
)

_sgd_plain = cp.ElementwiseKernel(
    "T g, T lr, T wd, bool decay",
    "T p",
    """
    T d = g;
    if (decay) d = d + wd * p;
    p = p - lr * d;
    """,
    "sescratch_sgd_plain",
    options=_NO_FMA,
)


def sgd_update(p, g, b, lr, momentum, dampening, weight_decay, nesterov, first):
    """In place on ``p`` (and ``b``), as :func:`sescratch.ops.sgd_update_reference`."""
    T = p.dtype.type
    decay = weight_decay != 0
    if momentum == 0:
        _sgd_plain(g, T(lr), T(weight_decay), decay, p)
    else:
        _sgd_momentum(g, T(lr), T(momentum), T(1.0 - dampening), T(weight_decay), decay,
                      nesterov, first, p, b)
