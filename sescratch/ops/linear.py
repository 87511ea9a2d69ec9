"""Fully connected layer ``y = x w^T + b``: the two FCs of the excitation (paper Eq. 3).

Notation
--------
N : batch size    IN : input features    OUT : output features
x : (N, IN)    w : (OUT, IN) (PyTorch's layout)    b : (OUT,)    y : (N, OUT)

In the SE block, ``W_1`` is a linear layer ``C -> C/r`` and ``W_2`` one ``C/r -> C``.
Long form: ``docs/derivations/linear.md``.

References
----------
Hu, Shen, Sun, *Squeeze-and-Excitation Networks*, CVPR 2018, Eq. 3 (``W_1``, ``W_2``).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from sescratch.ops._checks import check_float_array, check_same_dtype, check_shape

__all__ = ["LinearCache", "linear_forward", "linear_backward"]


class LinearCache(NamedTuple):
    x: Any  # N,IN
    w: Any  # OUT,IN
    has_bias: bool


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

    y = x @ w.T  # N,OUT
    if b is not None:
        y = y + b  # N,OUT  (b broadcast over the batch)
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
    db = dy.sum(axis=0) if has_bias else None  # OUT
    dx = dy @ w  # N,IN
    dw = dy.T @ x  # OUT,IN
    return dx, dw, db
