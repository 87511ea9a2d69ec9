"""Depthwise convolution: ``conv2d`` with ``groups == C`` (MobileNet's 3x3 filters), tap by tap.

Notation
--------
N : batch size    C : input channels    M : channel multiplier    K = M C : output channels
KH, KW : kernel    S = (SH, SW) : stride    P = (PH, PW) : zero padding of each border
x : (N, C, H, W)    w : (K, 1, KH, KW)    b : (K,)    y : (N, K, OH, OW)
Output channel ``k = c M + m`` filters input channel ``c = k // M`` alone.

Output size as every convolution: ``OH = (H + 2 PH - KH) // SH + 1`` (same for OW).

With one input channel per group, im2col's matrix products degenerate into ``C`` products of a
``M x KH KW`` by a ``KH KW x N OH OW`` matrix: the copy costs as much as the arithmetic. These
references instead loop over the ``KH KW`` taps, each a strided view of the padded input
(``KH KW`` multiply-adds of whole arrays); the Numba and CuPy kernels of the same names
(:mod:`sescratch.kernels.numba.depthwise`) run the same loops per (image, channel) plane.
:func:`sescratch.ops.conv2d_forward` dispatches here whenever ``groups == C``.
Long form: ``docs/derivations/depthwise_conv2d.md``.

References
----------
Howard et al., *MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications*, 2017, Sec. 3.1 (depthwise separable convolution, cost ``KH KW C H W``);
Chollet, *Xception*, CVPR 2017 (the channel multiplier).
"""
from __future__ import annotations

from sescratch.backend import get_array_module
from sescratch.ops.window import conv_output_size

__all__ = ["depthwise_conv2d_forward_reference", "depthwise_conv2d_backward_reference"]


def _geometry(x, w, stride, padding):
    """(M, OH, OW) of a depthwise convolution of ``x`` with ``w``."""
    (H, W), (KH, KW), (SH, SW), (PH, PW) = x.shape[2:], w.shape[2:], stride, padding
    return w.shape[0] // x.shape[1], conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)


def _tap(a, kh, kw, stride, OH, OW):
    """Tap (kh, kw) of every window at once: a strided view (N, C, OH, OW) of the padded ``a``."""
    SH, SW = stride
    return a[:, :, kh: kh + SH * (OH - 1) + 1: SH, kw: kw + SW * (OW - 1) + 1: SW]


def depthwise_conv2d_forward_reference(x, w, b, stride, padding):
    """``y[n, cM + m] = b[cM + m] + sum_{kh,kw} w[cM + m, 0, kh, kw] x_pad[n, c, oh S + kh, ow S + kw]``.

    Checked, contiguous inputs with ``w.shape[1] == 1`` and ``K`` a multiple of ``C``;
    ``stride`` and ``padding`` are (h, w) pairs. Returns ``y`` of shape (N, K, OH, OW).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    M, OH, OW = _geometry(x, w, stride, padding)
    (PH, PW) = padding
    x_pad = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))  # N,C,H+2PH,W+2PW
    w_cm = w.reshape(C, M, KH, KW)  # C,M,KH,KW
    y = xp.zeros((N, C, M, OH, OW), dtype=x.dtype)  # N,C,M,OH,OW
    for kh in range(KH):
        for kw in range(KW):
            tap = _tap(x_pad, kh, kw, stride, OH, OW)  # N,C,OH,OW
            y += tap[:, :, None] * w_cm[None, :, :, kh, kw, None, None]  # N,C,M,OH,OW
    y = y.reshape(N, K, OH, OW)  # N,K,OH,OW  (k = c M + m)
    if b is not None:
        y += b[:, None, None]  # N,K,OH,OW
    return y


def depthwise_conv2d_backward_reference(dy, x, w, stride, padding, has_bias):
    """``(dx, dw, db)`` of :func:`depthwise_conv2d_forward_reference` (db None without a bias).

    Derivation
    ----------
    The forward is one ``+=`` per tap; its backward is one pair of lines per tap, read off
    the product rule of ``y += tap * w[:, :, kh, kw]``:

    - ``dw[cM + m, 0, kh, kw] = sum_{n,oh,ow} dy[n, cM + m, oh, ow] tap[n, c, oh, ow]``: the
      weight of a tap meets that tap's input at every output position;
    - ``dtap[n, c] = sum_m w[cM + m, 0, kh, kw] dy[n, cM + m]`` added into the strided view of
      ``dx_pad`` the tap was read from (windows overlap when ``S < K``: the ``+=`` sums them;
      the fan-out of one input channel to its ``M`` outputs is the sum over ``m``);
    - ``db[k] = sum_{n,oh,ow} dy[n, k, oh, ow]``; the padding's gradient is cropped away.
    """
    xp = get_array_module(dy)
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    M, OH, OW = _geometry(x, w, stride, padding)
    (PH, PW) = padding
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None  # K
    dy_cm = dy.reshape(N, C, M, OH, OW)  # N,C,M,OH,OW
    w_cm = w.reshape(C, M, KH, KW)  # C,M,KH,KW
    x_pad = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))  # N,C,H+2PH,W+2PW
    dx_pad = xp.zeros_like(x_pad)  # N,C,H+2PH,W+2PW
    dw = xp.empty((C, M, KH, KW), dtype=w.dtype)  # C,M,KH,KW
    for kh in range(KH):
        for kw in range(KW):
            tap = _tap(x_pad, kh, kw, stride, OH, OW)  # N,C,OH,OW
            dw[:, :, kh, kw] = xp.einsum("ncmhw,nchw->cm", dy_cm, tap)  # C,M
            dtap = xp.einsum("ncmhw,cm->nchw", dy_cm, w_cm[:, :, kh, kw])  # N,C,OH,OW
            _tap(dx_pad, kh, kw, stride, OH, OW)[...] += dtap  # into a strided view
    dx = xp.ascontiguousarray(dx_pad[:, :, PH: PH + H, PW: PW + W])  # N,C,H,W
    return dx, dw.reshape(K, 1, KH, KW), db
