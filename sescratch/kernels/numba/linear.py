"""The fully connected layer's products (NumPy's BLAS, CPU): small ones with OpenBLAS on one thread.

The products are :func:`sescratch.ops.linear_forward_reference`'s and
:func:`~sescratch.ops.linear_backward_reference`'s, the same calls in the same order (so the
results are the reference's bits); what this family adds is where OpenBLAS runs them. A product
with ``M*N*K`` below :data:`SMALL_PRODUCT` (the SE block's excitation: 128x64 by 64x4 in
SE-ResNet-20) is one that OpenBLAS would not split over its threads anyway
(:data:`sescratch.kernels.numba._scratch.GEMM_SIZE`), and here it runs with OpenBLAS's thread count
set to 1 (:func:`~sescratch.kernels.numba._scratch.blas_on_calling_thread`), as the conv chunks'
products do; larger ones (an ImageNet classifier) keep OpenBLAS's threads.

Why: measured on a 2-core AMD EPYC Zen 4 (2026-12-06; an A/B in one process, each variant a model
of its own, 25-40 interleaved rounds, PyTorch's steps between ours as in
``benchmarks/bench_train_step.py``), the SE-ResNet-20 training step was 1.050-1.077x ResNet-20's
with the excitation's 36 products made at OpenBLAS's 2 threads, 1.012-1.015x with them made as
here, and 1.00x with the excitation left out. The products themselves took 0.8 ms of the 190 ms
step either way: what the one-thread setting removed was a slowdown of the kernels that follow
them. Setting OpenBLAS to 1 thread and back before each product, without changing where it ran,
removed it as well, so the cause lies in OpenBLAS's thread state (not identified further); the
fix is the setting the conv kernels already use (``docs/benchmarks.md``, twelfth session).
"""
from __future__ import annotations

from sescratch.kernels.numba._scratch import GEMM_SIZE, blas_on_calling_thread
from sescratch.ops.linear import linear_backward_reference, linear_forward_reference

SMALL_PRODUCT = GEMM_SIZE  # M*N*K at most this: OpenBLAS runs it on one thread whatever its setting


def linear_forward(x, w, b):
    """``y = x @ w.T (+ b)``, as :func:`sescratch.ops.linear_forward_reference`."""
    if x.shape[0] * w.shape[0] * w.shape[1] > SMALL_PRODUCT:
        return linear_forward_reference(x, w, b)
    with blas_on_calling_thread():
        return linear_forward_reference(x, w, b)


def linear_backward(dy, x, w, has_bias):
    """``(dx, dw, db)``, as :func:`sescratch.ops.linear_backward_reference`."""
    if x.shape[0] * w.shape[0] * w.shape[1] > SMALL_PRODUCT:
        return linear_backward_reference(dy, x, w, has_bias)
    with blas_on_calling_thread():
        return linear_backward_reference(dy, x, w, has_bias)
