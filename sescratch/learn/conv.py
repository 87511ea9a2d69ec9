"""Checks for tutorials 01 and 02: the loop cross-correlation, its backward, im2col and col2im.

The references are :func:`sescratch.ops.conv2d_forward` and :func:`sescratch.ops.conv2d_backward`
run in float64 on the NumPy reference code. im2col is a convolution with one-hot filters (filter
``(c, kh, kw)`` copies tap ``(kh, kw)`` of channel ``c``), and col2im is that convolution's input
gradient, so both are graded by the conv op itself.
"""
from __future__ import annotations

import numpy as np

from sescratch import backend, ops
from sescratch.learn._grading import as_tuple, call, compare, passed, rng_for

__all__ = ["check_conv2d_naive", "check_conv2d_naive_backward", "check_im2col", "check_col2im"]


def _conv_case(rng, *, overlap=None, strided=False, general=False):
    """Random x, w, b, stride, padding with at least one output position.

    ``strided``: a 3x3 kernel with stride 2 and padding 1 (overlapping windows), so that every
    check meets a stride, a padding and windows that share pixels whatever the random draws.
    ``strided`` and ``general`` cases have no dimension that could hide a mistake: two images or
    more, two input channels or more, K != C and H != W; ``general`` ones also KH != KW.
    """
    while True:
        N, C, K = rng.integers(1, 3), rng.integers(1, 4), rng.integers(1, 4)
        KH, KW = rng.integers(1, 4, size=2)
        stride, padding = int(rng.integers(1, 3)), int(rng.integers(0, 2))
        if strided:
            KH = KW = 3
            stride, padding = 2, 1
        if strided or general:
            N, C = rng.integers(2, 4), rng.integers(2, 4)
            K = rng.choice([k for k in range(1, 5) if k != C])
        if general and KH == KW:
            continue
        if overlap is False:
            KH = KW = stride = int(rng.integers(1, 3))
            padding = 0
        H, W = rng.integers(max(KH, KW), 8, size=2)
        if (strided or general) and H == W:
            continue
        if H + 2 * padding >= KH and W + 2 * padding >= KW:
            break
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C, KH, KW))
    b = rng.standard_normal(K)
    case = f"x {x.shape}, w {w.shape}, stride={stride}, padding={padding}"
    return x, w, b, stride, padding, case


def _conv(x, w, b, stride, padding):
    with backend.use("numpy"):
        return ops.conv2d_forward(x, w, b, stride=stride, padding=padding)


def check_conv2d_naive(fn, *, cases: int = 4, seed=None) -> float:
    """Grade ``fn(x, w, b, stride, padding) -> y``, the cross-correlation in plain loops.

    ``x`` (N, C, H, W), ``w`` (K, C, KH, KW), ``b`` (K,); ``y`` (N, K, OH, OW) with
    ``OH = (H + 2 padding - KH) // stride + 1``. Compared with :func:`sescratch.ops.conv2d_forward`.
    """
    check, rng, errors = "check_conv2d_naive", rng_for(seed), []
    for i in range(cases):
        x, w, b, stride, padding, case = _conv_case(rng, strided=i == 0, general=i == 1)
        y_ref, _ = _conv(x, w, b, stride, padding)
        y = call(check, fn, x.copy(), w.copy(), b.copy(), stride, padding)
        hints = {
            "the kernel is flipped: that is a convolution; a CNN layer computes a cross-correlation "
            "(lay w on the patch as it is)": _conv(x, w[:, :, ::-1, ::-1].copy(), b, stride, padding)[0],
            "the bias b is missing (add b[k] to every output of channel k)": _conv(x, w, None, stride, padding)[0],
        }
        errors.append(compare(check, "y", y, y_ref, case, hints,
                              "the window of output (oh, ow) starts at (oh*stride, ow*stride) "
                              "of the zero-padded x; sum over c, kh, kw"))
    return passed(check, errors, cases)


def check_conv2d_naive_backward(fn, *, cases: int = 4, seed=None) -> float:
    """Grade ``fn(dy, x, w, b, stride, padding) -> (dx, dw, db)`` with a random upstream ``dy``.

    Compared with :func:`sescratch.ops.conv2d_backward` (float64, NumPy reference).
    """
    check, rng, errors = "check_conv2d_naive_backward", rng_for(seed), []
    for i in range(cases):
        x, w, b, stride, padding, case = _conv_case(rng, strided=i == 0, general=i == 1)
        y, cache = _conv(x, w, b, stride, padding)
        dy = rng.standard_normal(y.shape)
        with backend.use("numpy"):
            dx_ref, dw_ref, db_ref = ops.conv2d_backward(dy, cache)
        out = call(check, fn, dy.copy(), x.copy(), w.copy(), b.copy(), stride, padding)
        dx, dw, db = as_tuple(check, out, ("dx", "dw", "db"))
        with backend.use("numpy"):
            _, flipped = ops.conv2d_forward(x, w[:, :, ::-1, ::-1].copy(), b, stride=stride, padding=padding)
            dx_flipped = ops.conv2d_backward(dy, flipped)[0]
        errors.append(compare(check, "db", db, db_ref, case,
                              {"db sums dy over n, oh and ow, one value per output channel": dy.sum(axis=(0, 2, 3, 1))},
                              "db[k] = sum over n, oh, ow of dy[n, k, oh, ow]"))
        errors.append(compare(check, "dw", dw, dw_ref, case, None,
                              "dw[k, c, kh, kw] adds dy[n, k, oh, ow] * x_pad[n, c, oh*stride + kh, "
                              "ow*stride + kw] over n, oh, ow: every place the weight was used"))
        errors.append(compare(check, "dx", dx, dx_ref, case,
                              {"dx used the flipped kernel in the wrong place: scatter dy[n, k, oh, ow] * w[k] "
                               "back onto the window it came from, w as it is": dx_flipped},
                              "loop as in the forward and ADD dy[n, k, oh, ow] * w[k] into dx_pad's window "
                              "(windows overlap), then crop the padding away"))
    return passed(check, errors, cases)


def _one_hot_filters(C, KH, KW):
    """``C*KH*KW`` filters; filter ``(c, kh, kw)`` picks tap ``(kh, kw)`` of channel ``c``."""
    return np.eye(C * KH * KW).reshape(C * KH * KW, C, KH, KW)  # CKK,C,KH,KW


def check_im2col(fn, *, cases: int = 4, seed=None) -> float:
    """Grade ``fn(x, KH, KW, stride, padding) -> cols`` of shape (N, C*KH*KW, OH*OW).

    Row ``(c, kh, kw)`` (in that order), column ``oh * OW + ow`` holds
    ``x_pad[n, c, oh*stride + kh, ow*stride + kw]``: what a convolution with one-hot filters makes.
    """
    check, rng, errors = "check_im2col", rng_for(seed), []
    for i in range(cases):
        x, w, _, stride, padding, case = _conv_case(rng, strided=i == 0, general=i == 1)
        N, C, _, _ = x.shape
        KH, KW = w.shape[2:]
        y, _ = _conv(x, _one_hot_filters(C, KH, KW), None, stride, padding)  # N,CKK,OH,OW
        cols_ref = y.reshape(N, C * KH * KW, -1)  # N,CKK,OH*OW
        cols = call(check, fn, x.copy(), int(KH), int(KW), stride, padding)
        transposed = cols_ref.transpose(0, 2, 1)
        errors.append(compare(check, "cols", cols, cols_ref, f"{case}, KH={KH}, KW={KW}",
                              {"rows and columns are swapped: one COLUMN per receptive field, "
                               "shape (N, C*KH*KW, OH*OW)": transposed},
                              "row index = (c*KH + kh)*KW + kw, column index = oh*OW + ow; "
                              "pad x with zeros first"))
    return passed(check, errors, cases)


def check_col2im(fn, *, cases: int = 4, seed=None) -> float:
    """Grade ``fn(cols, x_shape, KH, KW, stride, padding) -> dx``, the adjoint of im2col.

    Every column entry is *added* back onto the pixel it was copied from (overlapping windows
    add up), then the padding is cropped: the input gradient of the one-hot convolution.
    The first case has windows that do not overlap, the second overlapping ones (3x3, stride 2).
    """
    check, rng, errors = "check_col2im", rng_for(seed), []
    for i in range(cases):
        x, w, _, stride, padding, case = _conv_case(rng, overlap=False if i == 0 else None, strided=i == 1,
                                                    general=i == 2)
        N, C, _, _ = x.shape
        KH, KW = w.shape[2:]
        y, cache = _conv(x, _one_hot_filters(C, KH, KW), None, stride, padding)
        dcols = rng.standard_normal(y.shape)  # N,CKK,OH,OW
        with backend.use("numpy"):
            dx_ref = ops.conv2d_backward(dcols, cache)[0]  # N,C,H,W
        dx = call(check, fn, dcols.reshape(N, C * KH * KW, -1).copy(), x.shape, int(KH), int(KW),
                  stride, padding)
        hint = ("overlapping windows must ADD (+=) into the image, not overwrite it (=)"
                if i > 0 else "put column (oh, ow)'s entry (c, kh, kw) at x_pad[n, c, oh*stride + kh, "
                "ow*stride + kw], then crop the padding")
        errors.append(compare(check, "dx", dx, dx_ref, f"{case}, KH={KH}, KW={KW}", None, hint))
    return passed(check, errors, cases)
