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
``_im2row``). A 1x1 convolution with stride 1 and no padding needs no rows: ``y[n] = w_mat @ x[n]``.
The chunks of images run on a few threads (:func:`sescratch.kernels.numba._scratch.map_chunks`).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sescratch.kernels.numba._scratch import buffer, map_chunks

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


def _pointwise(w, stride, padding):
    """A 1x1 convolution with stride 1 and no padding: its columns are the image itself."""
    return w.shape[2:] == (1, 1) and stride == (1, 1) and padding == (0, 0)


def im2row_forward(x, w, b, stride, padding, OH, OW, chunks):
    """conv2d_forward for groups == 1, the images in ``chunks``: y[n] = w_mat @ rows[n].T, one
    product per image written into y directly (a 1x1 stride-1 conv reads x[n] itself)."""
    N, C, H, W = x.shape
    K, S = w.shape[0], OH * OW
    y = np.empty((N, K, OH, OW), dtype=x.dtype)
    y3 = y.reshape(N, K, S)
    if _pointwise(w, stride, padding):
        w_mat, x3 = w.reshape(K, C), x.reshape(N, C, S)  # K,C and N,C,H*W
    else:
        w_mat = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(K, -1)  # K,KH*KW*C

    def chunk(n0, n1):  # images n0 .. n1 - 1, on one thread
        if _pointwise(w, stride, padding):
            np.matmul(w_mat, x3[n0:n1], out=y3[n0:n1])  # images,K,H*W
        else:
            rows = buffer("cols", ((n1 - n0) * S, w_mat.shape[1]), x.dtype)  # images*OH*OW,R
            _im2row(x, n0, *w.shape[2:], *stride, *padding, OH, OW, rows)
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
    dx = np.empty_like(x)
    pointwise = _pointwise(w, stride, padding)
    if pointwise:
        w_mat_t, x3, dx3 = np.ascontiguousarray(w.reshape(K, C).T), x.reshape(N, C, S), dx.reshape(N, C, S)
    else:
        w_mat = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(K, -1)  # K,KH*KW*C

    def chunk(n0, n1):  # images n0 .. n1 - 1, on one thread; returns their share of dw
        if pointwise:
            np.matmul(w_mat_t, dy3[n0:n1], out=dx3[n0:n1])  # images,C,H*W
            return np.matmul(dy3[n0:n1], x3[n0:n1].transpose(0, 2, 1)).sum(axis=0)  # K,C
        rows = buffer("cols", ((n1 - n0) * S, w_mat.shape[1]), x.dtype)  # images*OH*OW,R
        _im2row(x, n0, *w.shape[2:], *stride, *padding, OH, OW, rows)
        per_image = rows.reshape(n1 - n0, S, -1)  # images,OH*OW,R
        dw = np.matmul(dy3[n0:n1], per_image).sum(axis=0)  # K,R
        np.matmul(dy3[n0:n1].transpose(0, 2, 1), w_mat, out=per_image)  # drows, in the rows' memory
        _row2im(rows, n0, *w.shape[2:], *stride, *padding, OH, OW, dx)
        return dw

    dw = sum(map_chunks(chunk, chunks))  # K,R
    if not pointwise:
        dw = dw.reshape(K, *w.shape[2:], C).transpose(0, 3, 1, 2)  # K,C,KH,KW
    dw = np.ascontiguousarray(dw).reshape(w.shape)
    db = dy3.sum(axis=(0, 2), dtype=np.float64).astype(dy.dtype) if has_bias else None  # K
    return dx, dw, db
