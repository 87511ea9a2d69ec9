"""The scratch layout both Winograd tilings share (:mod:`.winograd_f2`, :mod:`.winograd_f4`).

An image (or a gradient of one) is copied channels last into a scratch ``L`` whose columns are
split by phase: ``L[p, i, s*C + c]`` holds column ``step*s + p`` of channel ``c`` (``step`` = 2
or 4, the tile's output side), so that each transform step reads whole bands of tiles with unit
stride. The helpers are inlined into the transform kernels, where ``step`` is a literal and the
``%`` and ``//`` by it compile to bit operations.
"""
from __future__ import annotations

from numba import njit


@njit(inline="always")
def to_phases(a, n, PH, PW, step, L):
    """``L[(PW + j) % step, PH + i, (PW + j) // step * C + c] = a[n, c, i, j]``; the rest of L
    (the zero padding) is left as it is."""
    N, C, H, W = a.shape
    for i in range(H):
        for j in range(W):
            px = L[(PW + j) % step, PH + i, (PW + j) // step * C:]
            for c in range(C):
                px[c] = a[n, c, i, j]


@njit(inline="always")
def to_phases_summing(a, n, step, L, sums):
    """:func:`to_phases` without padding, also ``sums[c] = sum of a[n, c]`` (float64): a gradient's
    plane sums (its bias gradient) read in the same pass."""
    N, C, H, W = a.shape
    sums[:] = 0
    for i in range(H):
        for j in range(W):
            px = L[j % step, i, j // step * C:]
            for c in range(C):
                px[c] = a[n, c, i, j]
                sums[c] += a[n, c, i, j]


@njit(inline="always")
def from_phases(L, PH, PW, step, a, n):
    """``a[n, c, i, j] = L[(PW + j) % step, PH + i, (PW + j) // step * C + c]``: the inverse of
    :func:`to_phases`, cropped to ``a``'s size."""
    N, C, H, W = a.shape
    for c in range(C):
        for i in range(H):
            for j in range(W):
                a[n, c, i, j] = L[(PW + j) % step, PH + i, (PW + j) // step * C + c]


@njit(inline="always")
def from_phases_plus(L, step, bias, a, n):
    """:func:`from_phases` without padding, plus ``bias[c]``: the output tiles into y."""
    N, C, H, W = a.shape
    for c in range(C):
        for i in range(H):
            for j in range(W):
                a[n, c, i, j] = L[j % step, i, j // step * C + c] + bias[c]
