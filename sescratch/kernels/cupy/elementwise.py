"""Elementwise kernels (CuPy, GPU): ReLU and its backward.

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


def relu_forward(x):
    """``y = maximum(x, 0)``."""
    return _relu(x)


def relu_backward(dy, y):
    """``dx = dy where y > 0, else 0``."""
    return _relu_backward(dy, y)

