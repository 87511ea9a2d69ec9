"""Batch norm's running statistics (CuPy, GPU): one launch updates both buffers in place.

The NumPy expressions of :func:`sescratch.ops.batchnorm2d_running_update_reference` take about
ten launches of C-element kernels per layer on a GPU; this is one, with the same roundings
(``(1 - momentum) * running`` in the buffer's dtype, the batch's term in float64, one rounding
on the store; compiled without fused multiply-adds), so it equals the CPU's bit for bit.
"""
from __future__ import annotations

import cupy as cp

_update_both = cp.ElementwiseKernel(
    "float64 mean, float64 var, T keep, float64 momentum, float64 M",
    "T running_mean, T running_var",
    """
    running_mean = (T)((double)(running_mean * keep) + momentum * mean);
    running_var = (T)((double)(running_var * keep) + momentum * var * M / (M - 1.0));
    """,
    "sescratch_bn_running_update",
    options=("--fmad=false",),
)

_update_one = cp.ElementwiseKernel(
    "float64 stat, T keep, float64 momentum, float64 factor_num, float64 factor_den",
    "T running",
    "running = (T)((double)(running * keep) + momentum * stat * factor_num / factor_den);",
    "sescratch_bn_running_update_one",
    options=("--fmad=false",),
)


def batchnorm2d_running_update(running_mean, running_var, mean, var, momentum, M):
    """In place on the (C,) buffers that are not None; ``mean``, ``var`` float64 (C,)."""
    if running_mean is not None and running_var is not None and running_mean.dtype == running_var.dtype:
        keep = running_mean.dtype.type(1 - momentum)
        _update_both(mean, var, keep, float(momentum), float(M), running_mean, running_var)
        return
    for running, stat, num, den in ((running_mean, mean, 1.0, 1.0), (running_var, var, float(M), M - 1.0)):
        if running is not None:
            _update_one(stat, running.dtype.type(1 - momentum), float(momentum), num, den, running)
