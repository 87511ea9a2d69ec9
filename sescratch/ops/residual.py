"""The residual sum ``y = a + b``: identity (or projection) shortcut plus the residual branch.

Notation
--------
a, b, y : arrays of one shape, typically (N, C, H, W).

In an SE-ResNet block ``a`` is the shortcut and ``b`` the SE-recalibrated residual branch;
the SE block sits on the branch *before* this summation (paper Sec. 3.3, Fig. 3).

Three ops:

* :func:`add_forward` / :func:`add_backward` — the plain sum;
* :func:`add_relu_forward` / :func:`add_relu_backward` — ``y = ReLU(a + b)``, the end of every
  residual block, in one pass over memory each way (``add_forward`` then ``relu_forward`` would
  read and write the (N, C, H, W) maps twice, and the backward would copy the gradient twice);
* :func:`add_into` — the other end of the fan-out rule: where one value fed two consumers, its
  gradient is the *sum* of theirs, ``dx = dx_branch + dx_shortcut``, added into the first
  (a fresh gradient the caller owns) instead of a third array.

References
----------
He et al., *Deep Residual Learning*, CVPR 2016, Eq. 1; Hu, Shen, Sun, CVPR 2018, Fig. 3.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from sescratch.backend import declare_kernels, get_array_module
from sescratch.ops._checks import check_float_array, check_same_dtype, check_shape, check_writable_gradient
from sescratch.ops.activation import ReluCache, relu_backward

__all__ = ["AddCache", "add_forward", "add_backward", "AddReluCache", "add_relu_forward",
           "add_relu_backward", "add_into", "add_relu_forward_reference", "add_into_reference"]


class AddCache(NamedTuple):
    shape: tuple


class AddReluCache(NamedTuple):
    y: Any  # the output ReLU(a + b): its sign is the ReLU's mask


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
    _check_pair("add_forward", a, b)
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


def _check_pair(op, a, b, names=("a", "b")):
    check_float_array(op, names[0], a)
    check_float_array(op, names[1], b)
    if a.shape != b.shape:
        raise ValueError(
            f"{op}: argument '{names[1]}' expected the shape of '{names[0]}' {tuple(a.shape)}, got {tuple(b.shape)}"
        )
    check_same_dtype(op, **{names[0]: a, names[1]: b})


def add_relu_forward_reference(a, b):
    """``y = max(a + b, 0)`` in ``xp`` (NaN propagates, as ``maximum``)."""
    return get_array_module(a).maximum(a + b, 0)  # shape of a


def add_into_reference(total, g):
    """``total += g`` in place in ``xp``; returns ``total``."""
    get_array_module(total).add(total, g, out=total)
    return total


# Dispatch: the public ops check their inputs, then run a declared kernel or the reference.
_KERNELS = declare_kernels("add_relu_forward", "add_into")


def add_relu_forward(a, b):
    """The residual block's last two steps in one: ``y = ReLU(a + b)``.

    Parameters
    ----------
    a, b : arrays of one shape and one floating dtype (no broadcasting)

    Returns
    -------
    y : array, shape of ``a``
    cache : AddReluCache (holds ``y``, the block's output, so it costs no memory of its own)
    """
    _check_pair("add_relu_forward", a, b)
    xp = get_array_module(a)
    a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
    kernel = _KERNELS.get("add_relu_forward", a, b) if a.ndim == 4 else None  # kernels for NCHW maps
    y = add_relu_forward_reference(a, b) if kernel is None else kernel(a, b)  # shape of a
    return y, AddReluCache(y)


def add_relu_backward(dy, cache: AddReluCache):
    """Gradients of :func:`add_relu_forward`: ``da = db = dy * 1[y > 0]``.

    Parameters
    ----------
    dy : array, shape of ``y``
    cache : AddReluCache

    Returns
    -------
    da, db : **one** array, shape of ``dy``, returned twice. The sum sends the same gradient to
        both inputs, and no backward in sescratch writes into its upstream gradient, so the two
        branches can share it (:func:`add_backward` copies instead, for callers that accumulate
        in place; :func:`add_into` accumulates into a *fresh* gradient, never into this one).

    Derivation
    ----------
    With ``t = a + b``: ``dt = dy * 1[t > 0] = dy * 1[y > 0]`` (ReLU, subgradient 0 at the kink,
    as PyTorch), and ``∂t/∂a = ∂t/∂b = I``, so ``da = db = dt``.
    """
    y = cache.y
    check_float_array("add_relu_backward", "dy", dy)
    check_shape("add_relu_backward", "dy", dy, y.shape, "the shape of y")
    dt = relu_backward(dy, ReluCache(y))  # shape of y: the ReLU's backward (and its kernel)
    return dt, dt


def add_into(total, g):
    """The fan-out sum of two gradients, ``total + g``, written into ``total``.

    Parameters
    ----------
    total : array, the first gradient: a fresh array the caller owns (returned by a backward),
        C-contiguous and writeable. It is overwritten.
    g : array, shape and dtype of ``total``, the second gradient (not overlapping ``total``)

    Returns
    -------
    total : the same array, now holding ``total + g``

    In a block, ``dx = add_into(dx_branch, dx_shortcut)`` is ``dx = dx_branch + dx_shortcut``
    without allocating and filling a third (N, C, H, W) array.
    """
    op = "add_into"
    _check_pair(op, total, g, names=("total", "g"))
    xp = get_array_module(total)
    check_writable_gradient(op, "total", total)
    if xp.may_share_memory(total, g):
        raise ValueError(f"{op}: arguments 'total' and 'g' overlap in memory; 'total' must be a fresh gradient")
    g = xp.ascontiguousarray(g)
    kernel = _KERNELS.get("add_into", total, g) if total.ndim == 4 else None
    return add_into_reference(total, g) if kernel is None else kernel(total, g)
