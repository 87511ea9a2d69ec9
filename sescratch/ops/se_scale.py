"""The scale ``F_scale``: channel-wise recalibration ``x~_c = s_c · u_c`` (paper Eq. 4).

Notation
--------
N : batch size    C : channels    H, W : height, width of the feature map
u : (N, C, H, W) the feature map    s : (N, C) the excitation (one weight per channel)
y : (N, C, H, W),  ``y[n, c, i, j] = u[n, c, i, j] * s[n, c]``

In the SE block ``u`` also feeds the squeeze, so the block's ``du`` is this op's ``du`` plus
the squeeze path's gradient (``docs/derivations/se_block.md``).

References
----------
Hu, Shen, Sun, *Squeeze-and-Excitation Networks*, CVPR 2018, Eq. 4.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from sescratch.backend import declare_kernels, get_array_module
from sescratch.ops._checks import check_float_array, check_same_dtype, check_shape

__all__ = [
    "SEScaleCache", "se_scale_forward", "se_scale_backward",
    "se_scale_forward_reference", "se_scale_backward_reference",
]


class SEScaleCache(NamedTuple):
    u: Any  # N,C,H,W
    s: Any  # N,C


def _check_inputs(op, u, s):
    check_float_array(op, "u", u, ndim=4)
    check_float_array(op, "s", s, ndim=2)
    check_shape(op, "s", s, u.shape[:2], "one weight per (sample, channel) of u")
    check_same_dtype(op, u=u, s=s)


def se_scale_forward_reference(u, s):
    """``y = u * s[:, :, None, None]`` in ``xp``."""
    return u * s[:, :, None, None]  # N,C,1,1 broadcast over H,W


def se_scale_backward_reference(dy, u, s):
    """``(du, ds)`` in ``xp``: ``du = dy * s``, ``ds = sum_{i, j} dy * u``."""
    du = dy * s[:, :, None, None]  # N,C,H,W
    ds = (dy * u).sum(axis=(2, 3))  # N,C
    return du, ds


# Dispatch: the public ops check their inputs, then run a declared kernel or the reference.
_KERNELS = declare_kernels("se_scale_forward", "se_scale_backward")


def se_scale_forward(u, s):
    """Multiply each channel of ``u`` by its excitation: ``y = u * s[:, :, None, None]``.

    Parameters
    ----------
    u : array, shape (N, C, H, W), float32 or float64
    s : array, shape (N, C), same dtype

    Returns
    -------
    y : array, shape (N, C, H, W)
    cache : SEScaleCache
    """
    _check_inputs("se_scale_forward", u, s)
    xp = get_array_module(u, s)
    u, s = xp.ascontiguousarray(u), xp.ascontiguousarray(s)
    kernel = _KERNELS.get("se_scale_forward", u, s)
    forward = se_scale_forward_reference if kernel is None else kernel
    return forward(u, s), SEScaleCache(u, s)  # N,C,H,W


def se_scale_backward(dy, cache: SEScaleCache):
    """Gradients of the channel-wise scale.

    Parameters
    ----------
    dy : array, shape (N, C, H, W)
    cache : SEScaleCache

    Returns
    -------
    du : array, shape (N, C, H, W)
    ds : array, shape (N, C)

    Derivation
    ----------
    ``y[n, c, i, j] = u[n, c, i, j] s[n, c]``. Each ``u`` entry meets one ``y`` entry:
    ``du = dy * s[:, :, None, None]``. Each ``s[n, c]`` multiplies the whole ``H x W`` plane,
    so its gradient sums over that plane: ``ds[n, c] = sum_{i, j} dy[n, c, i, j] u[n, c, i, j]``.
    """
    u, s = cache
    check_float_array("se_scale_backward", "dy", dy, ndim=4)
    check_shape("se_scale_backward", "dy", dy, u.shape, "the shape of y")
    check_same_dtype("se_scale_backward", dy=dy, u=u)
    dy = get_array_module(dy).ascontiguousarray(dy)
    kernel = _KERNELS.get("se_scale_backward", dy, u, s)
    backward = se_scale_backward_reference if kernel is None else kernel
    return backward(dy, u, s)
