"""The squeeze ``F_sq``: global average pooling (paper Eq. 2) and its "max" ablation.

Notation
--------
N : batch size    C : channels    H, W : height, width of the feature map
u : (N, C, H, W)    z : (N, C), one descriptor per channel: ``z[n, c] = F_sq(u[n, c])``

The squeeze gives every later unit a view of the whole image: each ``z[n, c]`` summarises
a channel over all ``H * W`` positions, beyond any local receptive field. Long form (with the
rest of the SE block): ``docs/derivations/se_block.md``.

References
----------
Hu, Shen, Sun, *Squeeze-and-Excitation Networks*, CVPR 2018, Eq. 2; TPAMI version, the
squeeze-operator ablation (average vs. max).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from sescratch.backend import declare_kernels, get_array_module
from sescratch.ops._checks import check_float_array, check_planes_nonempty, check_shape, check_writable_gradient

__all__ = [
    "GlobalAvgPoolCache", "global_avg_pool_forward", "global_avg_pool_backward",
    "global_avg_pool_forward_reference", "global_avg_pool_backward_reference",
    "global_avg_pool_backward_into_reference",
    "GlobalMaxPoolCache", "global_max_pool_forward", "global_max_pool_backward",
]


class GlobalAvgPoolCache(NamedTuple):
    shape: tuple  # (N, C, H, W)


class GlobalMaxPoolCache(NamedTuple):
    shape: tuple  # (N, C, H, W)
    argmax: Any  # N,C  flat index into the H*W plane


def global_avg_pool_forward_reference(x):
    """``z[n, c] = mean_{i, j} x[n, c, i, j]`` in ``xp``; (N, C, H, W) -> (N, C)."""
    return x.mean(axis=(2, 3))  # N,C


def global_avg_pool_backward_reference(dz, H, W):
    """``dx[n, c, i, j] = dz[n, c] / (H W)`` in ``xp``; (N, C) -> a new (N, C, H, W) array."""
    N, C = dz.shape
    dx = get_array_module(dz).empty((N, C, H, W), dtype=dz.dtype)  # N,C,H,W
    dx[...] = dz[:, :, None, None] / (H * W)  # N,C,1,1 broadcast to N,C,H,W
    return dx


def global_avg_pool_backward_into_reference(dz, into):
    """``into[n, c, i, j] += dz[n, c] / (H W)`` in place in ``xp``; returns ``into``."""
    H, W = into.shape[2:]
    into += dz[:, :, None, None] / (H * W)  # N,C,1,1 broadcast over N,C,H,W
    return into


def _check_into(op, into, shape, dtype):
    """``into``: the gradient of another path, to add this one to in place (the fan-out sum)."""
    check_float_array(op, "into", into, ndim=4)
    check_shape(op, "into", into, shape, "the shape of the forward input")
    if into.dtype != dtype:
        raise ValueError(f"{op}: argument 'into' must have the dtype of dz ({dtype}), got {into.dtype}")
    check_writable_gradient(op, "into", into)


def global_max_pool_forward(x):
    """Squeeze by the maximum: ``z[n, c] = max_{i, j} x[n, c, i, j]`` (the TPAMI ablation).

    Ties: the gradient goes to **one** position, the first maximum in row-major order
    (``argmax`` of the flattened ``H * W`` plane) — what ``torch.nn.AdaptiveMaxPool2d(1)``
    does on the CPU, not ``torch.amax``, which splits the gradient evenly among ties.

    Parameters
    ----------
    x : array, shape (N, C, H, W), float32 or float64

    Returns
    -------
    z : array, shape (N, C), dtype of ``x``
    cache : GlobalMaxPoolCache (holds the argmax, shape (N, C))
    """
    check_float_array("global_max_pool_forward", "x", x, ndim=4)
    check_planes_nonempty("global_max_pool_forward", "x", x)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    flat = x.reshape(N, C, H * W)  # N,C,HW
    argmax = flat.argmax(axis=2)  # N,C
    z = xp.take_along_axis(flat, argmax[:, :, None], axis=2)[:, :, 0]  # N,C
    return z, GlobalMaxPoolCache((N, C, H, W), argmax)


def global_max_pool_backward(dz, cache: GlobalMaxPoolCache, *, into=None):
    """Gradient of global max pooling.

    Parameters
    ----------
    dz : array, shape (N, C)
    cache : GlobalMaxPoolCache
    into : array, shape (N, C, H, W), optional
        Another path's gradient of ``x`` (a fresh array): this one is added to it in place.

    Returns
    -------
    dx : array, shape (N, C, H, W) (``into``, when given, now holding the sum)

    Derivation
    ----------
    ``z[n, c] = x[n, c, a]`` with ``a = argmax[n, c]`` fixed by the forward; a small change
    of any other position does not change ``z`` (away from ties). So
    ``dx[n, c, a] = dz[n, c]`` and ``dx = 0`` everywhere else.
    """
    N, C, H, W = cache.shape
    check_float_array("global_max_pool_backward", "dz", dz, ndim=2)
    check_shape("global_max_pool_backward", "dz", dz, (N, C), "the shape of z")
    xp = get_array_module(dz)
    n = xp.arange(N)[:, None]  # N,1
    c = xp.arange(C)[None, :]  # 1,C
    if into is not None:
        _check_into("global_max_pool_backward", into, (N, C, H, W), dz.dtype)
        into.reshape(N, C, H * W)[n, c, cache.argmax] += dz  # one position per plane: no repeats
        return into
    dx = xp.zeros((N, C, H * W), dtype=dz.dtype)  # N,C,HW
    dx[n, c, cache.argmax] = dz  # N,C scattered into N,C,HW
    return dx.reshape(N, C, H, W)  # N,C,H,W


# Dispatch: the average squeeze runs a declared kernel or the reference; the max squeeze has none.
_KERNELS = declare_kernels("global_avg_pool_forward", "global_avg_pool_backward",
                           "global_avg_pool_backward_into")


def global_avg_pool_forward(x):
    """Squeeze by averaging: ``z[n, c] = (1 / (H W)) sum_{i, j} x[n, c, i, j]`` (Eq. 2).

    Parameters
    ----------
    x : array, shape (N, C, H, W), float32 or float64

    Returns
    -------
    z : array, shape (N, C), dtype of ``x``
    cache : GlobalAvgPoolCache
    """
    check_float_array("global_avg_pool_forward", "x", x, ndim=4)
    check_planes_nonempty("global_avg_pool_forward", "x", x)
    x = get_array_module(x).ascontiguousarray(x)
    kernel = _KERNELS.get("global_avg_pool_forward", x)
    forward = global_avg_pool_forward_reference if kernel is None else kernel
    return forward(x), GlobalAvgPoolCache(tuple(x.shape))  # N,C


def global_avg_pool_backward(dz, cache: GlobalAvgPoolCache, *, into=None):
    """Gradient of global average pooling.

    Parameters
    ----------
    dz : array, shape (N, C)
    cache : GlobalAvgPoolCache
    into : array, shape (N, C, H, W), optional
        Another path's gradient of ``x`` (a fresh array the caller owns): this gradient is
        added to it in place, one pass over memory instead of filling a new array and summing
        the two (the SE block's fan-out ``du = du_scale + du_squeeze``).

    Returns
    -------
    dx : array, shape (N, C, H, W), a new (writable) array; or ``into``, now holding the sum

    Derivation
    ----------
    ``∂z[n, c] / ∂x[n, c, i, j] = 1 / (H W)`` for every position and 0 across channels or
    samples, so ``dx[n, c, i, j] = dz[n, c] / (H W)``: the channel's gradient is spread
    evenly back over its ``H W`` positions.
    """
    N, C, H, W = cache.shape
    check_float_array("global_avg_pool_backward", "dz", dz, ndim=2)
    check_shape("global_avg_pool_backward", "dz", dz, (N, C), "the shape of z")
    dz = get_array_module(dz).ascontiguousarray(dz)
    if into is not None:
        _check_into("global_avg_pool_backward", into, (N, C, H, W), dz.dtype)
        kernel = _KERNELS.get("global_avg_pool_backward_into", dz, into)
        accumulate = global_avg_pool_backward_into_reference if kernel is None else kernel
        return accumulate(dz, into)  # N,C,H,W
    kernel = _KERNELS.get("global_avg_pool_backward", dz)
    backward = global_avg_pool_backward_reference if kernel is None else kernel
    return backward(dz, H, W)  # N,C,H,W
