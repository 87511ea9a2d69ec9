"""conv2d for one group with im2col channels last (Numba, CPU).

:mod:`sescratch.kernels.numba.conv` runs it for every convolution Winograd does not take (stride
2, 1x1, other kernels, few input channels) when OpenBLAS can be kept on the calling thread.

``rows[(m*OH + oh)*OW + ow, (kh*KW + kw)*C + c] = x_pad[n0 + m, c, oh*SH + kh, ow*SW + kw]``:
each image is first transposed into a zero-padded (H, W*C) scratch, then every receptive field
becomes a row of KH runs of KW*C contiguous values, copied with unit stride whatever the conv's
stride. With the weights reordered to ``w_mat`` (K, KH*KW*C) once, each image's products read
and write the NCHW arrays in place::

    y[n] = w_mat @ rows[n].T        dw = sum_n dy[n] @ rows[n]        drows[n] = dy[n].T @ w_mat

and dx is drows added back where each value was copied from (``_row2im``, the adjoint of
``_im2row``). Where an image's products are small (:func:`_chunk_products`) the chunk's rows are
multiplied at once instead, ``y_rows = rows @ w_mat.T`` then transposed into NCHW (and in the
backward ``dy`` transposed once for ``dw = dy_rows.T @ rows`` and ``drows = dy_rows @ w_mat``).
A 1x1 convolution without padding needs no rows: ``y[n] = w_mat @ x[n]``, x[n] subsampled first
for a stride above 1 (its gradient scattered back onto the sampled pixels).
The chunks of images run on a few threads (:func:`sescratch.kernels.numba._scratch.map_chunks`).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sescratch.kernels.numba._scratch import buffer, map_chunks, sum_shares

__all__ = ["im2row_forward", "im2row_backward"]


@njit(nogil=True, cache=True)
def _to_channels_last(x, n, PH, PW, pad):
    """pad[PH + i, (PW + j)*C + c] = x[n, c, i, j]; the border of ``pad`` is left as it is (zero)."""
    N, C, H, W = x.shape
    for i in range(H):
        for j in range(W):
            px = pad[PH + i, (PW + j) * C:(PW + j + 1) * C]
            for c in range(C):
                px[c] = x[n, c, i, j]


@njit(nogil=True, cache=True)
def _im2row(x, n0, KH, KW, SH, SW, PH, PW, OH, OW, rows):
    """rows[(m*OH + oh)*OW + ow, (kh*KW + kw)*C + c] = x_pad[n0 + m, c, oh*SH + kh, ow*SW + kw]:
    im2col channels last, each receptive field a row made of KH runs of KW*C contiguous values."""
    N, C, H, W = x.shape
    run = KW * C
    pad = np.zeros((H + 2 * PH, (W + 2 * PW) * C), dtype=x.dtype)  # x_pad[n], channels last
    for m in range(rows.shape[0] // (OH * OW)):
        _to_channels_last(x, n0 + m, PH, PW, pad)
        for oh in range(OH):
            for ow in range(OW):
                row = rows[(m * OH + oh) * OW + ow]
                for kh in range(KH):
                    src = pad[oh * SH + kh, ow * SW * C:ow * SW * C + run]
                    dst = row[kh * run:(kh + 1) * run]
                    for q in range(run):
                        dst[q] = src[q]


@njit(nogil=True, cache=True)
def _row2im(drows, n0, KH, KW, SH, SW, PH, PW, OH, OW, dx):
    """dx[n0 + m] = the adjoint of _im2row: every row entry added back where it was copied from."""
    N, C, H, W = dx.shape
    run = KW * C
    pad = np.empty((H + 2 * PH, (W + 2 * PW) * C), dtype=dx.dtype)  # d x_pad[n], channels last
    for m in range(drows.shape[0] // (OH * OW)):
        pad[:] = 0
        for oh in range(OH):
            for ow in range(OW):
                row = drows[(m * OH + oh) * OW + ow]
                for kh in range(KH):
                    dst = pad[oh * SH + kh, ow * SW * C:ow * SW * C + run]
                    src = row[kh * run:(kh + 1) * run]
                    for q in range(run):
                        dst[q] += src[q]
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    dx[n0 + m, c, i, j] = pad[PH + i, (PW + j) * C + c]


def pointwise(w, stride, padding):
    """A 1x1 convolution without padding: its columns are the image itself, subsampled by the
    stride (a CIFAR ResNet's stride-2 projection shortcuts: 1.5-2x faster than through rows)."""
    return w.shape[2:] == (1, 1) and padding == (0, 0)


def _subsampled(x, stride):
    """x[:, :, ::SH, ::SW] as a C-contiguous (N, C, OH*OW) array (x itself for stride 1)."""
    N, C = x.shape[:2]
    return np.ascontiguousarray(x[:, :, ::stride[0], ::stride[1]]).reshape(N, C, -1)


def _chunk_products(S, R):
    """Multiply a chunk's rows at once, ``rows (images*S, R) @ w_mat.T``, instead of image by image?

    An image's product (K, R) @ (R, S) is small when the output is small: for the stride-2 3x3
    convs of a CIFAR ResNet (S = 64 or 256, R = 144 or 288) one product over the whole chunk,
    then a transposition into NCHW, was 15-20 % faster forward (2-core Xeon, 2026-12-02); with
    few rows per field (R < 128: the stem, 1x1 shortcuts) or large outputs it was slower.
    """
    return S <= 256 and R >= 128


def _chunk_products_backward(S, R):
    """The same for the backward (dy transposed to (images*S, K) once, then dw and drows each one
    product): only the smallest outputs gained (32 -> 64, 16x16 -> 8x8: 4.4 -> 3.9 ms)."""
    return S <= 64 and R >= 256


def _pixels_first(S, K, C):
    """The dw of a chunk of 1x1 convs as one product over all its pixels, dy and x copied to
    channel-major first, instead of a (K, C) product per image, summed? Yes where an image's
    (K, C) share is larger than its dy and x: many channels, few pixels, as in SE-ResNet-50's last
    stages, where each image made a (2048, 49) @ (49, 512) product into a 4 MB array of its own.
    Fwd + bwd of those layers at batch 8 (2-core Xeon, 2026-12-03): 2048 <- 512 at 7x7 70 -> 61
    ms (three layers), 512 <- 2048 63 -> 51, 2048 <- 1024 stride 2 76 -> 57. The 1x1 shortcuts
    of the CIFAR and Fashion-MNIST ResNets (16 -> 32 at 16x16, 32 -> 64 at 8x8 or 7x7) keep the
    per-image products."""
    return K * C > (K + C) * S


def im2row_forward(x, w, b, stride, padding, OH, OW, chunks):
    """conv2d_forward for groups == 1, the images in ``chunks``: y[n] = w_mat @ rows[n].T, one
    product per image written into y directly (a 1x1 conv reads x[n], subsampled by the stride)."""
    N, C, H, W = x.shape
    K, S = w.shape[0], OH * OW
    y = np.empty((N, K, OH, OW), dtype=x.dtype)
    y3 = y.reshape(N, K, S)
    pointwise_conv = pointwise(w, stride, padding)
    if pointwise_conv:
        w_mat, x3 = w.reshape(K, C), _subsampled(x, stride)  # K,C and N,C,OH*OW
    else:
        w_mat = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(K, -1)  # K,KH*KW*C
    whole_chunk = not pointwise_conv and _chunk_products(S, w_mat.shape[1])

    def chunk(n0, n1):  # images n0 .. n1 - 1, on one thread
        if pointwise_conv:
            np.matmul(w_mat, x3[n0:n1], out=y3[n0:n1])  # images,K,H*W
        else:
            rows = buffer("cols", ((n1 - n0) * S, w_mat.shape[1]), x.dtype)  # images*OH*OW,R
            _im2row(x, n0, *w.shape[2:], *stride, *padding, OH, OW, rows)
            if whole_chunk:
                y_rows = np.matmul(rows, w_mat.T, out=buffer("y_mat", (rows.shape[0], K), x.dtype))  # images*S,K
                y3[n0:n1] = y_rows.reshape(n1 - n0, S, K).transpose(0, 2, 1)  # images,K,S
            else:
                np.matmul(w_mat, rows.reshape(n1 - n0, S, -1).transpose(0, 2, 1), out=y3[n0:n1])
        if b is not None:
            y3[n0:n1] += b[:, None]

    map_chunks(chunk, chunks)
    return y


def im2row_backward(dy, x, w, stride, padding, has_bias, OH, OW, chunks):
    """conv2d_backward for groups == 1, the images in ``chunks``: dw = sum_n dy[n] @ rows[n],
    drows[n] = dy[n].T @ w_mat, then dx from drows (the products read dy in place)."""
    N, C, H, W = x.shape
    K, S = w.shape[0], OH * OW
    dy3 = dy.reshape(N, K, S)
    pointwise_conv = pointwise(w, stride, padding)
    strided = stride != (1, 1)
    dx = np.zeros_like(x) if pointwise_conv and strided else np.empty_like(x)  # strided: only the sampled pixels get a gradient
    if pointwise_conv:
        w_mat_t, x3 = np.ascontiguousarray(w.reshape(K, C).T), _subsampled(x, stride)  # C,K and N,C,OH*OW
        dx3 = np.empty((N, C, S), dtype=x.dtype) if strided else dx.reshape(N, C, S)  # N,C,OH*OW
    else:
        w_mat = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(K, -1)  # K,KH*KW*C
    whole_chunk = not pointwise_conv and _chunk_products_backward(S, w_mat.shape[1])

    def chunk(n0, n1):  # images n0 .. n1 - 1, on one thread; returns their share of dw
        if pointwise_conv:
            np.matmul(w_mat_t, dy3[n0:n1], out=dx3[n0:n1])  # images,C,H*W
            if not _pixels_first(S, K, C):
                return np.matmul(dy3[n0:n1], x3[n0:n1].transpose(0, 2, 1)).sum(axis=0)  # K,C
            dy_k = buffer("y_mat", (K, n1 - n0, S), dy.dtype)  # K,images,OH*OW: channel-major
            dy_k[...] = dy3[n0:n1].transpose(1, 0, 2)
            x_c = buffer("cols", (C, n1 - n0, S), x.dtype)  # C,images,OH*OW
            x_c[...] = x3[n0:n1].transpose(1, 0, 2)
            return dy_k.reshape(K, -1) @ x_c.reshape(C, -1).T  # K,C: one product over the pixels
        rows = buffer("cols", ((n1 - n0) * S, w_mat.shape[1]), x.dtype)  # images*OH*OW,R
        _im2row(x, n0, *w.shape[2:], *stride, *padding, OH, OW, rows)
        per_image = rows.reshape(n1 - n0, S, -1)  # images,OH*OW,R
        if whole_chunk:
            dy_rows = buffer("y_mat", (rows.shape[0], K), dy.dtype)  # images*S,K
            dy_rows.reshape(n1 - n0, S, K)[...] = dy3[n0:n1].transpose(0, 2, 1)
            dw = dy_rows.T @ rows  # K,R
            np.matmul(dy_rows, w_mat, out=rows)  # drows, in the rows' memory
        else:
            dw = np.matmul(dy3[n0:n1], per_image).sum(axis=0)  # K,R
            np.matmul(dy3[n0:n1].transpose(0, 2, 1), w_mat, out=per_image)  # drows, in the rows' memory
        _row2im(rows, n0, *w.shape[2:], *stride, *padding, OH, OW, dx)
        return dw

    dw = sum_shares(map_chunks(chunk, chunks))  # K,R
    if pointwise_conv and strided:
        dx[:, :, ::stride[0], ::stride[1]] = dx3.reshape(N, C, OH, OW)
    if not pointwise_conv:
        dw = dw.reshape(K, *w.shape[2:], C).transpose(0, 3, 1, 2)  # K,C,KH,KW
    dw = np.ascontiguousarray(dw).reshape(w.shape)
    db = dy3.sum(axis=(0, 2), dtype=np.float64).astype(dy.dtype) if has_bias else None  # K
    return dx, dw, db
