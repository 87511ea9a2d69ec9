"""Concatenation along one axis (the channels, for Inception's branches) and its split backward.

Notation
--------
x_1, ..., x_B : B >= 1 arrays that agree in every dimension but ``axis``, one dtype
C_b : size of x_b along ``axis``      y : their concatenation, ``sum_b C_b`` along ``axis``

An Inception module runs its branches side by side on one input and concatenates their outputs
along the channels (NCHW: ``axis=1``); ShuffleNet's stride-2 unit concatenates the pooled
shortcut with the residual branch. Long form: ``docs/derivations/concat.md``.

References
----------
Szegedy et al., *Going Deeper with Convolutions*, CVPR 2015 (the filter concatenation);
Zhang et al., *ShuffleNet*, CVPR 2018, Fig. 2(c); Hu, Shen, Sun, CVPR 2018, Fig. 2 (SE on the
output of a whole Inception module, i.e. after the concatenation).
"""
from __future__ import annotations

from typing import NamedTuple

from sescratch.backend import get_array_module
from sescratch.ops._checks import check_float_array, check_same_dtype

__all__ = ["ConcatCache", "concat_forward", "concat_backward"]


class ConcatCache(NamedTuple):
    axis: int  # non-negative
    sizes: tuple  # C_1, ..., C_B along axis
    shape: tuple  # shape of y


def concat_forward(xs, axis=1):
    """Concatenate arrays along ``axis``.

    Parameters
    ----------
    xs : list or tuple of B >= 1 arrays, one floating dtype, equal shapes except along ``axis``
    axis : int, default 1 (the channels of NCHW); negative counts from the end

    Returns
    -------
    y : array, shape of ``xs[0]`` with ``sum_b C_b`` along ``axis``
    cache : ConcatCache
    """
    op = "concat_forward"
    if not isinstance(xs, (list, tuple)) or len(xs) == 0:
        raise ValueError(f"{op}: argument 'xs' must be a non-empty list of arrays, got {xs!r:.80}")
    for b, x in enumerate(xs):
        check_float_array(op, f"xs[{b}]", x)
    first = tuple(xs[0].shape)
    ndim = len(first)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(f"{op}: argument 'axis' must be an int in [{-ndim}, {ndim - 1}] for "
                         f"{ndim}-D arrays, got {axis!r}")
    axis = axis % ndim
    for b, x in enumerate(xs[1:], start=1):
        shape = tuple(x.shape)
        if len(shape) != ndim or any(s != f for i, (s, f) in enumerate(zip(shape, first)) if i != axis):
            want = "(" + ", ".join("*" if i == axis else str(f) for i, f in enumerate(first)) + ")"
            raise ValueError(f"{op}: argument 'xs[{b}]' expected shape {want} (that of xs[0] "
                             f"except along axis {axis}), got {shape}")
    check_same_dtype(op, **{f"xs[{b}]": x for b, x in enumerate(xs)})
    xp = get_array_module(*xs)
    y = xp.concatenate(xs, axis=axis)  # ..., sum_b C_b, ...
    return y, ConcatCache(axis, tuple(x.shape[axis] for x in xs), tuple(y.shape))


def concat_backward(dy, cache: ConcatCache):
    """Gradients of the concatenation: the split of ``dy`` back into the inputs' pieces.

    Parameters
    ----------
    dy : array, shape of ``y``
    cache : ConcatCache

    Returns
    -------
    dxs : list of B arrays, ``dxs[b]`` of the shape of ``xs[b]`` (contiguous copies, so that
        each branch may accumulate into its own in place)

    Derivation
    ----------
    ``y`` is a copy of the inputs placed side by side: ``y[..., o_b + c, ...] = x_b[..., c, ...]``
    with the offset ``o_b = C_1 + ... + C_{b-1}``. Each entry of ``y`` depends on exactly one
    input entry with slope 1, so ``dx_b[..., c, ...] = dy[..., o_b + c, ...]``: the gradient is
    cut at the same offsets (the Jacobian is a permutation of the identity, its transpose the
    inverse placement).
    """
    check_float_array("concat_backward", "dy", dy)
    if tuple(dy.shape) != cache.shape:
        raise ValueError(f"concat_backward: argument 'dy' expected shape {cache.shape} "
                         f"(the shape of y), got {tuple(dy.shape)}")
    xp = get_array_module(dy)
    dxs, start = [], 0
    for size in cache.sizes:
        index = (slice(None),) * cache.axis + (slice(start, start + size),)
        dxs.append(xp.ascontiguousarray(dy[index]))  # shape of x_b
        start += size
    return dxs
