"""Direct 3x3 stride-1 convolution on a flat padded grid (Numba, CPU): a network's first layer.

With few input channels (an RGB or grey image) the im2col matrix is as deep as the filter,
C*9 = 27 or 9, and its products are thin: the stem of a CIFAR ResNet spent half its forward
copying the image into rows and the other half in a (16 x 27) @ (27 x 1024) product per image
at a third of BLAS's peak. Winograd's transforms cost more than its C-deep products save.
This kernel computes the sums directly, vectorised over the pixels.

The flat grid. An image's zero-padded planes (Hp x Wp, Wp = W + 2 PW) are laid out flat,
``f[c, r*Wp + s] = x_pad[c, r, s]``. An output pixel p = oh*Wp + ow then reads the input at
p + off_t, ``off_t = kh*Wp + kw``, for all 9 taps t: one loop over p covers every output row
at once, each tap a unit-stride slice of f. The grid is Wp wide where the output is OW = Wp - 2:
the last 2 values of each grid row are computed and dropped (6 % for 32 columns)::

    y_grid[k, p] = b[k] + sum_c sum_t w[k, c, t] f[c, p + off_t]

The backward, with dy on the same grid (zero in the 2 dropped columns):

    dx_grid[c, q] = sum_k sum_t w[k, c, t] dy_grid[k, q - off_t]    (a correlation of dy, padded
                                                                     by 2 rows and 2 values, with
                                                                     the flipped filter)
    dw[k, c, t]   = sum_n sum_p dy_grid[k, p] f[c, p + off_t]       (9 dot products per k, c)

Each loop over p makes 4 output channels at once, their 36 weights held in registers, so that
the 9 input values it loads serve 36 multiply-adds. The batch goes through in chunks of images
on a few threads (:func:`sescratch.kernels.numba._scratch.map_chunks`); no BLAS is called.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sescratch.kernels.numba._scratch import image_chunks, map_chunks, sum_shares

__all__ = ["direct_forward", "direct_backward"]

CHUNK_IMAGES = 8  # images per chunk: the chunks of a batch of 128 share two threads evenly


@njit(inline="always")
def _to_grid(a, n, start, PH, PW, Wp, f):
    """f[c, start + (PH + i)*Wp + PW + j] = a[n, c, i, j]; the rest of f (the padding) is left as it is."""
    N, C, H, W = a.shape
    for c in range(C):
        for i in range(H):
            dst, src = f[c, start + (PH + i) * Wp + PW:], a[n, c, i]
            for j in range(W):
                dst[j] = src[j]


@njit(inline="always")
def _from_grid(g, start, Wp, out, n):
    """out[n, c, i, j] = g[c, start + i*Wp + j]: the grid's rows cropped to out's width."""
    N, C, H, W = out.shape
    for c in range(C):
        for i in range(H):
            dst, src = out[n, c, i], g[c, start + i * Wp:]
            for j in range(W):
                dst[j] = src[j]


@njit(inline="always")
def _taps(f, c, start, Wp):
    """The 9 slices f[c, start + off_t:], t = 3*kh + kw."""
    s = start
    return (f[c, s:], f[c, s + 1:], f[c, s + 2:], f[c, s + Wp:], f[c, s + Wp + 1:], f[c, s + Wp + 2:],
            f[c, s + 2 * Wp:], f[c, s + 2 * Wp + 1:], f[c, s + 2 * Wp + 2:])


@njit(inline="always")
def _weights(w, k, c):
    """The 9 taps of w[k, c] as scalars (loaded before a loop, they stay in registers)."""
    return (w[k, c, 0, 0], w[k, c, 0, 1], w[k, c, 0, 2], w[k, c, 1, 0], w[k, c, 1, 1], w[k, c, 1, 2],
            w[k, c, 2, 0], w[k, c, 2, 1], w[k, c, 2, 2])


@njit(inline="always")
def _dot9(u, v0, v1, v2, v3, v4, v5, v6, v7, v8):
    return (u[0] * v0 + u[1] * v1 + u[2] * v2 + u[3] * v3 + u[4] * v4 + u[5] * v5
            + u[6] * v6 + u[7] * v7 + u[8] * v8)


@njit(nogil=True, cache=True, fastmath={"contract"})
def _correlate(f, start, Wp, w, bias, acc):
    """acc[k, p] = bias[k] + sum_c sum_t w[k, c, t] f[c, start + p + off_t] for p < acc.shape[1]:
    four output channels per pass over the input (and one at a time for the K % 4 left)."""
    K, Cin = w.shape[:2]
    L = acc.shape[1]
    for k0 in range(0, K - K % 4, 4):
        a0, a1, a2, a3 = acc[k0], acc[k0 + 1], acc[k0 + 2], acc[k0 + 3]
        a0[:], a1[:], a2[:], a3[:] = bias[k0], bias[k0 + 1], bias[k0 + 2], bias[k0 + 3]
        for c in range(Cin):
            x0, x1, x2, x3, x4, x5, x6, x7, x8 = _taps(f, c, start, Wp)
            u0, u1, u2, u3 = _weights(w, k0, c), _weights(w, k0 + 1, c), _weights(w, k0 + 2, c), _weights(w, k0 + 3, c)
            for p in range(L):
                v0, v1, v2, v3, v4, v5, v6, v7, v8 = x0[p], x1[p], x2[p], x3[p], x4[p], x5[p], x6[p], x7[p], x8[p]
                a0[p] += _dot9(u0, v0, v1, v2, v3, v4, v5, v6, v7, v8)
                a1[p] += _dot9(u1, v0, v1, v2, v3, v4, v5, v6, v7, v8)
                a2[p] += _dot9(u2, v0, v1, v2, v3, v4, v5, v6, v7, v8)
                a3[p] += _dot9(u3, v0, v1, v2, v3, v4, v5, v6, v7, v8)
    for k in range(K - K % 4, K):
        a0 = acc[k]
        a0[:] = bias[k]
        for c in range(Cin):
            x0, x1, x2, x3, x4, x5, x6, x7, x8 = _taps(f, c, start, Wp)
            u0 = _weights(w, k, c)
            for p in range(L):
                a0[p] += _dot9(u0, x0[p], x1[p], x2[p], x3[p], x4[p], x5[p], x6[p], x7[p], x8[p])


SUM_BLOCK = 2048  # grid values summed in the grid's dtype before a float64 total takes them


@njit(nogil=True, cache=True, fastmath={"contract", "reassoc"})
def _weight_sums(dz, start, L, f, Wp, dw):
    """dw[k, c, t] += sum_p dz[k, start + p] f[c, p + off_t] for p < L: sums of SUM_BLOCK values
    in the grid's dtype (reassociated so that the 9 sums of a pass vectorise), added to dw's
    float64 totals."""
    K, C = dw.shape[:2]
    zero = np.zeros(1, dtype=dz.dtype)[0]
    for c in range(C):
        for p0 in range(0, L, SUM_BLOCK):
            x0, x1, x2, x3, x4, x5, x6, x7, x8 = _taps(f, c, p0, Wp)
            for k in range(K):
                d = dz[k, start + p0:]
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = zero
                for p in range(min(SUM_BLOCK, L - p0)):
                    e = d[p]
                    s0 += e * x0[p]
                    s1 += e * x1[p]
                    s2 += e * x2[p]
                    s3 += e * x3[p]
                    s4 += e * x4[p]
                    s5 += e * x5[p]
                    s6 += e * x6[p]
                    s7 += e * x7[p]
                    s8 += e * x8[p]
                dk = dw[k, c]
                dk[0, 0] += s0
                dk[0, 1] += s1
                dk[0, 2] += s2
                dk[1, 0] += s3
                dk[1, 1] += s4
                dk[1, 2] += s5
                dk[2, 0] += s6
                dk[2, 1] += s7
                dk[2, 2] += s8


@njit(nogil=True, cache=True)
def _forward_images(x, w, bias, PH, PW, n0, n1, y):
    N, C, H, W = x.shape
    K, OH = w.shape[0], y.shape[2]
    Wp = W + 2 * PW
    f = np.zeros((C, (H + 2 * PH) * Wp + 2 * Wp + 2), dtype=x.dtype)  # the padded grid, and slack
    acc = np.empty((K, OH * Wp), dtype=x.dtype)  # y's grid
    for n in range(n0, n1):
        _to_grid(x, n, 0, PH, PW, Wp, f)
        _correlate(f, np.int64(0), Wp, w, bias, acc)  # not the literal 0: one compiled _correlate for both
        _from_grid(acc, 0, Wp, y, n)


@njit(nogil=True, cache=True)
def _backward_images(dy, x, w_flipped, PH, PW, n0, n1, dx, dw):
    """dx[n0:n1] and their share of dw (float64, added into ``dw``)."""
    N, C, H, W = x.shape
    K, OH = dy.shape[1], dy.shape[2]
    Wp = W + 2 * PW
    f = np.zeros((C, (H + 2 * PH) * Wp + 2 * Wp + 2), dtype=x.dtype)
    z = 2 * Wp + 2  # dy's grid starts after as many zeros as the largest tap offset
    dz = np.zeros((K, z + (H + 2 * PH) * Wp + 2 * Wp + 2), dtype=dy.dtype)
    dxg = np.empty((C, H * Wp), dtype=dx.dtype)  # dx's grid, rows PH .. PH + H - 1 of x_pad's
    no_bias = np.zeros(C, dtype=dx.dtype)
    for n in range(n0, n1):
        _to_grid(x, n, 0, PH, PW, Wp, f)
        _to_grid(dy, n, z, 0, 0, Wp, dz)  # the 2 grid columns past OW stay zero
        _weight_sums(dz, z, OH * Wp, f, Wp, dw)
        _correlate(dz, PH * Wp, Wp, w_flipped, no_bias, dxg)  # dx_grid[q] = sum w dy_grid[q - off_t]
        _from_grid(dxg, PW, Wp, dx, n)


def applies(w, stride, groups):
    """3x3, stride 1, one group (any padding)."""
    return w.shape[2:] == (3, 3) and tuple(stride) == (1, 1) and groups == 1


def _chunks(N):
    return image_chunks(N, 1, CHUNK_IMAGES)


def direct_forward(x, w, b, padding):
    """y = conv2d(x, w, b) for a 3x3 kernel, stride 1, groups 1: (N, K, OH, OW)."""
    (N, _, H, W), K = x.shape, w.shape[0]
    PH, PW = padding
    y = np.empty((N, K, H + 2 * PH - 2, W + 2 * PW - 2), dtype=x.dtype)
    bias = np.zeros(K, dtype=x.dtype) if b is None else b
    map_chunks(lambda n0, n1: _forward_images(x, w, bias, PH, PW, n0, n1, y), _chunks(N))
    return y


def direct_backward(dy, x, w, padding, has_bias):
    """(dx, dw, db) of :func:`direct_forward`; db is None without a bias."""
    N, K = dy.shape[:2]
    PH, PW = padding
    w_flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # C,K,3,3
    dx = np.empty_like(x)

    def chunk(n0, n1):
        dw = np.zeros(w.shape, dtype=np.float64)
        _backward_images(dy, x, w_flipped, PH, PW, n0, n1, dx, dw)
        return dw

    dw = sum_shares(map_chunks(chunk, _chunks(N))).astype(w.dtype)
    db = dy.sum(axis=(0, 2, 3), dtype=np.float64).astype(dy.dtype) if has_bias else None
    return dx, dw, db
