"""Winograd F(2x2, 3x3) convolution (Numba, CPU): the fast path for 3x3, stride 1, groups 1.

A 3x3 cross-correlation producing a 2x2 output tile from a 4x4 input tile ``d`` can be written

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A          (Lavin & Gray, 2016)

with the constant matrices below: 16 multiplications per tile and channel pair instead of 36.
Over a batch this becomes 16 independent matrix products, one per position ξ of the 4x4 tile:

    M[ξ] = V[ξ] @ U[ξ]      V[ξ] : (T, C) transformed tiles,  U[ξ] : (C, K) transformed weights,

T = N * TH * TW tiles (TH = ceil(OH / 2), TW = ceil(OW / 2)). The backward is the transpose of
each step, in reverse order: ``dM = A dY A^T`` per tile, ``dU = V^T @ dM`` and ``dV = dM @ U^T``
(16 products each), ``dw = G^T dU G`` and ``dx = B dV B^T`` added back into the overlapping input
tiles (neighbouring tiles share 2 rows or columns). Output tiles that stick out of an odd OH/OW
are computed and dropped (their dy is zero in the backward); the input tile beyond the padded
image reads zeros. The transforms only add and subtract, so the results equal the direct
convolution up to rounding (tested against the NumPy reference, float64 <= 1e-10).

Layout. V and M keep channels last (t, c), so every transform is a loop over contiguous channel
vectors that SIMD handles whatever the image size, and the products are (T x C) @ (C x K), the
shape BLAS prefers. Each kernel handles whole images; an image is first copied into a
zero-padded channels-last scratch (the transposition happens there, in cache), so the tile loops
need no bounds checks. The batch goes through in chunks of a few images, each chunk start to end
on one thread (:func:`sescratch.kernels.numba._scratch.map_chunks`): its tiles are still in cache
when the products read them, and its products are small enough to be single-threaded in BLAS.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sescratch.kernels.numba import _scratch
from sescratch.kernels.numba._scratch import buffer, image_chunks, map_chunks

# G (4x3) maps a 3-tap filter to the 4 Winograd points; B^T and A^T act in _bt and _at below.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


@njit(inline="always")
def _bt(d0, d1, d2, d3):
    """B^T d for 4 input values (B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]])."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(inline="always")
def _b(v0, v1, v2, v3):
    """B v, the adjoint of :func:`_bt`."""
    return v0, v1 - v2 + v3, v1 + v2 - v0, -v3


@njit(inline="always")
def _at(m0, m1, m2, m3):
    """A^T m for one column of 4 Winograd values (A^T = [[1,1,1,0],[0,1,-1,-1]])."""
    return m0 + m1 + m2, m1 - m2 - m3


@njit(inline="always")
def _a(y0, y1):
    """A y, the adjoint of :func:`_at`."""
    return y0, y0 + y1, y0 - y1, -y1


@njit(nogil=True, cache=True)
def _input_tiles(x, n0, PH, PW, TH, TW, V):
    """V[4*i + j, t, c] = (B^T d B)[i, j], d the 4x4 tile of x_pad[n, c] at (2*th, 2*tw),
    t = ((n - n0)*TH + th)*TW + tw, for the images n0 .. n0 + V.shape[1] // (TH*TW)."""
    N, C, H, W = x.shape
    for m in range(V.shape[1] // (TH * TW)):
        n = n0 + m
        L = np.zeros((2 * TH + 2, 2 * TW + 2, C), dtype=x.dtype)  # x_pad[n], channels last
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    L[PH + i, PW + j, c] = x[n, c, i, j]
        R = np.empty((4, 2 * TW + 2, C), dtype=x.dtype)  # B^T d for the band of rows 2th .. 2th+3
        for th in range(TH):
            r = 2 * th
            for s in range(2 * TW + 2):  # rows first, once per band
                for c in range(C):
                    R[0, s, c], R[1, s, c], R[2, s, c], R[3, s, c] = _bt(
                        L[r, s, c], L[r + 1, s, c], L[r + 2, s, c], L[r + 3, s, c])
            for tw in range(TW):  # then the columns 2tw .. 2tw+3 of each tile
                t, s = (m * TH + th) * TW + tw, 2 * tw
                for i in range(4):
                    for c in range(C):
                        v = _bt(R[i, s, c], R[i, s + 1, c], R[i, s + 2, c], R[i, s + 3, c])
                        V[4 * i, t, c] = v[0]
                        V[4 * i + 1, t, c] = v[1]
                        V[4 * i + 2, t, c] = v[2]
                        V[4 * i + 3, t, c] = v[3]


@njit(nogil=True, cache=True)
def _input_tiles_adjoint(dV, n0, PH, PW, TH, TW, dx):
    """dx[n] = crop(sum of the tiles B dV B^T added at (2*th, 2*tw)): _input_tiles transposed."""
    N, C, H, W = dx.shape
    for m in range(dV.shape[1] // (TH * TW)):
        n = n0 + m
        L = np.zeros((2 * TH + 2, 2 * TW + 2, C), dtype=dx.dtype)  # d x_pad[n], channels last
        Q = np.empty((4, 2 * TW + 2, C), dtype=dx.dtype)  # dV B^T of a band's tiles, added up
        for th in range(TH):
            Q[:] = 0
            for tw in range(TW):  # columns first: row k of dV B^T, added where the tile was read
                t, s = (m * TH + th) * TW + tw, 2 * tw
                for k in range(4):
                    for c in range(C):
                        q = _b(dV[4 * k, t, c], dV[4 * k + 1, t, c], dV[4 * k + 2, t, c], dV[4 * k + 3, t, c])
                        Q[k, s, c] += q[0]
                        Q[k, s + 1, c] += q[1]
                        Q[k, s + 2, c] += q[2]
                        Q[k, s + 3, c] += q[3]
            r = 2 * th
            for s in range(2 * TW + 2):  # then rows, once per band: B (dV B^T)
                for c in range(C):
                    d = _b(Q[0, s, c], Q[1, s, c], Q[2, s, c], Q[3, s, c])
                    L[r, s, c] += d[0]
                    L[r + 1, s, c] += d[1]
                    L[r + 2, s, c] += d[2]
                    L[r + 3, s, c] += d[3]
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    dx[n, c, i, j] = L[PH + i, PW + j, c]


@njit(nogil=True, cache=True)
def _output_tiles(M, bias, n0, TH, TW, y):
    """y[n, k] = crop of the 2x2 tiles A^T m A, m = M[:, t, k] as 4x4, plus bias[k]."""
    N, K, OH, OW = y.shape
    for m in range(M.shape[1] // (TH * TW)):
        n = n0 + m
        Y = np.empty((2 * TH, 2 * TW, K), dtype=y.dtype)  # y[n] with even sizes, channels last
        R = np.empty((2, 4, K), dtype=y.dtype)  # R[i, j] = (A^T m)[i, j]
        for th in range(TH):
            for tw in range(TW):
                t, r, s = (m * TH + th) * TW + tw, 2 * th, 2 * tw
                for j in range(4):  # rows first: column j of A^T m
                    for k in range(K):
                        R[0, j, k], R[1, j, k] = _at(
                            M[j, t, k], M[4 + j, t, k], M[8 + j, t, k], M[12 + j, t, k])
                for i in range(2):  # then row i of (A^T m) A
                    for k in range(K):
                        Y[r + i, s, k], Y[r + i, s + 1, k] = _at(
                            R[i, 0, k], R[i, 1, k], R[i, 2, k], R[i, 3, k])
        for k in range(K):
            for i in range(OH):
                for j in range(OW):
                    y[n, k, i, j] = Y[i, j, k] + bias[k]


@njit(nogil=True, cache=True)
def _output_tiles_adjoint(dy, n0, TH, TW, dM, plane_sums):
    """dM[:, t, k] = A dy_t A^T (dy_t the 2x2 tile of dy[n, k], zero beyond OH, OW): the transpose
    of _output_tiles. Also plane_sums[n, k] = sum of dy[n, k] (for db)."""
    N, K, OH, OW = dy.shape
    for m in range(dM.shape[1] // (TH * TW)):
        n = n0 + m
        L = np.zeros((2 * TH, 2 * TW, K), dtype=dy.dtype)  # dy[n] with even sizes, channels last
        for k in range(K):
            total = 0.0
            for i in range(OH):
                for j in range(OW):
                    L[i, j, k] = dy[n, k, i, j]
                    total += dy[n, k, i, j]
            plane_sums[n, k] = total
        R = np.empty((4, 2 * TW, K), dtype=dy.dtype)  # A dy for the band of rows 2th, 2th+1
        for th in range(TH):
            r = 2 * th
            for s in range(2 * TW):  # rows first, once per band
                for k in range(K):
                    R[0, s, k], R[1, s, k], R[2, s, k], R[3, s, k] = _a(L[r, s, k], L[r + 1, s, k])
            for tw in range(TW):  # then the columns 2tw, 2tw+1 of each tile
                t, s = (m * TH + th) * TW + tw, 2 * tw
                for i in range(4):
                    for k in range(K):
                        v = _a(R[i, s, k], R[i, s + 1, k])
                        dM[4 * i, t, k] = v[0]
                        dM[4 * i + 1, t, k] = v[1]
                        dM[4 * i + 2, t, k] = v[2]
                        dM[4 * i + 3, t, k] = v[3]


def _chunks(N, TH, TW, C, K):
    """Image ranges whose 16 products (TH*TW*images, C) @ (C, K) are each at most GEMM_SIZE."""
    return image_chunks(N, TH * TW * C * K, _scratch.GEMM_SIZE)


def _geometry(x, padding):
    (H, W), (PH, PW) = x.shape[2:], padding
    OH, OW = H + 2 * PH - 2, W + 2 * PW - 2
    return OH, OW, (OH + 1) // 2, (OW + 1) // 2


def _weight_transform(w):
    """U[4*i + j, c, k] = (G g G^T)[i, j] with g = w[k, c]: shape (16, C, K)."""
    K, C = w.shape[:2]
    G = _G.astype(w.dtype)
    return np.ascontiguousarray((G @ w @ G.T).reshape(K, C, 16).transpose(2, 1, 0))  # 16,C,K


def _weight_transform_adjoint(dU):
    """dw[k, c] = G^T dU[:, c, k] G (dU as 4x4): (16, C, K) -> (K, C, 3, 3)."""
    C, K = dU.shape[1:]
    G = _G.astype(dU.dtype)
    return np.ascontiguousarray(G.T @ dU.transpose(2, 1, 0).reshape(K, C, 4, 4) @ G)  # K,C,3,3


def winograd_forward(x, w, b, padding):
    """y = conv2d(x, w, b) for a 3x3 kernel, stride 1, groups 1: (N, K, OH, OW)."""
    (N, C), K = x.shape[:2], w.shape[0]
    OH, OW, TH, TW = _geometry(x, padding)
    U = _weight_transform(w)  # 16,C,K
    bias = np.zeros(K, dtype=x.dtype) if b is None else b
    y = np.empty((N, K, OH, OW), dtype=x.dtype)

    def chunk(n0, n1):  # images n0 .. n1 - 1, on one thread
        T = (n1 - n0) * TH * TW
        V = buffer("V", (16, T, C), x.dtype)
        _input_tiles(x, n0, *padding, TH, TW, V)
        M = np.matmul(V, U, out=buffer("M", (16, T, K), x.dtype))  # 16,T,K
        _output_tiles(M, bias, n0, TH, TW, y)

    map_chunks(chunk, _chunks(N, TH, TW, C, K))
    return y


def winograd_backward(dy, x, w, padding, has_bias):
    """(dx, dw, db) of :func:`winograd_forward`, each step the transpose of a forward step."""
    (N, C), K = x.shape[:2], w.shape[0]
    OH, OW, TH, TW = _geometry(x, padding)
    U_t = np.ascontiguousarray(_weight_transform(w).transpose(0, 2, 1))  # 16,K,C
    plane_sums = np.empty((N, K), dtype=np.float64)
    dx = np.empty_like(x)

    def chunk(n0, n1):  # images n0 .. n1 - 1, on one thread; returns their share of dU
        T = (n1 - n0) * TH * TW
        dM = buffer("M", (16, T, K), x.dtype)
        _output_tiles_adjoint(dy, n0, TH, TW, dM, plane_sums)
        V = buffer("V", (16, T, C), x.dtype)
        _input_tiles(x, n0, *padding, TH, TW, V)  # recomputed, not kept from the forward
        dU = np.matmul(V.transpose(0, 2, 1), dM)  # 16,C,K
        dV = np.matmul(dM, U_t, out=V)  # 16,T,C (in V's memory)
        _input_tiles_adjoint(dV, n0, *padding, TH, TW, dx)
        return dU

    dU = sum(map_chunks(chunk, _chunks(N, TH, TW, C, K)))  # 16,C,K
    db = plane_sums.sum(axis=0).astype(dy.dtype) if has_bias else None
    return dx, _weight_transform_adjoint(dU), db
