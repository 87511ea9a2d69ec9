"""The residual sum ``y = a + b``: identity (or projection) shortcut plus the residual branch.

Notation
--------
a, b, y : arrays of one shape, typically (N, C, H, W).

In an SE-ResNet block ``a`` is the shortcut and ``b`` the SE-recalibrated residual branch;
the SE block sits on the branch *before* this summation (paper Sec. 3.3, Fig. 3).

References
----------
He et al., *Deep Residual Learning*, CVPR 2016, Eq. 1; Hu, Shen, Sun, CVPR 2018, Fig. 3.
"""
from __future__ import annotations

from typing import NamedTuple

from sescratch.ops._checks import check_float_array, check_same_dtype

__all__ = ["AddCache", "add_forward", "add_backward"]


class AddCache(NamedTuple):
    shape: tuple


def add_forward(a, b):
    """Element-wise sum of two arrays of **the same** shape (no silent broadcasting).

    Parameters
    ----------
    a, b : arrays of one shape and one floating dtype

    Returns
    -------
    y : array, shape of ``a``
    cache : AddCache
    """
    op = "add_forward"
    check_float_array(op, "a", a)
    check_float_array(op, "b", b)
    if a.shape != b.shape:
        raise ValueError(
            f"{op}: argument 'b' expected the shape of 'a' {tuple(a.shape)}, got {tuple(b.shape)}"
        )
    check_same_dtype(op, a=a, b=b)
    return a + b, AddCache(tuple(a.shape))


def add_backward(dy, cache: AddCache):
    """Gradients of the sum: the upstream gradient fans out unchanged to both inputs.

    Parameters
    ----------
    dy : array, shape of ``y``
    cache : AddCache

    Returns
    -------
    da, db : arrays, shape of ``dy``; two separate copies, so that each branch may
        accumulate into its own in place.

    Derivation
    ----------
    ``dy/da = dy/db = I``, so ``da = dy`` and ``db = dy``. (Read forwards, this is the fan-out
    rule: where one value feeds two consumers, its gradient is the *sum* of theirs.)
    """
    check_float_array("add_backward", "dy", dy)
    if tuple(dy.shape) != cache.shape:
        raise ValueError(
            f"add_backward: argument 'dy' expected shape {cache.shape} (the shape of y), "
            f"got {tuple(dy.shape)}"
        )
    da = dy.copy()  # shortcut path
    db = dy.copy()  # residual-branch path
    return da, db
