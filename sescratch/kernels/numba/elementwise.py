"""Elementwise kernels (Numba, CPU): ReLU, the residual sum's ReLU(a + b), the fan-out sum.

Semantics match NumPy exactly: ``relu_forward(x) = maximum(x, 0)`` (NaN propagates),
``relu_backward(dy, y) = dy where y > 0 else 0``, ``add_relu_forward(a, b) = maximum(a + b, 0)``
(one rounding of the sum, as NumPy's), ``add_into(total, g)``: ``total += g``. The loops run over
the flattened arrays in parallel (a ReLU of fewer than SERIAL_BELOW values on the calling thread),
one pass each and no temporary.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _relu(x1, y1):
    for i in prange(x1.shape[0]):
        v = x1[i]
        y1[i] = 0 if v <= 0 else v  # NaN > 0 and NaN <= 0 are both False: NaN stays


@njit(cache=True)
def _relu_serial(x1, y1):
    for i in range(x1.shape[0]):
        v = x1[i]
        y1[i] = 0 if v <= 0 else v


@njit(parallel=True, cache=True)
def _relu_backward(dy1, y1, dx1):
    for i in prange(dy1.shape[0]):
        dx1[i] = dy1[i] if y1[i] > 0 else 0


@njit(cache=True)
def _relu_backward_serial(dy1, y1, dx1):
    for i in range(dy1.shape[0]):
        dx1[i] = dy1[i] if y1[i] > 0 else 0


# Below this many values a ReLU runs on the calling thread: waking the pool costs more than the
# loop (the SE block's hidden layer, (N, C/r), is a few hundred values; a launch on Numba's
# workqueue layer costs ~150 us, the serial loop over 4096 values ~2 us).
SERIAL_BELOW = 1 << 15


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


def relu_forward(x):
    """``y = maximum(x, 0)``, same shape and dtype as x."""
    y = np.empty(x.shape, dtype=x.dtype)
    (_relu if x.size >= SERIAL_BELOW else _relu_serial)(_flat(x), y.reshape(-1))
    return y


def relu_backward(dy, y):
    """``dx = dy where y > 0, else 0`` (y is the forward output)."""
    dx = np.empty(dy.shape, dtype=dy.dtype)
    (_relu_backward if dy.size >= SERIAL_BELOW else _relu_backward_serial)(_flat(dy), _flat(y), dx.reshape(-1))
    return dx



@njit(parallel=True, cache=True)
def _add_relu(a1, b1, y1):
    for i in prange(a1.shape[0]):
        v = a1[i] + b1[i]
        y1[i] = 0 if v <= 0 else v


@njit(parallel=True, cache=True)
def _add_into(t1, g1):
    for i in prange(t1.shape[0]):
        t1[i] += g1[i]


def add_relu_forward(a, b):
    """``y = maximum(a + b, 0)``, same shape and dtype as a."""
    y = np.empty(a.shape, dtype=a.dtype)
    _add_relu(_flat(a), _flat(b), y.reshape(-1))
    return y


def add_into(total, g):
    """``total += g`` in place (total C-contiguous); returns total."""
    _add_into(total.reshape(-1), _flat(g))
    return total
