"""The tile transforms of Winograd F(4x4, 3x3) (Numba, CPU), for :mod:`.winograd`'s drivers.

A 4x4 output tile from a 6x6 input tile ``d`` (Lavin & Gray, 2016, points 0, +-1, +-2, inf):

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A,

36 multiplications per tile and channel pair where the direct algorithm makes 144 and F(2x2, 3x3)
(:mod:`.winograd_f2`) 64: the 36 products ``M[ξ] = V[ξ] @ U[ξ]`` of the drivers are 44 % smaller
than F(2x2)'s 16 for the same output, and the transformed tiles (36 values per 16 outputs instead
of 16 per 4) 44 % less memory. The price is rounding: the transforms multiply by up to 8 and
divide by 24, so float32 results differ from the direct convolution by about 10x more than with
F(2x2) (still ~1e-6 normwise; float64 ~1e-14, tests/kernels/test_conv_paths.py).

Layout as in :mod:`.winograd_f2`, with 4 column phases instead of 2: an image is copied into a
zero-padded channels-last scratch ``L[p, i, s*C + c]`` holding column ``4s + p``
(:mod:`.winograd_layout`). Tile ``tw`` reads columns ``4tw .. 4tw+5``: phases 0..3 of group
``tw`` and phases 0, 1 of group ``tw + 1``, so each transform step is a unit-stride loop over
``q = tw*C + c`` for a whole band of tiles.
Every public function here has the signature and contract of its F(2x2) namesake, with 36 positions
``6*i + j`` instead of 16 and tiles of 4x4 outputs: the drivers take either module.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sescratch.kernels.numba.winograd_layout import (from_phases, from_phases_plus, to_phases,
                                                    to_phases_summing)

POINTS, STEP = 36, 4  # positions ξ of a transformed tile; outputs per tile side


@njit(inline="always")
def _x2(a):
    """2a as a sum: a product with the literal 2 would make float32 values float64 in Numba."""
    return a + a


@njit(inline="always")
def _x4(a):
    return _x2(_x2(a))


@njit(inline="always")
def _bt(d0, d1, d2, d3, d4, d5):
    """B^T d for 6 input values (rows 4 0 -5 0 1 0 | 0 -4 -4 1 1 0 | 0 4 -4 -1 1 0 |
    0 -2 -1 2 1 0 | 0 2 -1 -2 1 0 | 0 4 0 -5 0 1)."""
    e42 = d4 - d2
    return (_x4(d0 - d2) + e42, d3 + d4 - _x4(d1 + d2), _x4(d1 - d2) + (d4 - d3),
            _x2(d3 - d1) + e42, _x2(d1 - d3) + e42, _x4(d1 - d3) + (d5 - d3))


@njit(inline="always")
def _b(v0, v1, v2, v3, v4, v5):
    """B v, the adjoint of :func:`_bt`."""
    s = v0 + v3 + v4
    return (_x4(v0), _x4(v2 - v1 + v5) + _x2(v4 - v3), -(_x4(v0 + v1 + v2) + s),
            (v1 - v2) + _x2(v3 - v4) - _x4(v5) - v5, s + v1 + v2, v5)


@njit(inline="always")
def _at(m0, m1, m2, m3, m4, m5):
    """A^T m for one column of 6 Winograd values: 4 outputs (rows 1 1 1 1 1 0 | 0 1 -1 2 -2 0 |
    0 1 1 4 4 0 | 0 1 -1 8 -8 1)."""
    s12, d12, s34, d34 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + s12 + s34, d12 + _x2(d34), s12 + _x4(s34), d12 + _x4(_x2(d34)) + m5


@njit(inline="always")
def _a(y0, y1, y2, y3):
    """A y, the adjoint of :func:`_at`: 6 values from 4."""
    e, o, e4, o8 = y0 + y2, y1 + y3, y0 + _x4(y2), _x2(y1 + _x4(y3))
    return y0, e + o, e - o, e4 + o8, e4 - o8, y3


@njit(nogil=True, cache=True)
def input_tiles(x, n0, PH, PW, TH, TW, V):
    """V[6*i + j, t, c] = (B^T d B)[i, j], d the 6x6 tile of x_pad[n, c] at (4*th, 4*tw),
    t = ((n - n0)*TH + th)*TW + tw, for the images n0 .. n0 + V.shape[1] // (TH*TW)."""
    N, C, H, W = x.shape
    T, Q, B = V.shape[1], (TW + 1) * C, TW * C
    L = np.zeros((4, 4 * TH + 2, Q), dtype=x.dtype)  # L[p, i, s*C + c] = x_pad[n, c, i, 4s + p]
    R = np.empty((4, 6, Q), dtype=x.dtype)  # B^T d of a band of 6 rows, split the same way
    Vf = V.reshape(36, T * C)  # 36,T*C
    for m in range(T // (TH * TW)):
        n = n0 + m
        to_phases(x, n, PH, PW, 4, L)  # the padding of L stays zero: only the image is written
        for th in range(TH):
            for p in range(4):  # rows first, once per band: R = B^T (rows 4th .. 4th+5)
                l0, l1, l2 = L[p, 4 * th], L[p, 4 * th + 1], L[p, 4 * th + 2]
                l3, l4, l5 = L[p, 4 * th + 3], L[p, 4 * th + 4], L[p, 4 * th + 5]
                r0, r1, r2, r3, r4, r5 = R[p, 0], R[p, 1], R[p, 2], R[p, 3], R[p, 4], R[p, 5]
                for q in range(Q):
                    r0[q], r1[q], r2[q], r3[q], r4[q], r5[q] = _bt(l0[q], l1[q], l2[q], l3[q], l4[q], l5[q])
            cols = slice((m * TH + th) * B, (m * TH + th + 1) * B)  # the band's tiles
            for i in range(6):  # then the columns 4tw .. 4tw+5 of every tile at once
                c0, c1, c2, c3 = R[0, i], R[1, i], R[2, i], R[3, i]  # columns 4tw .. 4tw+3
                c4, c5 = c0[C:], c1[C:]  # columns 4tw+4, 4tw+5: phases 0, 1 of the next group
                v0, v1, v2 = Vf[6 * i, cols], Vf[6 * i + 1, cols], Vf[6 * i + 2, cols]
                v3, v4, v5 = Vf[6 * i + 3, cols], Vf[6 * i + 4, cols], Vf[6 * i + 5, cols]
                for q in range(B):
                    v0[q], v1[q], v2[q], v3[q], v4[q], v5[q] = _bt(c0[q], c1[q], c2[q], c3[q], c4[q], c5[q])


@njit(nogil=True, cache=True)
def input_tiles_adjoint(dV, n0, PH, PW, TH, TW, dx):
    """dx[n] = crop(sum of the tiles B dV B^T added at (4*th, 4*tw)): input_tiles transposed."""
    N, C, H, W = dx.shape
    T, Q, B = dV.shape[1], (TW + 1) * C, TW * C
    L = np.empty((4, 4 * TH + 2, Q), dtype=dx.dtype)  # d x_pad[n], split as in input_tiles
    R = np.empty((4, 6, Q), dtype=dx.dtype)  # d (B^T d) of a band: dV B^T, tiles added up
    Z = np.empty((2, B), dtype=dx.dtype)  # columns 4tw+4, 4tw+5 of every tile, added in after
    KA = np.empty((4, 2, Q), dtype=dx.dtype)  # a band's rows 4, 5, which the next band adds to:
    KB = np.empty((4, 2, Q), dtype=dx.dtype)  # read from one, written to the other (see below)
    dVf = dV.reshape(36, T * C)  # 36,T*C
    for m in range(T // (TH * TW)):
        n = n0 + m
        KA[:] = 0  # no band before the first
        for th in range(TH):
            cols = slice((m * TH + th) * B, (m * TH + th + 1) * B)
            for i in range(6):  # columns first: B applied to each tile's row i
                v0, v1, v2 = dVf[6 * i, cols], dVf[6 * i + 1, cols], dVf[6 * i + 2, cols]
                v3, v4, v5 = dVf[6 * i + 3, cols], dVf[6 * i + 4, cols], dVf[6 * i + 5, cols]
                c0, c1, c2, c3 = R[0, i], R[1, i], R[2, i], R[3, i]
                z4, z5 = Z[0], Z[1]
                for q in range(B):  # columns 4tw .. 4tw+3 belong to group tw alone
                    c0[q], c1[q], c2[q], c3[q], z4[q], z5[q] = _b(v0[q], v1[q], v2[q], v3[q], v4[q], v5[q])
                for p in range(4):  # the last group holds only the last tile's columns 4, 5
                    R[p, i, B:] = 0
                e0, e1 = c0[C:], c1[C:]
                for q in range(B):  # columns 4tw+4, 4tw+5 are phases 0, 1 of group tw + 1
                    e0[q] += z4[q]
                    e1[q] += z5[q]
            # then rows: B (dV B^T) for the 6 rows the band read. Rows 4th, 4th+1 were the previous
            # band's rows 4, 5: its carry is added in, and this band's rows 4, 5 become the next
            # carry. Every store is plain and no array is both read and written in the loop: a
            # `+=` into rows of L made LLVM give up SIMD (5x slower; docs/benchmarks.md).
            carry, out = (KA, KB) if th % 2 == 0 else (KB, KA)
            for p in range(4):
                l0, l1, l2, l3 = L[p, 4 * th], L[p, 4 * th + 1], L[p, 4 * th + 2], L[p, 4 * th + 3]
                k4, k5, n4, n5 = carry[p, 0], carry[p, 1], out[p, 0], out[p, 1]
                r0, r1, r2, r3, r4, r5 = R[p, 0], R[p, 1], R[p, 2], R[p, 3], R[p, 4], R[p, 5]
                for q in range(Q):
                    d0, d1, d2, d3, d4, d5 = _b(r0[q], r1[q], r2[q], r3[q], r4[q], r5[q])
                    l0[q], l1[q], l2[q], l3[q] = d0 + k4[q], d1 + k5[q], d2, d3
                    n4[q], n5[q] = d4, d5
        tail = KA if TH % 2 == 0 else KB  # the last band's rows 4, 5: no band after it
        for p in range(4):
            l4, l5, t4, t5 = L[p, 4 * TH], L[p, 4 * TH + 1], tail[p, 0], tail[p, 1]
            for q in range(Q):
                l4[q], l5[q] = t4[q], t5[q]
        from_phases(L, PH, PW, 4, dx, n)


@njit(nogil=True, cache=True)
def _at_m(Mf, t0, Q, R):
    """R[i, j] = (A^T m)[i, j] for the band's tiles, q = tw*K + k < Q: A^T down each column j.
    Each pass of the output transforms is a function of its own: inlined into one loop nest,
    LLVM vectorised them worse (the adjoint 1.3-1.6x slower; the input transforms and F(2x2)'s,
    tried the same way, were not faster: docs/benchmarks.md)."""
    for j in range(6):
        m0, m1, m2 = Mf[j, t0:t0 + Q], Mf[6 + j, t0:t0 + Q], Mf[12 + j, t0:t0 + Q]
        m3, m4, m5 = Mf[18 + j, t0:t0 + Q], Mf[24 + j, t0:t0 + Q], Mf[30 + j, t0:t0 + Q]
        r0, r1, r2, r3 = R[0, j], R[1, j], R[2, j], R[3, j]
        for q in range(Q):
            r0[q], r1[q], r2[q], r3[q] = _at(m0[q], m1[q], m2[q], m3[q], m4[q], m5[q])


@njit(nogil=True, cache=True)
def _at_m_a(R, Y, i0):
    """Rows i0 .. i0+3 of Y = (A^T m) A: row i of R gives output columns 4tw .. 4tw+3 (phases)."""
    Q = Y.shape[2]
    for i in range(4):
        a0, a1, a2, a3, a4, a5 = R[i, 0], R[i, 1], R[i, 2], R[i, 3], R[i, 4], R[i, 5]
        y0, y1, y2, y3 = Y[0, i0 + i], Y[1, i0 + i], Y[2, i0 + i], Y[3, i0 + i]
        for q in range(Q):
            y0[q], y1[q], y2[q], y3[q] = _at(a0[q], a1[q], a2[q], a3[q], a4[q], a5[q])


@njit(nogil=True, cache=True)
def output_tiles(M, bias, n0, TH, TW, y):
    """y[n, k] = crop of the 4x4 tiles A^T m A, m = M[:, t, k] as 6x6, plus bias[k]."""
    N, K, OH, OW = y.shape
    T, Q = M.shape[1], TW * K
    Y = np.empty((4, 4 * TH, Q), dtype=y.dtype)  # Y[p, i, s*K + k] = y[n, k, i, 4s + p], uncropped
    R = np.empty((4, 6, Q), dtype=y.dtype)  # R[i, j] = (A^T m)[i, j] for the band's tiles
    Mf = M.reshape(36, T * K)  # 36,T*K
    for m in range(T // (TH * TW)):
        for th in range(TH):  # each band: A^T down the tiles' columns, then A along their rows
            _at_m(Mf, (m * TH + th) * Q, Q, R)
            _at_m_a(R, Y, 4 * th)
        from_phases_plus(Y, 4, bias, y, n0 + m)


@njit(nogil=True, cache=True)
def _a_dy(L, i0, R):
    """R[p, i] = (A dy)[i] from the 4 rows i0 .. i0+3 of every phase p of L: a band's rows."""
    Q = L.shape[2]
    for p in range(4):
        l0, l1, l2, l3 = L[p, i0], L[p, i0 + 1], L[p, i0 + 2], L[p, i0 + 3]
        r0, r1, r2, r3, r4, r5 = R[p, 0], R[p, 1], R[p, 2], R[p, 3], R[p, 4], R[p, 5]
        for q in range(Q):
            r0[q], r1[q], r2[q], r3[q], r4[q], r5[q] = _a(l0[q], l1[q], l2[q], l3[q])


@njit(nogil=True, cache=True)
def _a_dy_at(R, dMf, t0, Q):
    """dMf[6*i + j, t0 + q] = (A dy A^T)[i, j] for the band's tiles: the 4 phases of row i of R
    are the tiles' columns 4tw .. 4tw+3."""
    for i in range(6):
        e0, e1, e2, e3 = R[0, i], R[1, i], R[2, i], R[3, i]
        d0, d1, d2 = dMf[6 * i, t0:t0 + Q], dMf[6 * i + 1, t0:t0 + Q], dMf[6 * i + 2, t0:t0 + Q]
        d3, d4, d5 = dMf[6 * i + 3, t0:t0 + Q], dMf[6 * i + 4, t0:t0 + Q], dMf[6 * i + 5, t0:t0 + Q]
        for q in range(Q):
            d0[q], d1[q], d2[q], d3[q], d4[q], d5[q] = _a(e0[q], e1[q], e2[q], e3[q])


@njit(nogil=True, cache=True)
def output_tiles_adjoint(dy, n0, TH, TW, dM, plane_sums):
    """dM[:, t, k] = A dy_t A^T (dy_t the 4x4 tile of dy[n, k], zero beyond OH, OW): the transpose
    of output_tiles. Also plane_sums[n, k] = sum of dy[n, k] (for db), unless plane_sums has
    no rows (no bias: the plain copy is 10-30 % faster than the summing one)."""
    N, K, OH, OW = dy.shape
    T, Q = dM.shape[1], TW * K
    L = np.zeros((4, 4 * TH, Q), dtype=dy.dtype)  # dy[n] split as Y of output_tiles; zero beyond
    R = np.empty((4, 6, Q), dtype=dy.dtype)  # A dy for the band of rows 4th .. 4th+3
    dMf = dM.reshape(36, T * K)  # 36,T*K
    for m in range(T // (TH * TW)):
        n = n0 + m
        if plane_sums.shape[0]:
            to_phases_summing(dy, n, 4, L, plane_sums[n])  # beyond OH, OW, L stays zero
        else:
            to_phases(dy, n, 0, 0, 4, L)
        for th in range(TH):  # each band: A along the rows, then down every tile's columns
            _a_dy(L, 4 * th, R)
            _a_dy_at(R, dMf, (m * TH + th) * Q, Q)


_SIXTH, _TWELFTH, _TWENTYFOURTH = 1.0 / 6, 1.0 / 12, 1.0 / 24  # float64 products, not divisions


@njit(inline="always")
def _g(g0, g1, g2):
    """G g for a 3-tap filter: the 6 Winograd points."""
    s = g0 + g2
    return (0.25 * g0, -(s + g1) * _SIXTH, (g1 - s) * _SIXTH,
            g0 * _TWENTYFOURTH + g1 * _TWELFTH + g2 * _SIXTH,
            g0 * _TWENTYFOURTH - g1 * _TWELFTH + g2 * _SIXTH, g2)


@njit(inline="always")
def _gt(e0, e1, e2, e3, e4, e5):
    """G^T e, the adjoint of :func:`_g`: 3 taps from 6 points."""
    return (0.25 * e0 - (e1 + e2) * _SIXTH + (e3 + e4) * _TWENTYFOURTH,
            (e2 - e1) * _SIXTH + (e3 - e4) * _TWELFTH, (e3 + e4 - e1 - e2) * _SIXTH + e5)


@njit(nogil=True, cache=True)
def weight_tiles(w, U):
    """U[6*i + j, c, k] = (G g G^T)[i, j] for g = w[k, c]: for each c, all K filters at once."""
    K, C = w.shape[:2]
    g = np.empty((3, 3, K), dtype=np.float64)  # g[a, b, k] = w[k, c, a, b]
    T = np.empty((6, 3, K), dtype=np.float64)  # G g
    Uc = np.empty((36, K), dtype=U.dtype)  # U[:, c]
    for c in range(C):
        for k in range(K):
            for a in range(3):
                for b in range(3):
                    g[a, b, k] = w[k, c, a, b]
        for b in range(3):  # G g, column b
            g0, g1, g2 = g[0, b], g[1, b], g[2, b]
            t0, t1, t2, t3, t4, t5 = T[0, b], T[1, b], T[2, b], T[3, b], T[4, b], T[5, b]
            for k in range(K):
                t0[k], t1[k], t2[k], t3[k], t4[k], t5[k] = _g(g0[k], g1[k], g2[k])
        for i in range(6):  # (G g) G^T, row i
            t0, t1, t2 = T[i, 0], T[i, 1], T[i, 2]
            u0, u1, u2 = Uc[6 * i], Uc[6 * i + 1], Uc[6 * i + 2]
            u3, u4, u5 = Uc[6 * i + 3], Uc[6 * i + 4], Uc[6 * i + 5]
            for k in range(K):
                u0[k], u1[k], u2[k], u3[k], u4[k], u5[k] = _g(t0[k], t1[k], t2[k])
        for t in range(36):  # 36 runs of K values: U's planes may lie a multiple of 4 KiB apart
            for k in range(K):
                U[t, c, k] = Uc[t, k]


@njit(nogil=True, cache=True)
def weight_tiles_adjoint(dU, dw):
    """dw[k, c] = G^T D G for D = dU[:, c, k] as 6x6: the transpose of weight_tiles."""
    K, C = dw.shape[:2]
    D = np.empty((36, K), dtype=np.float64)  # dU[:, c]
    E = np.empty((6, 3, K), dtype=np.float64)  # D G
    F = np.empty((3, 3, K), dtype=np.float64)  # G^T D G
    for c in range(C):
        for t in range(36):
            for k in range(K):
                D[t, k] = dU[t, c, k]
        for i in range(6):  # D G, row i
            d0, d1, d2 = D[6 * i], D[6 * i + 1], D[6 * i + 2]
            d3, d4, d5 = D[6 * i + 3], D[6 * i + 4], D[6 * i + 5]
            e0, e1, e2 = E[i, 0], E[i, 1], E[i, 2]
            for k in range(K):
                e0[k], e1[k], e2[k] = _gt(d0[k], d1[k], d2[k], d3[k], d4[k], d5[k])
        for b in range(3):  # G^T (D G), column b
            e0, e1, e2, e3, e4, e5 = E[0, b], E[1, b], E[2, b], E[3, b], E[4, b], E[5, b]
            f0, f1, f2 = F[0, b], F[1, b], F[2, b]
            for k in range(K):
                f0[k], f1[k], f2[k] = _gt(e0[k], e1[k], e2[k], e3[k], e4[k], e5[k])
        for k in range(K):
            for a in range(3):
                for b in range(3):
                    dw[k, c, a, b] = F[a, b, k]
