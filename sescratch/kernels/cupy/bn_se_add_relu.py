"""The passes of :mod:`sescratch.ops.bn_se_add_relu` on the GPU (CuPy).

Each is the op's ``xp`` reference function run on CuPy arrays (a few array expressions, each a
CuPy kernel launch): correct by construction, not fused. No GPU was available to write and
measure fused ``ElementwiseKernel``/``ReductionKernel`` versions against.
"""
from __future__ import annotations

from sescratch.ops import bn_se_add_relu as _op


def batchnorm2d_plane_statistics(x):
    return _op.batchnorm2d_plane_statistics_reference(x)


def plane_affine_add_relu(x, A, B, r):
    return _op.plane_affine_add_relu_reference(x, A, B, r)


def relu_plane_sums(dy, y, x, mean):
    return _op.relu_plane_sums_reference(dy, y, x, mean)


def batchnorm2d_scaled_backward_dx(dq, x, mean, k, s, c, dbeta_mean, dgamma_mean, inv_std):
    return _op.batchnorm2d_scaled_backward_dx_reference(dq, x, mean, k, s, c, dbeta_mean, dgamma_mean, inv_std)
