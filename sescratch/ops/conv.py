"""2-D convolution, which computes a **cross-correlation**: ``F_tr`` of the SE paper (Eq. 1).

Notation
--------
N : batch size      C : input channels (C_in)      K : output channels (C_out)
H, W : input height and width                      KH, KW : kernel height and width
S = (SH, SW) : stride                              P = (PH, PW) : zero padding of each border
G : groups (C and K both divisible by G); each group sees C/G inputs and makes K/G outputs
x : (N, C, H, W)    w : (K, C/G, KH, KW)    b : (K,)    y : (N, K, OH, OW)

Output size: ``OH = (H + 2 PH - KH) // SH + 1`` and ``OW = (W + 2 PW - KW) // SW + 1``.

The reference (:func:`conv2d_forward_reference`, :func:`conv2d_backward_reference`, plain
``xp`` code): *im2col* copies every receptive field into a column, one matrix product per group
does all the multiply-adds, and *col2im* adds the columns' gradients back into the image. The
public ops at the bottom check their inputs and dispatch to the kernels of the same names
(Numba on the CPU, CuPy on the GPU), which compute the same thing, or run the reference.
Long form: ``docs/derivations/conv2d.md``.

References
----------
Hu, Shen, Sun, *Squeeze-and-Excitation Networks*, CVPR 2018, Eq. 1 (``u_c = v_c * X``).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from sescratch.backend import declare_kernels, get_array_module
from sescratch.ops._checks import check_float_array, check_nonempty, check_same_dtype, check_shape, pair
from sescratch.ops.depthwise import (
    depthwise_conv2d_backward_reference,
    depthwise_conv2d_forward_reference,
)
from sescratch.ops.window import check_allocation, conv_output_size

__all__ = [
    "Conv2dCache", "conv2d_forward", "conv2d_backward", "conv2d_reference",
    "conv2d_forward_reference", "conv2d_backward_reference",
]


class Conv2dCache(NamedTuple):
    x: Any  # N,C,H,W (the columns are rebuilt from x in the backward, not kept)
    w: Any  # K,C/G,KH,KW
    has_bias: bool
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int


def _check_inputs(op, x, w, b, stride, padding, groups):
    """Validate the arguments; return ``(stride, padding)`` as (h, w) pairs."""
    check_float_array(op, "x", x, ndim=4)
    check_float_array(op, "w", w, ndim=4)
    if b is not None:
        check_float_array(op, "b", b, ndim=1)
    check_same_dtype(op, x=x, w=w, b=b)
    check_nonempty(op, "x", x)
    check_nonempty(op, "w", w)
    stride, padding = pair(op, "stride", stride, minimum=1), pair(op, "padding", padding, minimum=0)
    N, C, H, W = x.shape
    check_allocation(op, "padding", padding, {"the padded input": (N, C, H + 2 * padding[0], W + 2 * padding[1])})
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: argument 'groups' must be a positive int, got {groups!r}")
    C, K = x.shape[1], w.shape[0]
    for name, channels in (("C_in", C), ("C_out", K)):
        if channels % groups:
            raise ValueError(
                f"{op}: argument 'groups' must divide {name}={channels}, got groups={groups}"
            )
    check_shape(op, "w", w, (None, C // groups, None, None),
                f"w is (C_out, C_in // groups, KH, KW) with C_in={C} from x and groups={groups}")
    if b is not None:
        check_shape(op, "b", b, (K,), "one bias per output channel")
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    if w.shape[2] > padded[0] or w.shape[3] > padded[1]:
        raise ValueError(
            f"{op}: argument 'w' has a kernel of {w.shape[2]}x{w.shape[3]}, larger than the padded "
            f"input of {padded[0]}x{padded[1]} (H + 2 PH x W + 2 PW); expected at most that size"
        )
    OH, OW = _output_size(x, w, stride, padding)
    check_allocation(op, "padding", padding, {"the padded input": (*x.shape[:2], *padded),
                                              "y": (x.shape[0], K, OH, OW)})
    return stride, padding


def _output_size(x, w, stride, padding):
    """(OH, OW) of a convolution of ``x`` with ``w``."""
    (H, W), (KH, KW), (SH, SW), (PH, PW) = x.shape[2:], w.shape[2:], stride, padding
    return conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)


def _im2col(x, KH, KW, stride, padding, OH, OW):
    """``cols[c, kh, kw, n, oh, ow] = x_pad[n, c, oh*SH + kh, ow*SW + kw]``: one slice per tap."""
    xp = get_array_module(x)
    (SH, SW), (PH, PW) = stride, padding
    N, C = x.shape[:2]
    x_pad = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))  # N,C,H+2PH,W+2PW
    cols = xp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)  # C,KH,KW,N,OH,OW
    for kh in range(KH):
        for kw in range(KW):
            window = x_pad[:, :, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW]  # N,C,OH,OW
            cols[:, kh, kw] = window.transpose(1, 0, 2, 3)
    return cols


def _col2im(dcols, x_shape, stride, padding):
    """The adjoint of :func:`_im2col`: add every column entry back where it was copied from."""
    xp = get_array_module(dcols)
    (SH, SW), (PH, PW) = stride, padding
    C, KH, KW, N, OH, OW = dcols.shape
    H, W = x_shape[2:]
    dx_pad = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dcols.dtype)  # N,C,H+2PH,W+2PW
    for kh in range(KH):
        for kw in range(KW):  # overlapping windows: their gradients add up
            window = dcols[:, kh, kw].transpose(1, 0, 2, 3)  # N,C,OH,OW
            dx_pad[:, :, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW] += window
    return dx_pad[:, :, PH:PH + H, PW:PW + W]  # N,C,H,W  (the padding's gradient is dropped)


def conv2d_forward_reference(x, w, b, stride, padding, groups):
    """The forward in ``xp`` (im2col + one matrix product per group); checked, contiguous inputs.

    ``stride`` and ``padding`` are (h, w) pairs; returns ``y`` of shape (N, K, OH, OW).
    """
    xp = get_array_module(x)
    N, C, _, _ = x.shape
    K, Cg, KH, KW = w.shape
    G = groups
    OH, OW = _output_size(x, w, stride, padding)
    cols = _im2col(x, KH, KW, stride, padding, OH, OW).reshape(G, Cg * KH * KW, N * OH * OW)
    w_mat = w.reshape(G, K // G, Cg * KH * KW)  # G,K/G,C/G*KH*KW
    y = w_mat @ cols  # G,K/G,N*OH*OW  (one matrix product per group)
    y = y.reshape(K, N, OH, OW).transpose(1, 0, 2, 3)  # N,K,OH,OW
    if b is not None:
        y = y + b[:, None, None]  # N,K,OH,OW  (b broadcast over n, oh, ow)
    return xp.ascontiguousarray(y)


def conv2d_backward_reference(dy, x, w, stride, padding, groups, has_bias):
    """The backward in ``xp``: ``(dx, dw, db)`` (db None without a bias); see :func:`conv2d_backward`."""
    xp = get_array_module(dy)
    N, C, _, _ = x.shape
    K, Cg, KH, KW = w.shape
    G = groups
    OH, OW = _output_size(x, w, stride, padding)
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None  # K
    dy_mat = dy.transpose(1, 0, 2, 3).reshape(G, K // G, N * OH * OW)  # G,K/G,N*OH*OW
    cols = _im2col(x, KH, KW, stride, padding, OH, OW).reshape(G, Cg * KH * KW, N * OH * OW)
    w_mat = w.reshape(G, K // G, Cg * KH * KW)  # G,K/G,C/G*KH*KW
    dw = (dy_mat @ cols.transpose(0, 2, 1)).reshape(w.shape)  # K,C/G,KH,KW
    dcols = w_mat.transpose(0, 2, 1) @ dy_mat  # G,C/G*KH*KW,N*OH*OW
    dx = _col2im(dcols.reshape(C, KH, KW, N, OH, OW), x.shape, stride, padding)  # N,C,H,W
    return xp.ascontiguousarray(dx), dw, db


def conv2d_reference(x, w, b=None, *, stride=1, padding=0, groups=1):
    """The forward in plain loops over (n, k, oh, ow): the oracle the fast code is tested against.

    Same arguments and output as :func:`conv2d_forward` (without the cache); NumPy only, slow.
    """
    stride, padding = _check_inputs("conv2d_reference", x, w, b, stride, padding, groups)
    (SH, SW), (PH, PW) = stride, padding
    N, C, _, _ = x.shape
    K, Cg, KH, KW = w.shape
    OH, OW = _output_size(x, w, stride, padding)
    x_pad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    y = np.zeros((N, K, OH, OW), dtype=x.dtype)
    for n in range(N):
        for k in range(K):
            g = k // (K // groups)  # the group of output channel k reads input channels g*Cg ...
            for oh in range(OH):
                for ow in range(OW):
                    i, j = oh * SH, ow * SW
                    field = x_pad[n, g * Cg:(g + 1) * Cg, i:i + KH, j:j + KW]  # C/G,KH,KW
                    y[n, k, oh, ow] = np.sum(field * w[k]) + (0 if b is None else b[k])
    return y


# Dispatch: the public ops check their inputs, then run a declared kernel or the reference.
# A depthwise convolution (groups == C_in, any channel multiplier K / C_in) has its own
# reference and kernels (sescratch/ops/depthwise.py): im2col would copy KH*KW times the input
# for one multiply-add per copied value.
_KERNELS = declare_kernels("conv2d_forward", "conv2d_backward",
                           "depthwise_conv2d_forward", "depthwise_conv2d_backward")


def _is_depthwise(x, groups):
    return groups == x.shape[1] and groups > 1


def conv2d_forward(x, w, b=None, *, stride=1, padding=0, groups=1):
    """Cross-correlate a batch of images with a bank of filters.

    ``y[n, k, oh, ow] = b[k] + sum_{c,kh,kw} w[k, c, kh, kw] x_pad[n, gC/G + c, oh*SH + kh, ow*SW + kw]``
    with ``g = k // (K/G)`` the group of output channel ``k`` (no kernel flip: a cross-correlation).

    Parameters
    ----------
    x : array, shape (N, C, H, W), float32 or float64
    w : array, shape (K, C/G, KH, KW), same dtype as ``x``
    b : array, shape (K,), optional
    stride : int or (SH, SW), each >= 1
    padding : int or (PH, PW), each >= 0; zeros added on every border
    groups : int, divides C and K (``groups == C`` is a depthwise convolution, run by the
        tap-by-tap code of :mod:`sescratch.ops.depthwise` and its kernels)

    Returns
    -------
    y : array, shape (N, K, OH, OW), dtype of ``x``; ``OH = (H + 2 PH - KH) // SH + 1``, same for OW
    cache : Conv2dCache
    """
    op = "conv2d_forward"
    stride, padding = _check_inputs(op, x, w, b, stride, padding, groups)
    xp = get_array_module(x, w, b)
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    cache = Conv2dCache(x, w, b is not None, stride, padding, groups)
    if _is_depthwise(x, groups):
        kernel = _KERNELS.get("depthwise_conv2d_forward", x)
        forward = depthwise_conv2d_forward_reference if kernel is None else kernel
        return forward(x, w, b, stride, padding), cache
    kernel = _KERNELS.get("conv2d_forward", x)
    forward = conv2d_forward_reference if kernel is None else kernel
    return forward(x, w, b, stride, padding, groups), cache


def conv2d_backward(dy, cache: Conv2dCache):
    """Gradients of :func:`conv2d_forward`.

    Parameters
    ----------
    dy : array, shape (N, K, OH, OW)
        Upstream gradient ``dL/dy``.
    cache : Conv2dCache
        From :func:`conv2d_forward`.

    Returns
    -------
    dx : array, shape (N, C, H, W)
    dw : array, shape (K, C/G, KH, KW)
    db : array, shape (K,), or None when the forward had no bias

    Derivation
    ----------
    In matrix form (per group) ``Y = W_mat @ cols`` with ``cols = im2col(x)``, a linear map of x:

    - ``db[k] = sum_{n,oh,ow} dy[n, k, oh, ow]``: b is broadcast over n, oh, ow.
    - ``dW_mat = dY @ cols.T``: each weight meets every receptive field it slid over, so
      ``dw[k, c, kh, kw] = sum_{n,oh,ow} dy[n, k, oh, ow] x_pad[n, c, oh*SH + kh, ow*SW + kw]``.
    - ``dcols = W_mat.T @ dY``, then ``dx = col2im(dcols)``: the adjoint of the copy *adds* each
      column back to the pixels it came from, summing where receptive fields overlap; the
      padding's share is cropped away. Written as one formula this is a *full* cross-correlation
      of dy, dilated with S - 1 zeros between its entries, with the 180-degree-rotated kernel:
      ``dx[n, c, i, j] = sum_{k,kh,kw} dy[n, k, (i+PH-kh)/SH, (j+PW-kw)/SW] w[k, c, kh, kw]``
      over the terms whose divisions are exact and inside dy.
    - Groups: ``W_mat`` is block diagonal, so every group is an independent convolution and
      each gradient is computed group by group (dx of group g only sees w and dy of group g).
    """
    x, w, has_bias, stride, padding, groups = cache
    OH, OW = _output_size(x, w, stride, padding)
    check_float_array("conv2d_backward", "dy", dy, ndim=4)
    check_shape("conv2d_backward", "dy", dy, (x.shape[0], w.shape[0], OH, OW), "the shape of y")
    check_same_dtype("conv2d_backward", dy=dy, x=x)
    dy = get_array_module(dy).ascontiguousarray(dy)
    if _is_depthwise(x, groups):
        kernel = _KERNELS.get("depthwise_conv2d_backward", dy)
        backward = depthwise_conv2d_backward_reference if kernel is None else kernel
        return backward(dy, x, w, stride, padding, has_bias)
    kernel = _KERNELS.get("conv2d_backward", dy)
    backward = conv2d_backward_reference if kernel is None else kernel
    return backward(dy, x, w, stride, padding, groups, has_bias)
