"""Elementwise kernels (CuPy, GPU): ReLU, the residual sum's ReLU(a + b), the fan-out sum.

Same semantics as :mod:`sescratch.kernels.numba.elementwise` (``maximum``: NaN propagates).
"""
from __future__ import annotations

import cupy as cp

_relu = cp.ElementwiseKernel(
    "T x", "T y", "y = x <= (T)0 ? (T)0 : x", "sescratch_relu"
)

_relu_backward = cp.ElementwiseKernel(
    "T dy, T y", "T dx", "dx = y > (T)0 ? dy : (T)0", "sescratch_relu_backward"
)

_add_relu = cp.ElementwiseKernel(
    "T a, T b", "T y", "T v = a + b; y = v <= (T)0 ? (T)0 : v", "sescratch_add_relu"
)

_add_into = cp.ElementwiseKernel("T g", "T total", "total += g", "sescratch_add_into")


def relu_forward(x):
    """``y = maximum(x, 0)``."""
    return _relu(x)


def relu_backward(dy, y):
    """``dx = dy where y > 0, else 0``."""
    return _relu_backward(dy, y)



def add_relu_forward(a, b):
    """``y = maximum(a + b, 0)``."""
    return _add_relu(a, b)


def add_into(total, g):
    """``total += g`` in place; returns total."""
    _add_into(g, total)
    return total
