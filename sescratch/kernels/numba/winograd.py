"""Winograd convolution (Numba, CPU): the fast path for 3x3, stride 1, groups 1.

A 3x3 cross-correlation producing an m x m output tile from an (m+2) x (m+2) input tile ``d``
can be written

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A          (Lavin & Gray, 2016)

with constant matrices A, B, G: (m+2)^2 multiplications per tile and channel pair instead of
9 m^2. Two tile sizes are implemented, each in its own module of transforms with the same
functions: F(2x2, 3x3) (:mod:`.winograd_f2`, 16 per 4 outputs: 2.25x fewer than direct) and
F(4x4, 3x3) (:mod:`.winograd_f4`, 36 per 16 outputs: 4x fewer, slightly more rounding). Over a
batch the products become P independent matrix products, one per position ξ of the tile
(P = (m+2)^2):

    M[ξ] = V[ξ] @ U[ξ]      V[ξ] : (T, C) transformed tiles,  U[ξ] : (C, K) transformed weights,

T = N * TH * TW tiles (TH = ceil(OH / m), TW = ceil(OW / m)). The backward is the transpose of
each step, in reverse order: ``dM = A dY A^T`` per tile, ``dU = V^T @ dM`` and ``dV = dM @ U^T``
(P products each), ``dw = G^T dU G`` and ``dx = B dV B^T`` added back into the overlapping input
tiles (neighbouring tiles share 2 rows or columns). Output tiles that stick out of OH/OW are
computed and dropped (their dy is zero in the backward); the input tile beyond the padded image
reads zeros. The transforms only add, subtract and scale, so the results equal the direct
convolution up to rounding (tested against the NumPy reference, float64 <= 1e-10).

Which tile: :func:`tiling` takes F(4x4) unless its tiles waste outputs that F(2x2)'s do not
(a 14x14 output: 16x16 computed with 4x4 tiles, 14x14 with 2x2 ones) and the layer is too thin
or its weights too wide to make up for them; docs/benchmarks.md has the measurements behind it.

Layout. V and M keep channels last (t, c), and the products are (T x C) @ (C x K), the shape
BLAS prefers. Each kernel handles whole images, one band of tiles at a time (the transform
modules say how). The batch goes through in chunks of a few images, each chunk start to end on
one thread (:func:`sescratch.kernels.numba._scratch.map_chunks`): its tiles are still in cache
when the products read them, and its products are small enough to be single-threaded in BLAS.
"""
from __future__ import annotations

import numpy as np

from sescratch.kernels.numba import _scratch, winograd_f2, winograd_f4
from sescratch.kernels.numba._scratch import buffer, image_chunks, map_chunks, sum_shares
from sescratch.ops.window import conv_output_size

TILINGS = {2: winograd_f2, 4: winograd_f4}  # outputs per tile side -> its transforms


F4_MIN_CHANNELS = 32  # fewer: where 4x4 tiles waste outputs, F(2x2)'s simpler transforms win


def _weights_fit_l2(tiles, C, K, itemsize):
    """Whether the transformed weights U (tiles.POINTS, C, K) fit in the L2 cache."""
    return tiles.POINTS * C * K * itemsize <= _scratch.l2_or_assumed()


def tiling(OH, OW, C=None, K=None, itemsize=4):
    """The transforms for an OH x OW output, C -> K channels: F(4x4, 3x3) unless its 4x4 tiles
    cover over 25 % more outputs than F(2x2)'s 2x2 tiles; up to 35 % more (a 14x14 output) it
    still takes F(4x4) when C and K are at least F4_MIN_CHANNELS and its transformed weights fit
    in L2. Measured fwd + bwd (2-core Xeon, 2026-12-02): where F(4x4) covers 16-23 % more (18x18
    to 26x26) it takes 0.83-0.86x F(2x2)'s time; at 14x14 (31 % more) 0.92-1.03x for 32-64
    channels, 1.2-1.6x for 16 or 128-256. At 14x14 on a 2-core AMD EPYC Zen 5 (2026-12-04,
    batch 64-128): 0.78-0.81x for 32 channels, 0.76-0.86x for 64, on OpenBLAS's Haswell and
    SkylakeX kernels alike. Without C and K: the 25 % rule alone."""
    def covered(m):  # outputs computed by m x m tiles, the dropped ones included
        return -(-OH // m) * m * (-(-OW // m) * m)

    if covered(4) <= 1.25 * covered(2):
        return winograd_f4
    if (covered(4) <= 1.35 * covered(2) and C is not None and K is not None
            and min(C, K) >= F4_MIN_CHANNELS and _weights_fit_l2(winograd_f4, C, K, itemsize)):
        return winograd_f4
    return winograd_f2


WEIGHT_POINT_COST = 120  # multiply-adds of im2col's GEMM that one transformed weight point costs
BACKWARD_WEIGHT_POINT_COST = 250  # the same in the backward: two transforms and dU's product


def pays_off(N, OH, OW, C, K, itemsize, backward=False):
    """Whether Winograd beats im2col's GEMM for N images of OH x OW outputs, C -> K channels,
    in the forward or (``backward``) the backward.

    Per channel pair, its products spend P multiply-adds on each of the T = N * TH * TW tiles
    where im2col's spend 9 m^2, and its weights cost P points to transform forward (in the
    backward two P-point transforms and dU's P products) whatever the batch. While the
    transformed weights fit in L2 that cost is small (32 channels at 16x16, 16 tiles: Winograd
    still 0.7x im2col's time); beyond, Winograd pays off when the tiles' saving
    ``T * (9 m^2 - P)`` exceeds WEIGHT_POINT_COST * P (BACKWARD_WEIGHT_POINT_COST * P): forward
    from 40 tiles with F(4x4), 96 with F(2x2); backward from 84 and 200. Measured with C = K
    (2-core Xeon, L2 2 MiB, 2026-12-03), forward: 512 channels at 7x7 (4 tiles an image, 38 MB
    of transformed weights) Winograd took 4.1x im2col's time at batch 1, 0.9-1.4x at batch 8-12;
    256 at 14x14 with F(2x2) 1.5x at batch 1, 0.75-0.8x from batch 4; 128 at 28x28 with F(4x4)
    0.85-0.95x at batch 1. Fwd + bwd: 512 at 7x7 1.1x at batch 16, about 1.0x at 24, 0.8x at
    32; 256 at 14x14 1.2x at batch 3, 0.8-0.9x at 4-8."""
    tiles = tiling(OH, OW, C, K, itemsize)
    if _weights_fit_l2(tiles, C, K, itemsize):
        return True
    T = N * -(-OH // tiles.STEP) * -(-OW // tiles.STEP)
    cost = BACKWARD_WEIGHT_POINT_COST if backward else WEIGHT_POINT_COST
    return T * (9 * tiles.STEP ** 2 - tiles.POINTS) >= cost * tiles.POINTS


TILE_CACHE_MULTIPLE = 4  # a chunk's transformed tiles (V and M): at most this many L2 caches
MIN_TILE_ROWS = 64  # tiles per chunk at least: fewer make the products matrix-vector products


def _chunks(N, TH, TW, C, K, tile_bytes=0):
    """Image ranges whose products (TH*TW*images, C) @ (C, K) are each at most GEMM_SIZE and whose
    transformed tiles, ``tile_bytes`` per image (V and M), take at most TILE_CACHE_MULTIPLE times
    the L2 cache where its size is known. Measured fwd + bwd with 16 channels on a 2-core AMD EPYC
    (Zen 2, L2 512 KiB, 2026-12-02): chunks of 4-8 images (1.2-2.4 MB of tiles) took 0.85-0.88x
    the time of the GEMM rule's 21 at 32x32, 0.72-0.79x its 32 at 28x28; with 32 or 64 channels
    the GEMM rule's chunks were as fast as any. A chunk takes at least enough images for
    MIN_TILE_ROWS tiles: with one 4x4 tile an image and 512 channels, one-image chunks made every
    product a matrix-vector product (fwd + bwd at batch 128, same host: 2065 ms against 139)."""
    images = _scratch.GEMM_SIZE // max(1, TH * TW * C * K)
    l2 = _scratch.l2_cache_bytes()
    if tile_bytes and l2:
        images = min(images, TILE_CACHE_MULTIPLE * l2 // tile_bytes)
    images = max(images, -(-MIN_TILE_ROWS // max(1, TH * TW)))
    return image_chunks(N, 1, max(1, images))


def _tile_bytes(tiles, TH, TW, C, K, dtype):
    """Bytes of one image's transformed tiles, input (V) and output (M)."""
    return tiles.POINTS * TH * TW * (C + K) * np.dtype(dtype).itemsize


def _geometry(x, padding, step):
    (H, W), (PH, PW) = x.shape[2:], padding
    OH, OW = conv_output_size(H, 3, 1, PH), conv_output_size(W, 3, 1, PW)
    return OH, OW, -(-OH // step), -(-OW // step)


def _weight_transform(w, tiles):
    """U[ξ, c, k] = (G g G^T)[ξ] with g = w[k, c]: shape (P, C, K), in the calling thread's
    buffer "U" (valid until its next Winograd call): at 512 channels U is 38 MB, whose pages a
    new array faulted in on every call (fwd at batch 16: 20 ms against 16)."""
    K, C = w.shape[:2]
    U = buffer("U", (tiles.POINTS, C, K), w.dtype)
    tiles.weight_tiles(w, U)
    return U


def _transposed_for_blas(U):
    """U^T (P, K, C) for the products dV = dM @ U^T: a copy where U fits in L2 (BLAS reads it
    faster: 16 channels 0.35 against 0.61 ms a product), the transposed view beyond (512
    channels: the copy alone took 13 ms, the product from the view 13.1 against 26.5 with it;
    2-core Xeon, 2026-12-03)."""
    U_t = U.transpose(0, 2, 1)  # P,K,C
    return U_t if U.nbytes > _scratch.l2_or_assumed() else np.ascontiguousarray(U_t)


def _weight_transform_adjoint(dU, tiles):
    """dw[k, c] = G^T dU[:, c, k] G (dU as a tile): (P, C, K) -> (K, C, 3, 3)."""
    C, K = dU.shape[1:]
    dw = np.empty((K, C, 3, 3), dtype=dU.dtype)
    tiles.weight_tiles_adjoint(dU, dw)
    return dw


def winograd_forward(x, w, b, padding, tiles=None):
    """y = conv2d(x, w, b) for a 3x3 kernel, stride 1, groups 1: (N, K, OH, OW). ``tiles`` (a
    module of :data:`TILINGS`) defaults to :func:`tiling`'s choice."""
    (N, C), K = x.shape[:2], w.shape[0]
    tiles = tiles or tiling(*_geometry(x, padding, 1)[:2], C, K, x.itemsize)
    OH, OW, TH, TW = _geometry(x, padding, tiles.STEP)
    U = _weight_transform(w, tiles)  # P,C,K
    bias = np.zeros(K, dtype=x.dtype) if b is None else b
    y = np.empty((N, K, OH, OW), dtype=x.dtype)

    def chunk(n0, n1):  # images n0 .. n1 - 1, on one thread
        T = (n1 - n0) * TH * TW
        V = buffer("V", (tiles.POINTS, T, C), x.dtype)
        tiles.input_tiles(x, n0, *padding, TH, TW, V)
        M = np.matmul(V, U, out=buffer("M", (tiles.POINTS, T, K), x.dtype))  # P,T,K
        tiles.output_tiles(M, bias, n0, TH, TW, y)

    tile_bytes = _tile_bytes(tiles, TH, TW, C, K, x.dtype)
    map_chunks(chunk, _chunks(N, TH, TW, C, K, tile_bytes))
    return y


def winograd_backward(dy, x, w, padding, has_bias, tiles=None):
    """(dx, dw, db) of :func:`winograd_forward`, each step the transpose of a forward step."""
    (N, C), K = x.shape[:2], w.shape[0]
    tiles = tiles or tiling(*_geometry(x, padding, 1)[:2], C, K, x.itemsize)
    OH, OW, TH, TW = _geometry(x, padding, tiles.STEP)
    U_t = _transposed_for_blas(_weight_transform(w, tiles))  # P,K,C
    plane_sums = np.empty((N if has_bias else 0, K), dtype=np.float64)  # db's per-image shares
    dx = np.empty_like(x)

    chunks = _chunks(N, TH, TW, C, K, _tile_bytes(tiles, TH, TW, C, K, x.dtype))
    # one chunk: its dU is the whole, in this thread's buffer (38 MB at 512 channels, whose pages
    # a new array faulted in on every call: 83 -> 38 ms at batch 16); else a new array each
    dU_out = buffer("dU", (tiles.POINTS, C, K), x.dtype) if len(chunks) == 1 else None

    def chunk(n0, n1):  # images n0 .. n1 - 1, on one thread; returns their share of dU
        T = (n1 - n0) * TH * TW
        dM = buffer("M", (tiles.POINTS, T, K), x.dtype)
        tiles.output_tiles_adjoint(dy, n0, TH, TW, dM, plane_sums)
        V = buffer("V", (tiles.POINTS, T, C), x.dtype)
        tiles.input_tiles(x, n0, *padding, TH, TW, V)  # recomputed, not kept from the forward
        dU = np.matmul(V.transpose(0, 2, 1), dM, out=dU_out)  # P,C,K
        dV = np.matmul(dM, U_t, out=V)  # P,T,C (in V's memory)
        tiles.input_tiles_adjoint(dV, n0, *padding, TH, TW, dx)
        return dU

    dU = sum_shares(map_chunks(chunk, chunks))  # P,C,K
    db = plane_sums.sum(axis=0).astype(dy.dtype) if has_bias else None
    return dx, _weight_transform_adjoint(dU, tiles), db
