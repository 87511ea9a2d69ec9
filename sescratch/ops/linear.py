"""Fully connected layer ``y = x w^T + b``: the two FCs of the excitation (paper Eq. 3).

Notation
--------
N : batch size    IN : input features    OUT : output features
x : (N, IN)    w : (OUT, IN) (PyTorch's layout)    b : (OUT,)    y : (N, OUT)

In the SE block, ``W_1`` is a linear layer ``C -> C/r`` and ``W_2`` one ``C/r -> C``.
Long form: ``docs/derivations/linear.md``.

The products are NumPy's (or CuPy's) matrix products; the kernels the ops dispatch to only
choose where BLAS runs them (:mod:`sescratch.kernels.numba.linear`: the excitation's small
products on the calling thread).

References
----------
Hu, Shen, Sun, *Squeeze-and-Excitation Networks*, CVPR 2018, Eq. 3 (``W_1``, ``W_2``).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from sescratch.backend import declare_kernels
from sescratch.ops._checks import check_float_array, check_same_dtype, check_shape

__all__ = ["LinearCache", "linear_forward", "linear_backward", "linear_forward_reference",
           "linear_backward_reference"]


class LinearCache(NamedTuple):
    x: Any  # N,IN
    w: Any  # OUT,IN
    has_bias: bool


def linear_forward_reference(x, w, b):
    """``y = x @ w.T (+ b)`` in ``xp`` (b None: no bias)."""
    y = x @ w.T  # N,OUT
    if b is not None:
        y = y + b  # N,OUT  (b broadcast over the batch)
    return y


def linear_backward_reference(dy, x, w, has_bias):
    """``(dx, dw, db)`` in ``xp`` (db None without a bias): the derivation in :func:`linear_backward`."""
    db = dy.sum(axis=0) if has_bias else None  # OUT
    dx = dy @ w  # N,IN
    dw = dy.T @ x  # OUT,IN
    return dx, dw, db


# Dispatch: the public ops check their inputs, then run a declared kernel or the reference.
_KERNELS = declare_kernels("linear_forward", "linear_backward")


def linear_forward(x, w, b=None):
    """Affine map of a batch of vectors, ``y = x @ w.T + b``.

    Parameters
    ----------
    x : array, shape (N, IN), float32 or float64
    w : array, shape (OUT, IN), same dtype as ``x``
    b : array, shape (OUT,), optional

    Returns
    -------
    y : array, shape (N, OUT), dtype of ``x``
    cache : LinearCache
    """
    op = "linear_forward"
    check_float_array(op, "x", x, ndim=2)
    check_float_array(op, "w", w, ndim=2)
    check_shape(op, "w", w, (None, x.shape[1]), "w is (OUT, IN) and IN must equal x.shape[1]")
    if b is not None:
        check_float_array(op, "b", b, ndim=1)
        check_shape(op, "b", b, (w.shape[0],), "one bias per output feature")
    check_same_dtype(op, x=x, w=w, b=b)
    kernel = _KERNELS.get("linear_forward", x)
    y = (linear_forward_reference if kernel is None else kernel)(x, w, b)  # N,OUT
    return y, LinearCache(x, w, b is not None)


def linear_backward(dy, cache: LinearCache):
    """Gradients of the linear layer.

    Parameters
    ----------
    dy : array, shape (N, OUT)
        Upstream gradient ``dL/dy``.
    cache : LinearCache
        From :func:`linear_forward`.

    Returns
    -------
    dx : array, shape (N, IN)
    dw : array, shape (OUT, IN)
    db : array, shape (OUT,), or None when the forward had no bias

    Derivation
    ----------
    ``y[n, j] = sum_i x[n, i] w[j, i] + b[j]``. Each variable's gradient sums ``dy`` over the
    indices it is shared across:

    - ``dx[n, i] = sum_j dy[n, j] w[j, i]``      ->  ``dx = dy @ w``
    - ``dw[j, i] = sum_n dy[n, j] x[n, i]``      ->  ``dw = dy.T @ x``
    - ``db[j]    = sum_n dy[n, j]``              ->  the bias is broadcast over the batch,
      so its gradient is summed over the batch.
    """
    x, w, has_bias = cache
    check_float_array("linear_backward", "dy", dy, ndim=2)
    check_shape("linear_backward", "dy", dy, (x.shape[0], w.shape[0]), "the shape of y")
    check_same_dtype("linear_backward", dy=dy, x=x)
    kernel = _KERNELS.get("linear_backward", dy)
    return (linear_backward_reference if kernel is None else kernel)(dy, x, w, has_bias)  # N,IN; OUT,IN; OUT
