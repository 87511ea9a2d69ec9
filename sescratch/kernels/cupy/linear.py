"""The fully connected layer's products (CuPy, GPU): cuBLAS through CuPy's ``@``, as the reference.

The CPU family's kernels only choose where OpenBLAS runs the products
(:mod:`sescratch.kernels.numba.linear`); on a GPU there is no such choice to make, so these are
the reference's own calls, in its order: cuBLAS computes each product, the bias is one
broadcast add, ``db`` one reduction. They are here because every family names every declared
kernel (no silent fallback to the reference).
"""
from __future__ import annotations

from sescratch.ops.linear import linear_backward_reference, linear_forward_reference


def linear_forward(x, w, b):
    """``y = x @ w.T (+ b)``, as :func:`sescratch.ops.linear_forward_reference` (cuBLAS)."""
    return linear_forward_reference(x, w, b)


def linear_backward(dy, x, w, has_bias):
    """``(dx, dw, db)``, as :func:`sescratch.ops.linear_backward_reference` (cuBLAS)."""
    return linear_backward_reference(dy, x, w, has_bias)
