"""Batch norm's running statistics (Numba, CPU): both buffers updated in place in one call.

Same semantics and roundings as :func:`sescratch.ops.batchnorm2d_running_update_reference`:
``(1 - momentum) * running`` is rounded to the buffer's dtype (as NumPy does for a Python float
times a float32 array), the batch's term ``momentum * stat (* M / (M - 1))`` is float64 (the
statistics are float64) evaluated left to right, and the sum is rounded once on the store; no
``fastmath``, so the result is bit-for-bit NumPy's.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _update(running, stat, keep, momentum, M, unbiased):
    for c in range(running.size):
        t = momentum * stat[c]
        if unbiased:
            t = t * M / (M - 1.0)
        running[c] = running[c] * keep + t


def batchnorm2d_running_update(running_mean, running_var, mean, var, momentum, M):
    """In place on the (C,) buffers that are not None; ``mean``, ``var`` float64 (C,)."""
    for running, stat, unbiased in ((running_mean, mean, False), (running_var, var, True)):
        if running is not None:
            keep = running.dtype.type(1 - momentum)
            _update(running, np.asarray(stat, dtype=np.float64), keep, float(momentum), float(M), unbiased)
