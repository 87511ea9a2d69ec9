"""Batch norm + (residual) + ReLU on the GPU (CuPy): :mod:`sescratch.ops.batchnorm_relu`.

Composed from this family's batch-norm and elementwise kernels, one launch each, rather than
fused: correct by construction, with the same results as those kernels run one after the other.
(No GPU was available to measure a fused version against; on a GPU the memory passes saved
matter less than on a 2-core CPU.)
"""
from __future__ import annotations

from sescratch.kernels.cupy.elementwise import add_relu_forward, relu_backward, relu_forward
from sescratch.kernels.cupy.norm import batchnorm2d_backward, batchnorm2d_eval_forward, batchnorm2d_forward


def _add_relu(z, r):
    return relu_forward(z) if r is None else add_relu_forward(z, r)


def batchnorm2d_relu_forward(x, gamma, beta, eps, r):
    """Training mode: ``(y, mean, var)`` with ``y = max(BN(x) + r, 0)`` (r None: no residual)."""
    z, mean, var = batchnorm2d_forward(x, gamma, beta, eps)
    return _add_relu(z, r), mean, var


def batchnorm2d_relu_backward(dy, y, x, mean, inv_std, gamma, has_residual):
    """``(dx, dgamma, dbeta, dr)``; dr (the gradient of the sum before the ReLU) None without a residual."""
    dz = relu_backward(dy, y)
    dx, dgamma, dbeta = batchnorm2d_backward(dz, x, mean, inv_std, gamma)
    return dx, dgamma, dbeta, dz if has_residual else None


def batchnorm2d_eval_relu_forward(x, scale, shift, r):
    """Eval mode: ``y = max(x * scale + shift (+ r), 0)``."""
    return _add_relu(batchnorm2d_eval_forward(x, scale, shift), r)
