"""The batch-norm layer, with the ReLU (and residual sum) that follows it as one op when asked.

:meth:`BatchNorm2d.forward` is batch norm alone. A ResNet never leaves it alone: every
``conv-bn`` is followed by a ReLU, directly or after the shortcut is added. The block code says
so with :meth:`~BatchNorm2d.forward_relu` (``ReLU(BN(x))``) and
:meth:`~BatchNorm2d.forward_add_relu` (``ReLU(BN(x) + residual)``), each one op
(:func:`sescratch.ops.batchnorm2d_relu_forward`) whose backward is the matching
``backward_relu`` / ``backward_add_relu``. Calling the other backward after one forward is an
error, not a silently wrong gradient.
"""
from __future__ import annotations

import numpy as np

from sescratch import ops
from sescratch.nn import init
from sescratch.ops._checks import check_positive_int
from sescratch.nn.module import Module, Parameter, Record, check_channels
from sescratch.ops.sync_batchnorm import (SyncBatchNorm2dCache, sync_batchnorm2d_backward,
                                          sync_batchnorm2d_forward)

__all__ = ["BatchNorm2d"]

_FORWARDS = {"bn": "forward", "relu": "forward_relu", "add_relu": "forward_add_relu"}


class BatchNorm2d(Module):
    """Batch norm over (N, H, W) per channel; batch statistics in training, running ones in eval."""

    _buffer_names = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        check_positive_int(type(self).__name__, "num_features", num_features)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(init.ones((num_features,)))
        self.bias = Parameter(init.zeros((num_features,)))
        self.running_mean = np.zeros((num_features,), dtype=np.float32)
        self.running_var = np.ones((num_features,), dtype=np.float32)
        self.num_batches_tracked = np.zeros((), dtype=np.int64)
        # Sync BN (issue 14): a communicator (rank, size, allreduce_sum) makes training mode use
        # the statistics of the global batch; set by sescratch.train.distributed.use_sync_batchnorm.
        self.communicator = None
        self._ran = None  # which forward ran last: "bn", "relu" or "add_relu"

    def forward(self, x):
        y, self._cache = self._normalize(x)
        self._ran = "bn"
        return y

    def backward(self, dy):
        self._check_ran("bn", "backward")
        if isinstance(self._cache, SyncBatchNorm2dCache):  # issue 14: dgamma, dbeta are this rank's shares
            dx, dgamma, dbeta = sync_batchnorm2d_backward(dy, self._cache)
        else:
            dx, dgamma, dbeta = ops.batchnorm2d_backward(dy, self._cache)
        self._accumulate(dgamma, dbeta)
        return dx

    def forward_relu(self, x):
        """``ReLU(BN(x))`` in one pass (a branch's conv-BN-ReLU); its backward is :meth:`backward_relu`."""
        y = self._fused_forward(x, None)
        self._ran = "relu"
        return y

    def backward_relu(self, dy):
        """``dx`` for the last :meth:`forward_relu` (the ReLU's mask folded into batch norm's backward)."""
        self._check_ran("relu", "backward_relu")
        dx, _ = self._fused_backward(dy)
        return dx

    def forward_add_relu(self, x, residual):
        """``ReLU(BN(x) + residual)`` in one pass (the end of a plain residual unit, ``residual`` its
        shortcut); its backward is :meth:`backward_add_relu`."""
        y = self._fused_forward(x, residual)
        self._ran = "add_relu"
        return y

    def backward_add_relu(self, dy):
        """``(dx, dresidual)`` for the last :meth:`forward_add_relu`: x and the residual met in the
        sum before the ReLU, so ``dresidual = dy * [y > 0]``, the gradient of that sum."""
        self._check_ran("add_relu", "backward_add_relu")
        return self._fused_backward(dy)

    # -- the pieces -------------------------------------------------------------------------
    def _normalize(self, x):
        """Batch norm alone: ``(y, cache)``, counting the batch in training mode."""
        if self.training and self.communicator is not None:
            out = sync_batchnorm2d_forward(
                x, self.weight.data, self.bias.data, self.running_mean, self.running_var,
                reduce=self.communicator.allreduce_sum, momentum=self.momentum, eps=self.eps)
        else:
            out = ops.batchnorm2d_forward(
                x, self.weight.data, self.bias.data, self.running_mean, self.running_var,
                training=self.training, momentum=self.momentum, eps=self.eps)
        if self.training:
            self.num_batches_tracked[...] += 1
        return out

    def _fused_forward(self, x, residual):
        if self.training and self.communicator is not None:  # sync BN: its own op, then the ReLU
            z, self._cache = self._normalize(x)
            if residual is None:
                y, self._relu_cache = ops.relu_forward(z)
            else:
                y, self._relu_cache = ops.add_relu_forward(z, residual)
            return y
        y, self._cache = ops.batchnorm2d_relu_forward(
            x, self.weight.data, self.bias.data, self.running_mean, self.running_var,
            training=self.training, momentum=self.momentum, eps=self.eps, residual=residual)
        self._relu_cache = None
        if self.training:
            self.num_batches_tracked[...] += 1
        return y

    def _fused_backward(self, dy):
        """``(dx, dresidual)``; dresidual None after :meth:`forward_relu`."""
        if self._relu_cache is not None:  # sync BN: the ReLU's backward, then batch norm's
            if self._ran == "relu":
                dz, dr = ops.relu_backward(dy, self._relu_cache), None
            else:
                dz, dr = ops.add_relu_backward(dy, self._relu_cache)
            dx, dgamma, dbeta = sync_batchnorm2d_backward(dz, self._cache)
        else:
            dx, dgamma, dbeta, dr = ops.batchnorm2d_relu_backward(dy, self._cache)
        self._accumulate(dgamma, dbeta)
        return dx, dr

    def _accumulate(self, dgamma, dbeta):
        self.weight.grad += dgamma
        self.bias.grad += dbeta
        self._ran = None  # used: a second backward would add the gradients twice

    def _check_ran(self, kind, method):
        if self._ran != kind:
            ran = ("no forward since the last backward (each forward has one backward)" if self._ran is None
                   else f"{_FORWARDS[self._ran]}()")
            raise RuntimeError(f"BatchNorm2d.{method}: the last forward was {ran}; "
                               f"{method}() is the backward of {_FORWARDS[kind]}()")

    def trace(self, shape, name, records=None):
        check_channels(name, "BatchNorm2d", shape, self.num_features)
        if records is not None:
            records.append(Record(name, "BatchNorm2d", tuple(shape), self.num_parameters(), 0, part="bn"))
        return tuple(shape)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
