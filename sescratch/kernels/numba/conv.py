"""conv2d kernels (Numba, CPU): im2col / col2im around BLAS, and a Winograd fast path.

Kernels ``conv2d_forward`` and ``conv2d_backward``, same arguments and results as
``sescratch.ops.conv2d_forward_reference`` / ``conv2d_backward_reference`` (C-contiguous NCHW
arrays in, new arrays out):

- ``conv2d_forward(x, w, b, stride, padding, groups) -> y``
- ``conv2d_backward(dy, x, w, stride, padding, groups, has_bias) -> (dx, dw, db)``

Three strategies:

* 3x3 kernels with stride 1 and one group (every 3x3 conv of a CIFAR ResNet but the two that
  downsample, and the first) use Winograd F(4x4, 3x3), or F(2x2, 3x3) where 4x4 tiles would
  waste outputs (:mod:`sescratch.kernels.numba.winograd`): 4x (2.25x) fewer multiplications, and
  the transformed tiles are 2.25x (4x) the input instead of im2col's 9x. Its weights are
  transformed on every call, whatever the batch: where they exceed L2 and the call has few
  tiles (one 7x7 image with 512 channels), im2col takes the layer (:func:`.winograd.pays_off`).
* With fewer than MIN_WINOGRAD_CHANNELS input channels (a network's first layer, C = 1 or 3) the
  Winograd products would be C deep and cost more than they save, and im2col's as thin: those
  3x3 stride-1 convolutions are computed directly, vectorised over the pixels of a flat padded
  grid (:mod:`sescratch.kernels.numba.direct3x3`; no BLAS).
* Everything else uses im2col in the layout BLAS wants: a matrix ``cols`` of shape
  (C*KH*KW, images*OH*OW), rows ordered (c, kh, kw) so that group g's rows are one contiguous
  block, columns ordered (n, oh, ow). ``y_mat = w_mat @ cols`` per group is a (batched) GEMM;
  small kernels move ``y_mat`` (K, images*OH*OW) into NCHW and back. col2im walks the image
  planes, each written from its own columns only.

  With one group, and OpenBLAS kept on the calling thread (:mod:`sescratch.kernels.numba._scratch`),
  im2col is channels last instead (:mod:`sescratch.kernels.numba.im2row`): every receptive field
  a row of KH runs of KW*C contiguous values, each image's products written straight into and
  read straight out of the NCHW arrays; 1x1 stride-1 convs multiply the images in place. It
  reorders the weights on every call: a forward with weights beyond L2 and few output pixels
  takes the columns instead (:func:`_rows_pay_off_forward`). On the
  stride-2 convs of a CIFAR ResNet this halved the time of a forward + backward. 1x1 convs
  without padding in several groups (ShuffleNet's) multiply each group of the images in place
  (:mod:`sescratch.kernels.numba.grouped_pointwise`).

Both go through the batch in chunks of a few images, each chunk start to end on one thread, in
buffers kept between calls (:mod:`sescratch.kernels.numba._scratch`; chunks write disjoint images
and return their share of dw and db, so no atomics are needed). The columns (or tiles) are rebuilt
in the backward rather than kept from the forward: that costs one more im2col but keeps the
memory of a training step near PyTorch's (the columns are up to KH*KW times the input).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sescratch.kernels.numba._scratch import (
    blas_controllable,
    buffer,
    column_blocks,
    image_chunks,
    map_chunks,
    sum_shares,
)
from sescratch.kernels.numba import _scratch, direct3x3, grouped_pointwise
from sescratch.kernels.numba.im2row import im2row_backward, im2row_forward, pointwise
from sescratch.kernels.numba.winograd import pays_off as winograd_pays_off
from sescratch.kernels.numba.winograd import winograd_backward, winograd_forward
from sescratch.ops.window import conv_output_size

__all__ = ["conv2d_forward", "conv2d_backward"]


@njit(inline="always")
def _phase_columns(W, KW, SW, PW, OW):
    """Columns per phase of the split padded image: what the taps read and the image reaches."""
    return max(OW + (KW - 1) // SW, (PW + W - 1) // SW + 1)


@njit(inline="always")
def _image_columns(p, SW, PW, W):
    """The q of phase p whose column j = SW*q + p - PW lies inside the image: range(q0, q1)."""
    return (PW - p + SW - 1) // SW, (PW + W - 1 - p) // SW + 1


@njit(inline="always")
def _gather(dst, src, step, count):
    """dst[q] = src[step*q] for q < count."""
    for q in range(count):
        dst[q] = src[step * q]


@njit(inline="always")
def _scatter(dst, src, step, count):
    """dst[step*q] = src[q] for q < count."""
    for q in range(count):
        dst[step * q] = src[q]


@njit(inline="always")
def _split_phases(a, n, PH, PW, SW, ph):
    """``ph[c, PH + i, p, q] = a[n, c, i, SW*q + p - PW]`` for the image's columns; the rest of
    ph (the padding) is left as it is. Strides 1 and 2 go to the copy as literals: with a stride
    known only at run time LLVM does not vectorise it. SE-ResNeXt-50's grouped 3x3 convs (2-core
    Xeon, 2026-12-03): 128 channels at 56x56, 32 groups, batch 8, fwd + bwd 29.4 -> 23.1 ms;
    all of them in a training step at batch 8 0.47 -> 0.43 s."""
    N, C, H, W = a.shape
    for c in range(C):
        for i in range(H):
            for p in range(SW):
                q0, q1 = _image_columns(p, SW, PW, W)
                dst, src = ph[c, PH + i, p, q0:q1], a[n, c, i, SW * q0 + p - PW:]
                if SW == 1:
                    _gather(dst, src, 1, q1 - q0)
                elif SW == 2:
                    _gather(dst, src, 2, q1 - q0)
                else:
                    _gather(dst, src, SW, q1 - q0)


@njit(inline="always")
def _merge_phases(ph, PH, PW, SW, a, n):
    """``a[n, c, i, SW*q + p - PW] = ph[c, PH + i, p, q]``: the inverse of :func:`_split_phases`,
    cropped to the image."""
    N, C, H, W = a.shape
    for c in range(C):
        for i in range(H):
            for p in range(SW):
                q0, q1 = _image_columns(p, SW, PW, W)
                dst, src = a[n, c, i, SW * q0 + p - PW:], ph[c, PH + i, p, q0:q1]
                if SW == 1:
                    _scatter(dst, src, 1, q1 - q0)
                elif SW == 2:
                    _scatter(dst, src, 2, q1 - q0)
                else:
                    _scatter(dst, src, SW, q1 - q0)


@njit(nogil=True, cache=True)
def _im2col(x, n0, KH, KW, SH, SW, PH, PW, OH, OW, cols):
    """cols[(c*KH + kh)*KW + kw, (m*OH + oh)*OW + ow] = x_pad[n0 + m, c, oh*SH + kh, ow*SW + kw].

    Each image is first split by column phase, ``ph[c, r, p, q] = x_pad[c, r, SW*q + p]``, so
    that tap kw reads phase kw % SW from q = ow + kw // SW on: every row of cols is then made
    of OH contiguous runs of OW values, whatever the stride."""
    N, C, H, W = x.shape
    images = cols.shape[1] // (OH * OW)
    Q = _phase_columns(W, KW, SW, PW, OW)
    ph = np.zeros((C, H + 2 * PH, SW, Q), dtype=x.dtype)  # the padding stays zero
    for m in range(images):
        _split_phases(x, n0 + m, PH, PW, SW, ph)
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    row = cols[(c * KH + kh) * KW + kw, m * OH * OW:]
                    for oh in range(OH):
                        src, dst = ph[c, oh * SH + kh, kw % SW, kw // SW:], row[oh * OW:]
                        for ow in range(OW):
                            dst[ow] = src[ow]


@njit(nogil=True, cache=True)
def _col2im(dcols, n0, KH, KW, SH, SW, PH, PW, OH, OW, dx):
    """dx[n0 + m] = the adjoint of _im2col: every column entry added back where it was copied
    from (into the split padded image, then cropped out of it)."""
    N, C, H, W = dx.shape
    images = dcols.shape[1] // (OH * OW)
    Q = _phase_columns(W, KW, SW, PW, OW)
    ph = np.empty((C, H + 2 * PH, SW, Q), dtype=dx.dtype)
    for m in range(images):
        ph[:] = 0
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    row = dcols[(c * KH + kh) * KW + kw, m * OH * OW:]
                    for oh in range(OH):
                        dst, src = ph[c, oh * SH + kh, kw % SW, kw // SW:], row[oh * OW:]
                        for ow in range(OW):
                            dst[ow] += src[ow]
        _merge_phases(ph, PH, PW, SW, dx, n0 + m)


@njit(nogil=True, cache=True)
def _to_images(y_mat, bias, n0, y):
    """y[n0 + m, k, p] = y_mat[k, m*P + p] + bias[k]: (K, images*P) -> NCHW."""
    N, K, P = y.shape
    images = y_mat.shape[1] // P
    for task in range(images * K):
        m, k = task // K, task % K
        for p in range(P):
            y[n0 + m, k, p] = y_mat[k, m * P + p] + bias[k]


@njit(nogil=True, cache=True)
def _to_channel_major(dy, n0, dy_mat, sums):
    """dy_mat[k, m*P + p] = dy[n0 + m, k, p]: NCHW -> (K, images*P); sums[k] += their sum."""
    N, K, P = dy.shape
    images = dy_mat.shape[1] // P
    for k in range(K):
        total = 0.0
        for m in range(images):
            for p in range(P):
                v = dy[n0 + m, k, p]
                dy_mat[k, m * P + p] = v
                total += v
        sums[k] += total


# Below this many input channels (a network's first layer) the direct kernel beats Winograd,
# whose transforms cost more than its C-deep products save (docs/benchmarks.md).
MIN_WINOGRAD_CHANNELS = 6


def _winograd_applies(w, stride, groups):
    return direct3x3.applies(w, stride, groups) and w.shape[1] >= MIN_WINOGRAD_CHANNELS


def _winograd_pays_off(x, w, stride, padding, backward=False):
    """For a conv Winograd applies to: whether it beats im2col here (:func:`.winograd.pays_off`)."""
    OH, OW = _geometry(x, w, stride, padding)
    return winograd_pays_off(x.shape[0], OH, OW, *w.shape[1::-1], x.itemsize, backward)


def _direct_applies(w, stride, groups):
    return direct3x3.applies(w, stride, groups) and w.shape[1] < MIN_WINOGRAD_CHANNELS


def _geometry(x, w, stride, padding):
    (H, W), (KH, KW), (SH, SW), (PH, PW) = x.shape[2:], w.shape[2:], stride, padding
    return conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)


def _blocks(P, rows, inner):
    """Column ranges of a chunk's products: whole where map_chunks keeps BLAS on the calling
    thread, else pieces BLAS runs there by itself (:func:`._scratch.column_blocks`)."""
    return [(0, P)] if blas_controllable() else column_blocks(P, rows, inner)


MIN_REORDERED_PIXELS = 400  # output pixels a call below which large weights skip im2row (forward)


def _rows_pay_off_forward(x, w, stride, padding, OH, OW):
    """Whether the forward takes im2row (channels last) rather than the columns (C, KH, KW first).

    im2row reorders the weights to (K, KH*KW*C) on every call; the columns multiply them as they
    are. For weights beyond L2 and fewer than MIN_REORDERED_PIXELS output pixels the strided copy
    costs more than the rows' layout saves: measured forward, 512 -> 512 channels at 7x7 (9.4 MB
    of weights), the columns took 0.49x im2row's time at batch 1, 0.81x at batch 8 (2-core Xeon,
    L2 2 MiB, 2026-12-03); 256 -> 256 at 14x14, batch 1, 0.76x; with 64 channels (147 KB)
    im2row stayed 1.5-1.9x faster. In the backward both paths copy the weights: im2row's kept.
    A 1x1 conv without padding reorders nothing and multiplies the images in place."""
    if pointwise(w, stride, padding) or x.shape[0] * OH * OW >= MIN_REORDERED_PIXELS:
        return True
    return w.nbytes <= _scratch.l2_or_assumed()


MIN_CHUNK_PIXELS = 256  # output pixels per chunk at least: its products' inner size in dw


def _chunks(x, w, OH, OW):
    """Image ranges whose columns take about CHUNK_BYTES, but budgeted for MIN_CHUNK_PIXELS
    output pixels at least (the threads' even shares may cut that a little): where the images are
    small and the channels many (512 at 7x7: 903 KB of columns an image), one-image chunks made
    each chunk's dw share a (512, 49) @ (49, 4608) product written to its own 9.4 MB array, then
    summed. SE-ResNet-50's three such layers, fwd + bwd at batch 8 (2-core Xeon, 2026-12-03):
    189 -> 134 ms. The CIFAR and Fashion-MNIST ResNets' chunks already hold more pixels."""
    per_image = x.shape[1] * w.shape[2] * w.shape[3] * OH * OW * x.itemsize
    images = -(-MIN_CHUNK_PIXELS // max(1, OH * OW))
    return image_chunks(x.shape[0], per_image, max(_scratch.CHUNK_BYTES, images * per_image))


def conv2d_forward(x, w, b, stride, padding, groups):
    """y (N, K, OH, OW) of :func:`sescratch.ops.conv2d_forward`."""
    if _winograd_applies(w, stride, groups) and _winograd_pays_off(x, w, stride, padding):
        return winograd_forward(x, w, b, padding)
    if _direct_applies(w, stride, groups):
        return direct3x3.direct_forward(x, w, b, padding)
    N, C = x.shape[:2]
    K, Cg, KH, KW = w.shape
    G, R = groups, Cg * KH * KW  # R: rows of the columns per group
    OH, OW = _geometry(x, w, stride, padding)
    if G == 1 and blas_controllable() and _rows_pay_off_forward(x, w, stride, padding, OH, OW):
        return im2row_forward(x, w, b, stride, padding, OH, OW, _chunks(x, w, OH, OW))
    if grouped_pointwise.applies(w, stride, padding, G) and blas_controllable():
        return grouped_pointwise.grouped_pointwise_forward(x, w, b, stride, G, OH, OW, _chunks(x, w, OH, OW))
    w_mat = w.reshape(G, K // G, R)  # G,K/G,R
    bias = np.zeros(K, dtype=x.dtype) if b is None else b
    y = np.empty((N, K, OH, OW), dtype=x.dtype)

    def chunk(n0, n1):  # images n0 .. n1 - 1, on one thread
        P = (n1 - n0) * OH * OW
        cols = buffer("cols", (G, R, P), x.dtype)  # G,R,images*OH*OW
        _im2col(x, n0, KH, KW, *stride, *padding, OH, OW, cols.reshape(G * R, P))
        y_mat = buffer("y_mat", (G, K // G, P), x.dtype)  # G,K/G,images*OH*OW
        for p0, p1 in _blocks(P, K // G, R):
            np.matmul(w_mat, cols[:, :, p0:p1], out=y_mat[:, :, p0:p1])
        _to_images(y_mat.reshape(K, P), bias, n0, y.reshape(N, K, OH * OW))

    map_chunks(chunk, _chunks(x, w, OH, OW))
    return y


def conv2d_backward(dy, x, w, stride, padding, groups, has_bias):
    """(dx, dw, db) of :func:`sescratch.ops.conv2d_backward`; db is None without a bias."""
    if _winograd_applies(w, stride, groups) and _winograd_pays_off(x, w, stride, padding, backward=True):
        return winograd_backward(dy, x, w, padding, has_bias)
    if _direct_applies(w, stride, groups):
        return direct3x3.direct_backward(dy, x, w, padding, has_bias)
    N, C = x.shape[:2]
    K, Cg, KH, KW = w.shape
    G, R = groups, Cg * KH * KW
    OH, OW = _geometry(x, w, stride, padding)
    if G == 1 and blas_controllable():
        return im2row_backward(dy, x, w, stride, padding, has_bias, OH, OW, _chunks(x, w, OH, OW))
    if grouped_pointwise.applies(w, stride, padding, G) and blas_controllable():
        return grouped_pointwise.grouped_pointwise_backward(dy, x, w, stride, G, has_bias, _chunks(x, w, OH, OW))
    w_mat_t = np.ascontiguousarray(w.reshape(G, K // G, R).transpose(0, 2, 1))  # G,R,K/G
    dx = np.empty_like(x)

    def chunk(n0, n1):  # images n0 .. n1 - 1, on one thread; returns their share of dw and db
        P = (n1 - n0) * OH * OW
        dy_mat = buffer("y_mat", (K, P), dy.dtype)
        sums = np.zeros(K, dtype=np.float64)
        _to_channel_major(dy.reshape(N, K, OH * OW), n0, dy_mat, sums)
        dy_mat = dy_mat.reshape(G, K // G, P)  # G,K/G,images*OH*OW
        cols = buffer("cols", (G, R, P), x.dtype)
        _im2col(x, n0, KH, KW, *stride, *padding, OH, OW, cols.reshape(G * R, P))
        dw = np.zeros((G, K // G, R), dtype=x.dtype)
        blocks = _blocks(P, K // G, R)
        for p0, p1 in blocks:
            dw += np.matmul(dy_mat[:, :, p0:p1], cols[:, :, p0:p1].transpose(0, 2, 1))  # G,K/G,R
        for p0, p1 in blocks:  # dw is done: the columns' memory now takes their gradient
            np.matmul(w_mat_t, dy_mat[:, :, p0:p1], out=cols[:, :, p0:p1])  # G,R,images*OH*OW
        _col2im(cols.reshape(G * R, P), n0, KH, KW, *stride, *padding, OH, OW, dx)
        return dw, sums

    shares = map_chunks(chunk, _chunks(x, w, OH, OW))
    dw = sum_shares([share[0] for share in shares]).reshape(w.shape)
    db = sum_shares([share[1] for share in shares]).astype(dy.dtype) if has_bias else None
    return dx, dw, db


