"""Winograd F(2x2, 3x3) convolution (Numba, CPU): the fast path for 3x3, stride 1, groups 1.

A 3x3 cross-correlation producing a 2x2 output tile from a 4x4 input tile ``d`` can be written

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A          (Lavin & Gray, 2016)

with the constant matrices below: 16 multiplications per tile and channel pair instead of 36.
Over a batch this becomes 16 independent matrix products, one per position ξ of the 4x4 tile:

    M[ξ] = U[ξ] @ V[ξ]      U[ξ] : (K, C) transformed weights,   V[ξ] : (C, T) transformed tiles,

T = N * TH * TW tiles (TH = ceil(OH / 2), TW = ceil(OW / 2)). The backward is the transpose of
each step, in reverse order: ``dM = A dY A^T`` per tile, ``dU = dM @ V^T`` and ``dV = U^T @ dM``
(16 products each), ``dw = G^T dU G`` and ``dx = B dV B^T`` added back into the overlapping input
tiles (neighbouring tiles share 2 rows or columns). Output tiles that stick out of an odd OH/OW
are computed and dropped (their dy is zero in the backward); the input tile beyond the padded
image reads zeros. The transforms only add and subtract, so the results equal the direct
convolution up to rounding (tested against the NumPy reference, float64 <= 1e-10).

Each transform kernel runs in parallel over the N*C (or N*K) image planes, with the plane copied
into a zero-padded scratch so the tile loops need no bounds checks. The products go to BLAS.
"""
from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

# G (4x3) maps a 3-tap filter to the 4 Winograd points; B^T and A^T act in _bt and _at below.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


@njit(inline="always")
def _bt(d0, d1, d2, d3):
    """B^T d for one column of 4 input values (B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]])."""
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


@njit(parallel=True, cache=True)
def _input_transform(x, PH, PW, TH, TW, blocks, V):
    """V[4*i + j, c, t] = (B^T d B)[i, j], d the 4x4 tile of x_pad at (2*th, 2*tw)."""
    N, C, H, W = x.shape
    for block in prange(blocks):
        E = np.empty((2 * TH + 2, TW + 1), dtype=x.dtype)  # x_pad[:, 0::2]
        O = np.empty((2 * TH + 2, TW + 1), dtype=x.dtype)  # x_pad[:, 1::2]
        R = np.empty((8, TW + 1), dtype=x.dtype)  # B^T d for the even (0-3) and odd (4-7) columns
        for task in range(block * N * C // blocks, (block + 1) * N * C // blocks):
            n, c = task // C, task % C
            _split_columns(x[n, c], PH, PW, E, O)
            for th in range(TH):
                r, t0 = 2 * th, (n * TH + th) * TW
                for m in range(TW + 1):  # rows first: R[i] = row i of B^T d
                    R[0, m], R[1, m], R[2, m], R[3, m] = _bt(E[r, m], E[r + 1, m], E[r + 2, m], E[r + 3, m])
                    R[4, m], R[5, m], R[6, m], R[7, m] = _bt(O[r, m], O[r + 1, m], O[r + 2, m], O[r + 3, m])
                for i in range(4):  # then columns: tile tw reads columns 2tw .. 2tw + 3
                    for tw in range(TW):
                        v = _bt(R[i, tw], R[4 + i, tw], R[i, tw + 1], R[4 + i, tw + 1])
                        V[4 * i, c, t0 + tw] = v[0]
                        V[4 * i + 1, c, t0 + tw] = v[1]
                        V[4 * i + 2, c, t0 + tw] = v[2]
                        V[4 * i + 3, c, t0 + tw] = v[3]


@njit(parallel=True, cache=True)
def _input_transform_adjoint(dV, PH, PW, TH, TW, blocks, dx):
    """dx = crop(sum over tiles of B dV B^T placed at (2*th, 2*tw)): the transpose of the above."""
    N, C, H, W = dx.shape
    for block in prange(blocks):
        E = np.empty((2 * TH + 2, TW + 1), dtype=dx.dtype)  # d x_pad[:, 0::2]
        O = np.empty((2 * TH + 2, TW + 1), dtype=dx.dtype)  # d x_pad[:, 1::2]
        D = np.zeros((4, 4, TW + 2), dtype=dx.dtype)  # D[i, j, tw + 1] = (B dV B^T)[i, j] of tile tw
        for task in range(block * N * C // blocks, (block + 1) * N * C // blocks):
            n, c = task // C, task % C
            E[:] = 0
            O[:] = 0
            for th in range(TH):
                t0 = (n * TH + th) * TW
                for tw in range(TW):
                    t = t0 + tw
                    z0 = _b(dV[0, c, t], dV[4, c, t], dV[8, c, t], dV[12, c, t])  # column l of B dV
                    z1 = _b(dV[1, c, t], dV[5, c, t], dV[9, c, t], dV[13, c, t])
                    z2 = _b(dV[2, c, t], dV[6, c, t], dV[10, c, t], dV[14, c, t])
                    z3 = _b(dV[3, c, t], dV[7, c, t], dV[11, c, t], dV[15, c, t])
                    for i in range(4):
                        d = _b(z0[i], z1[i], z2[i], z3[i])  # row i of (B dV) B^T
                        D[i, 0, tw + 1], D[i, 1, tw + 1], D[i, 2, tw + 1], D[i, 3, tw + 1] = d
                for i in range(4):  # column 2m gets j = 0 of tile m and j = 2 of tile m - 1
                    for m in range(TW + 1):
                        E[2 * th + i, m] += D[i, 0, m + 1] + D[i, 2, m]
                        O[2 * th + i, m] += D[i, 1, m + 1] + D[i, 3, m]
            _merge_columns(E, O, PH, PW, dx[n, c])


@njit(parallel=True, cache=True)
def _output_transform(M, bias, TH, TW, blocks, y):
    """y tile (2x2) = A^T m A + b[k], m = M[:, k, t] as 4x4; the parts beyond OH, OW dropped."""
    N, K, OH, OW = y.shape
    for block in prange(blocks):
        Y = np.empty((2 * TH, 2 * TW), dtype=y.dtype)
        for task in range(block * N * K // blocks, (block + 1) * N * K // blocks):
            n, k = task // K, task % K
            for th in range(TH):
                t0 = (n * TH + th) * TW
                for tw in range(TW):
                    t = t0 + tw
                    c0 = _at(M[0, k, t], M[4, k, t], M[8, k, t], M[12, k, t])  # column j of A^T m
                    c1 = _at(M[1, k, t], M[5, k, t], M[9, k, t], M[13, k, t])
                    c2 = _at(M[2, k, t], M[6, k, t], M[10, k, t], M[14, k, t])
                    c3 = _at(M[3, k, t], M[7, k, t], M[11, k, t], M[15, k, t])
                    Y[2 * th, 2 * tw], Y[2 * th, 2 * tw + 1] = _at(c0[0], c1[0], c2[0], c3[0])
                    Y[2 * th + 1, 2 * tw], Y[2 * th + 1, 2 * tw + 1] = _at(c0[1], c1[1], c2[1], c3[1])
            for i in range(OH):
                for j in range(OW):
                    y[n, k, i, j] = Y[i, j] + bias[k]


@njit(parallel=True, cache=True)
def _output_transform_adjoint(dy, TH, TW, blocks, dM, plane_sums):
    """dM[:, k, t] = A dy_t A^T (dy_t the 2x2 tile, zero beyond OH, OW); plane_sums[n, k] = sum dy."""
    N, K, OH, OW = dy.shape
    for block in prange(blocks):
        E = np.empty((2 * TH, TW + 1), dtype=dy.dtype)  # dy_pad[:, 0::2]
        O = np.empty((2 * TH, TW + 1), dtype=dy.dtype)  # dy_pad[:, 1::2]
        for task in range(block * N * K // blocks, (block + 1) * N * K // blocks):
            n, k = task // K, task % K
            plane_sums[n, k] = _split_columns(dy[n, k], 0, 0, E, O)
            for th in range(TH):
                r, t0 = 2 * th, (n * TH + th) * TW
                for tw in range(TW):
                    e0, e1, e2, e3 = _a(E[r, tw], E[r + 1, tw])  # rows first: column 2tw of A dy
                    o0, o1, o2, o3 = _a(O[r, tw], O[r + 1, tw])  # column 2tw + 1
                    dM[0, k, t0 + tw], dM[1, k, t0 + tw], dM[2, k, t0 + tw], dM[3, k, t0 + tw] = _a(e0, o0)
                    dM[4, k, t0 + tw], dM[5, k, t0 + tw], dM[6, k, t0 + tw], dM[7, k, t0 + tw] = _a(e1, o1)
                    dM[8, k, t0 + tw], dM[9, k, t0 + tw], dM[10, k, t0 + tw], dM[11, k, t0 + tw] = _a(e2, o2)
                    dM[12, k, t0 + tw], dM[13, k, t0 + tw], dM[14, k, t0 + tw], dM[15, k, t0 + tw] = _a(e3, o3)


@njit(cache=True)
def _split_columns(plane, PH, PW, E, O):
    """Zero-pad ``plane`` by (PH, PW) and split the even and odd columns into E, O; return its sum."""
    H, W = plane.shape
    E[:] = 0
    O[:] = 0
    s = 0.0
    for i in range(H):
        for j in range(W):
            v = plane[i, j]
            s += v
            if (j + PW) % 2 == 0:
                E[i + PH, (j + PW) // 2] = v
            else:
                O[i + PH, (j + PW) // 2] = v
    return s


@njit(cache=True)
def _merge_columns(E, O, PH, PW, plane):
    """The adjoint of _split_columns (without the sum): interleave E, O and crop the padding."""
    H, W = plane.shape
    for i in range(H):
        for j in range(W):
            if (j + PW) % 2 == 0:
                plane[i, j] = E[i + PH, (j + PW) // 2]
            else:
                plane[i, j] = O[i + PH, (j + PW) // 2]


def _blocks(planes):
    """Number of prange blocks over ``planes`` image planes (each allocates its scratch once)."""
    return max(1, min(planes, 8 * get_num_threads()))


def _tiles(OH, OW):
    return (OH + 1) // 2, (OW + 1) // 2


def _weight_transform(w):
    """U[4*i + j] = (G g G^T)[i, j] for every (k, c): shape (16, K, C)."""
    K, C = w.shape[:2]
    G = _G.astype(w.dtype)
    return np.ascontiguousarray((G @ w @ G.T).reshape(K, C, 16).transpose(2, 0, 1))  # 16,K,C


def winograd_forward(x, w, b, padding):
    """y = conv2d(x, w, b) for a 3x3 kernel, stride 1, groups 1: (N, K, OH, OW)."""
    (N, C, H, W), K = x.shape, w.shape[0]
    PH, PW = padding
    OH, OW = H + 2 * PH - 2, W + 2 * PW - 2
    TH, TW = _tiles(OH, OW)
    V = np.empty((16, C, N * TH * TW), dtype=x.dtype)  # 16,C,T
    _input_transform(x, PH, PW, TH, TW, _blocks(N * C), V)
    M = np.matmul(_weight_transform(w), V)  # 16,K,T
    y = np.empty((N, K, OH, OW), dtype=x.dtype)
    bias = np.zeros(K, dtype=x.dtype) if b is None else b
    _output_transform(M, bias, TH, TW, _blocks(N * K), y)
    return y


def winograd_backward(dy, x, w, padding, has_bias):
    """(dx, dw, db) of :func:`winograd_forward`, each step the transpose of a forward step."""
    (N, C, H, W), K = x.shape, w.shape[0]
    PH, PW = padding
    TH, TW = _tiles(dy.shape[2], dy.shape[3])
    dM = np.empty((16, K, N * TH * TW), dtype=dy.dtype)  # 16,K,T
    plane_sums = np.empty((N, K), dtype=np.float64)
    _output_transform_adjoint(dy, TH, TW, _blocks(N * K), dM, plane_sums)
    V = np.empty((16, C, N * TH * TW), dtype=x.dtype)  # 16,C,T (recomputed, not cached)
    _input_transform(x, PH, PW, TH, TW, _blocks(N * C), V)
    dU = np.matmul(dM, V.transpose(0, 2, 1))  # 16,K,C
    G = _G.astype(w.dtype)
    dw = G.T @ dU.transpose(1, 2, 0).reshape(K, C, 4, 4) @ G  # K,C,3,3
    dV = np.matmul(_weight_transform(w).transpose(0, 2, 1), dM, out=V)  # 16,C,T (V's memory)
    dx = np.empty_like(x)
    _input_transform_adjoint(dV, PH, PW, TH, TW, _blocks(N * C), dx)
    db = plane_sums.sum(axis=0).astype(dy.dtype) if has_bias else None
    return dx, np.ascontiguousarray(dw), db
