"""The tile transforms of Winograd F(2x2, 3x3) (Numba, CPU), for :mod:`.winograd`'s drivers.

A 2x2 output tile from a 4x4 input tile ``d``: ``Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A`` with the
constant matrices below, 16 multiplications per tile and channel pair instead of 36; positions
``4*i + j`` of the transformed 4x4 tile.

Layout (:mod:`.winograd_layout`). An image is first copied into a zero-padded channels-last
scratch whose even and odd columns are stored apart (``L[p, i, s*C + c]`` holds column
``2s + p``; the transposition happens there, in cache). Tile ``tw`` reads the columns
``2tw .. 2tw+3``, i.e. pairs ``tw`` and ``tw + 1`` of both halves, so each transform step is one long loop over ``q = tw*C + c`` for a whole band of
tiles: contiguous, unit-stride, no bounds checks, indexed by the loop counter only (an offset
computed inside the index makes Numba check for negative indices and stops SIMD). That makes the
transforms faster than per-tile loops over C (docs/benchmarks.md).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sescratch.kernels.numba.winograd_layout import (from_phases, from_phases_plus, to_phases,
                                                    to_phases_summing)

POINTS, STEP = 16, 2  # positions ξ of a transformed tile; outputs per tile side


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
def input_tiles(x, n0, PH, PW, TH, TW, V):
    """V[4*i + j, t, c] = (B^T d B)[i, j], d the 4x4 tile of x_pad[n, c] at (2*th, 2*tw),
    t = ((n - n0)*TH + th)*TW + tw, for the images n0 .. n0 + V.shape[1] // (TH*TW)."""
    N, C, H, W = x.shape
    T, Q = V.shape[1], (TW + 1) * C
    L = np.zeros((2, 2 * TH + 2, Q), dtype=x.dtype)  # x_pad[n]: L[p, i, s*C + c] = x_pad[n, c, i, 2s + p]
    R = np.empty((2, 4, Q), dtype=x.dtype)  # B^T d of a band of 4 rows, split the same way
    Vf = V.reshape(16, T * C)  # 16,T*C
    for m in range(T // (TH * TW)):
        n = n0 + m
        to_phases(x, n, PH, PW, 2, L)  # the padding of L stays zero: only the image is written
        for th in range(TH):
            for p in range(2):  # rows first, once per band: R = B^T (rows 2th .. 2th+3)
                l0, l1, l2, l3 = L[p, 2 * th], L[p, 2 * th + 1], L[p, 2 * th + 2], L[p, 2 * th + 3]
                r0, r1, r2, r3 = R[p, 0], R[p, 1], R[p, 2], R[p, 3]
                for q in range(Q):
                    r0[q], r1[q], r2[q], r3[q] = _bt(l0[q], l1[q], l2[q], l3[q])
            cols = slice((m * TH + th) * TW * C, (m * TH + th + 1) * TW * C)  # the band's tiles
            for i in range(4):  # then the columns 2tw .. 2tw+3 of every tile at once
                e0, o0 = R[0, i], R[1, i]  # columns 2tw and 2tw+1 at q = tw*C + c
                e1, o1 = e0[C:], o0[C:]  # columns 2tw+2 and 2tw+3
                v0, v1, v2, v3 = Vf[4 * i, cols], Vf[4 * i + 1, cols], Vf[4 * i + 2, cols], Vf[4 * i + 3, cols]
                for q in range(TW * C):
                    v0[q], v1[q], v2[q], v3[q] = _bt(e0[q], o0[q], e1[q], o1[q])


@njit(nogil=True, cache=True)
def input_tiles_adjoint(dV, n0, PH, PW, TH, TW, dx):
    """dx[n] = crop(sum of the tiles B dV B^T added at (2*th, 2*tw)): input_tiles transposed."""
    N, C, H, W = dx.shape
    T, Q = dV.shape[1], (TW + 1) * C
    L = np.empty((2, 2 * TH + 2, Q), dtype=dx.dtype)  # d x_pad[n], split as in input_tiles
    R = np.empty((2, 4, Q), dtype=dx.dtype)  # d (B^T d) of a band: dV B^T, tiles added up
    KA = np.empty((2, 2, Q), dtype=dx.dtype)  # a band's rows 2, 3, which the next band adds to:
    KB = np.empty((2, 2, Q), dtype=dx.dtype)  # read from one, written to the other (see below)
    dVf = dV.reshape(16, T * C)  # 16,T*C
    last = (TW - 1) * C  # q of the band's last tile
    for m in range(T // (TH * TW)):
        n = n0 + m
        KA[:] = 0  # no band before the first
        for th in range(TH):
            cols = slice((m * TH + th) * TW * C, (m * TH + th + 1) * TW * C)
            for i in range(4):  # columns first: v = (e0 - e1, o0 + e1, e1 - o0, o0 - o1) transposed
                v0, v1, v2, v3 = dVf[4 * i, cols], dVf[4 * i + 1, cols], dVf[4 * i + 2, cols], dVf[4 * i + 3, cols]
                e, o = R[0, i], R[1, i]
                for q in range(C):  # column pair 0: only tile 0 reads it (as e0, o0)
                    e[q], o[q] = v0[q], v1[q] - v2[q] + v3[q]
                e1, o1, w0, w1, w3 = e[C:], o[C:], v0[C:], v1[C:], v3[C:]
                w2 = v2[C:]
                for q in range(last):  # pair tw+1: tile tw+1 reads it as (e0, o0), tile tw as (e1, o1)
                    e1[q] = w0[q] + (v1[q] + v2[q] - v0[q])
                    o1[q] = (w1[q] - w2[q] + w3[q]) - v3[q]
                el, ol = e[TW * C:], o[TW * C:]
                for q in range(C):  # the last pair: only the last tile reads it (as e1, o1)
                    el[q], ol[q] = v1[last + q] + v2[last + q] - v0[last + q], -v3[last + q]
            # then rows: B (dV B^T) for the 4 rows the band read; rows 2th, 2th+1 were the previous
            # band's rows 2, 3 (its carry, added in), this band's rows 2, 3 are the next carry:
            # plain stores, no array both read and written (SIMD: as in winograd_f4)
            carry, out = (KA, KB) if th % 2 == 0 else (KB, KA)
            for p in range(2):
                l0, l1 = L[p, 2 * th], L[p, 2 * th + 1]
                k2, k3, n2, n3 = carry[p, 0], carry[p, 1], out[p, 0], out[p, 1]
                r0, r1, r2, r3 = R[p, 0], R[p, 1], R[p, 2], R[p, 3]
                for q in range(Q):
                    d0, d1, d2, d3 = _b(r0[q], r1[q], r2[q], r3[q])
                    l0[q], l1[q] = d0 + k2[q], d1 + k3[q]
                    n2[q], n3[q] = d2, d3
        tail = KA if TH % 2 == 0 else KB  # the last band's rows 2, 3: no band after it
        for p in range(2):
            l2, l3, t2, t3 = L[p, 2 * TH], L[p, 2 * TH + 1], tail[p, 0], tail[p, 1]
            for q in range(Q):
                l2[q], l3[q] = t2[q], t3[q]
        from_phases(L, PH, PW, 2, dx, n)


@njit(nogil=True, cache=True)
def output_tiles(M, bias, n0, TH, TW, y):
    """y[n, k] = crop of the 2x2 tiles A^T m A, m = M[:, t, k] as 4x4, plus bias[k]."""
    N, K, OH, OW = y.shape
    T, Q = M.shape[1], TW * K
    Y = np.empty((2, 2 * TH, Q), dtype=y.dtype)  # y[n], even sizes: Y[p, i, s*K + k] = y[n, k, i, 2s + p]
    R = np.empty((2, 4, Q), dtype=y.dtype)  # R[i, j] = (A^T m)[i, j] for the band's tiles
    Mf = M.reshape(16, T * K)  # 16,T*K
    for m in range(T // (TH * TW)):
        n = n0 + m
        for th in range(TH):
            cols = slice((m * TH + th) * TW * K, (m * TH + th + 1) * TW * K)
            for j in range(4):  # rows first: column j of A^T m
                m0, m1, m2, m3 = Mf[j, cols], Mf[4 + j, cols], Mf[8 + j, cols], Mf[12 + j, cols]
                r0, r1 = R[0, j], R[1, j]
                for q in range(Q):
                    r0[q], r1[q] = _at(m0[q], m1[q], m2[q], m3[q])
            for i in range(2):  # then row i of (A^T m) A: the even and the odd output column
                a0, a1, a2, a3 = R[i, 0], R[i, 1], R[i, 2], R[i, 3]
                ye, yo = Y[0, 2 * th + i], Y[1, 2 * th + i]
                for q in range(Q):
                    ye[q], yo[q] = _at(a0[q], a1[q], a2[q], a3[q])
        from_phases_plus(Y, 2, bias, y, n)


@njit(nogil=True, cache=True)
def output_tiles_adjoint(dy, n0, TH, TW, dM, plane_sums):
    """dM[:, t, k] = A dy_t A^T (dy_t the 2x2 tile of dy[n, k], zero beyond OH, OW): the transpose
    of output_tiles. Also plane_sums[n, k] = sum of dy[n, k] (for db), unless plane_sums has
    no rows (no bias: the plain copy is 10-30 % faster than the summing one)."""
    N, K, OH, OW = dy.shape
    T, Q = dM.shape[1], TW * K
    L = np.zeros((2, 2 * TH, Q), dtype=dy.dtype)  # dy[n] split as Y of output_tiles; zero beyond
    R = np.empty((2, 4, Q), dtype=dy.dtype)  # A dy for the band of rows 2th, 2th+1
    dMf = dM.reshape(16, T * K)  # 16,T*K
    for m in range(T // (TH * TW)):
        n = n0 + m
        if plane_sums.shape[0]:
            to_phases_summing(dy, n, 2, L, plane_sums[n])  # beyond OH, OW, L stays zero
        else:
            to_phases(dy, n, 0, 0, 2, L)
        for th in range(TH):
            for p in range(2):  # rows first, once per band
                l0, l1 = L[p, 2 * th], L[p, 2 * th + 1]
                r0, r1, r2, r3 = R[p, 0], R[p, 1], R[p, 2], R[p, 3]
                for q in range(Q):
                    r0[q], r1[q], r2[q], r3[q] = _a(l0[q], l1[q])
            cols = slice((m * TH + th) * TW * K, (m * TH + th + 1) * TW * K)
            for i in range(4):  # then the columns 2tw, 2tw+1 of every tile at once
                e, o = R[0, i], R[1, i]
                d0, d1, d2, d3 = dMf[4 * i, cols], dMf[4 * i + 1, cols], dMf[4 * i + 2, cols], dMf[4 * i + 3, cols]
                for q in range(Q):
                    d0[q], d1[q], d2[q], d3[q] = _a(e[q], o[q])


@njit(nogil=True, cache=True)
def weight_tiles(w, U):
    """U[4*i + j, c, k] = (G g G^T)[i, j] for g = w[k, c] (G's rows: 1 0 0, h h h, h -h h, 0 0 1)."""
    K, C = w.shape[:2]
    T = np.empty((4, 3), dtype=np.float64)  # G g
    Uc = np.empty((16, K), dtype=U.dtype)  # U[:, c], written out row by row
    for c in range(C):
        for k in range(K):
            for b in range(3):
                g0, g1, g2 = w[k, c, 0, b], w[k, c, 1, b], w[k, c, 2, b]
                T[0, b], T[1, b], T[2, b], T[3, b] = g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2
            for i in range(4):  # (G g) G^T, row i
                t0, t1, t2 = T[i, 0], T[i, 1], T[i, 2]
                Uc[4 * i, k] = t0
                Uc[4 * i + 1, k] = 0.5 * (t0 + t1 + t2)
                Uc[4 * i + 2, k] = 0.5 * (t0 - t1 + t2)
                Uc[4 * i + 3, k] = t2
        for t in range(16):  # 16 runs of K values: U's planes may lie a multiple of 4 KiB apart
            for k in range(K):
                U[t, c, k] = Uc[t, k]


@njit(nogil=True, cache=True)
def weight_tiles_adjoint(dU, dw):
    """dw[k, c] = G^T D G for D = dU[:, c, k] as 4x4: the transpose of weight_tiles."""
    K, C = dw.shape[:2]
    E = np.empty((4, 3), dtype=np.float64)  # D G
    for c in range(C):
        for k in range(K):  # dU[:, c] is read along k, contiguously
            for i in range(4):
                d0, d1, d2, d3 = dU[4 * i, c, k], dU[4 * i + 1, c, k], dU[4 * i + 2, c, k], dU[4 * i + 3, c, k]
                E[i, 0], E[i, 1], E[i, 2] = d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3
            for b in range(3):  # G^T (D G), column b
                e0, e1, e2, e3 = E[0, b], E[1, b], E[2, b], E[3, b]
                dw[k, c, 0, b] = e0 + 0.5 * (e1 + e2)
                dw[k, c, 1, b] = 0.5 * (e1 - e2)
                dw[k, c, 2, b] = 0.5 * (e1 + e2) + e3
