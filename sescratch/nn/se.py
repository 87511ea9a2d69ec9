"""The Squeeze-and-Excitation block (paper Sec. 3) as a module around :func:`sescratch.ops.se_block_forward`.

The math, one line per equation, and its backward with the fan-out sum
``du = du_scale + du_squeeze`` live in :mod:`sescratch.ops.se_block`; this module holds the two
FCs' parameters (``fc1``: ``W_1`` (C_r, C), ``fc2``: ``W_2`` (C, C_r)), adds their gradients into
``Parameter.grad`` and keeps the last excitation for analysis.

Notation: ``u`` (N, C, H, W) the features to recalibrate, ``r`` the reduction ratio,
``C_r = hidden = max(C // r, 1)`` the bottleneck width of the excitation.
"""
from __future__ import annotations

from sescratch import ops
from sescratch.nn.layers import Linear
from sescratch.nn.module import Module, Record, ShapeError
from sescratch.ops._checks import is_int
from sescratch.ops.se_block import GATES, SQUEEZES

__all__ = ["SEBlock", "SQUEEZES", "GATES"]


class SEBlock(Module):
    """Squeeze (pool) -> FC -> ReLU -> FC -> gate -> channel-wise scale.

    Parameters
    ----------
    channels : int
        ``C``, the channels of the features it recalibrates.
    reduction : int
        ``r``; the hidden width is ``max(channels // reduction, 1)`` unless ``hidden`` is given.
    bias : bool
        Biases in the two FCs (the SENet release has them).
    squeeze : {"avg", "max"}
        Global average pooling (the paper) or global max pooling (ablation, Table 11).
    gate : {"sigmoid", "tanh", "relu", "hard_sigmoid"}
        Excitation non-linearity (the paper: sigmoid; ablation, Table 12).
    hidden : int, optional
        Explicit hidden width.

    Attributes
    ----------
    excitation : array (N, C)
        The last ``s`` computed by :meth:`forward`, kept for analysis (paper §6.4, Fig. 6).
    keep_input : bool
        Set True (on an instance) to keep the maps ``u`` of each forward in :attr:`input`, the
        features before recalibration (False by default: the fused block tail never stores them,
        and computes them only when asked).
    input : array (N, C, H, W) or None
        The last ``u``, while ``keep_input`` is True.
    """

    keep_input = False

    def __init__(self, channels, reduction=16, *, bias=True, squeeze="avg", gate="sigmoid", hidden=None):
        super().__init__()
        if squeeze not in SQUEEZES:
            raise ValueError(f"SEBlock: squeeze must be one of {sorted(SQUEEZES)}, got {squeeze!r}")
        if gate not in GATES:
            raise ValueError(f"SEBlock: gate must be one of {sorted(GATES)}, got {gate!r}")
        if hidden is None:
            if not is_int(reduction) or reduction < 1:
                raise ValueError(f"SEBlock: reduction must be a positive int, got {reduction!r}")
            hidden = max(int(channels) // int(reduction), 1)
        elif not is_int(hidden) or hidden < 1:
            raise ValueError(f"SEBlock: hidden must be a positive int, got {hidden!r}")
        self.channels, self.reduction, self.hidden = channels, reduction, hidden
        self.squeeze, self.gate = squeeze, gate
        self.fc1 = Linear(channels, hidden, bias=bias)  # W_1: C -> C/r
        self.fc2 = Linear(hidden, channels, bias=bias)  # W_2: C/r -> C
        self.excitation = None
        self.input = None

    def forward(self, u):
        if u.ndim != 4 or u.shape[1] != self.channels:
            raise ValueError(
                f"SEBlock: expected u of shape (N, {self.channels}, H, W), got {tuple(u.shape)}"
            )
        fc1, fc2 = self.fc1, self.fc2
        y, self._cache = ops.se_block_forward(
            u, fc1.weight.data, None if fc1.bias is None else fc1.bias.data,
            fc2.weight.data, None if fc2.bias is None else fc2.bias.data,
            squeeze=self.squeeze, gate=self.gate,
        )  # N,C,H,W
        self.excitation = self._cache.scale_cache.s  # N,C
        self.input = u if self.keep_input else None
        return y

    def backward(self, dy):
        du, dw1, db1, dw2, db2 = ops.se_block_backward(dy, self._take("_cache"))
        self._accumulate(dw1, db1, dw2, db2)
        return du

    def fused_with_bn_available(self):
        """Can :meth:`forward_bn_add_relu` run for this block? (Its squeeze must be the average:
        the average of a batch-normalised map is read off batch norm's statistics.)"""
        return self.squeeze == "avg"

    def forward_bn_add_relu(self, bn, v, residual):
        """``ReLU(self(bn(v)) + residual)``, the tail of the standard SE-ResNet block, as one op
        (:func:`sescratch.ops.bn_se_add_relu_forward`): the squeeze comes from batch norm's plane
        statistics and the scale folds into its affine map, so the maps are read twice, written once.
        ``bn``'s running averages and batch count are updated as its own forward would, with the
        global batch's statistics when ``bn`` is synchronised (``bn.communicator``)."""
        fc1, fc2 = self.fc1, self.fc2
        sync = bn.training and bn.communicator is not None
        y, self._cache = ops.bn_se_add_relu_forward(
            v, bn.weight.data, bn.bias.data, bn.running_mean, bn.running_var,
            fc1.weight.data, None if fc1.bias is None else fc1.bias.data,
            fc2.weight.data, None if fc2.bias is None else fc2.bias.data, residual,
            training=bn.training, momentum=bn.momentum, eps=bn.eps, gate=self.gate,
            reduce=bn.communicator.allreduce_sum if sync else None)  # N,C,H,W
        if bn.training:
            bn.num_batches_tracked[...] += 1
        self.excitation = self._cache.s  # N,C
        self.input = ops.bn_se_add_relu_se_input(self._cache) if self.keep_input else None
        return y

    def backward_bn_add_relu(self, bn, dy):
        """``(dv, dresidual)`` for the last :meth:`forward_bn_add_relu` (with the same ``bn``); the
        gradients of the FCs and of ``bn``'s gamma and beta are added into their ``.grad``."""
        dv, dgamma, dbeta, dw1, db1, dw2, db2, dr = ops.bn_se_add_relu_backward(dy, self._take("_cache"))
        self._accumulate(dw1, db1, dw2, db2)
        bn.weight.grad += dgamma
        bn.bias.grad += dbeta
        return dv, dr

    def _accumulate(self, dw1, db1, dw2, db2):
        for layer, dw, db in ((self.fc1, dw1, db1), (self.fc2, dw2, db2)):
            layer.weight.grad += dw
            if layer.bias is not None:
                layer.bias.grad += db

    def trace(self, shape, name, records=None):
        if len(shape) != 3 or shape[0] != self.channels:
            raise ShapeError(f"layer '{name}' (SEBlock) expects input (N, {self.channels}, H, W), "
                             f"got (N, {', '.join(str(s) for s in shape)})")
        C, H, W = shape
        if records is not None:
            records.append(Record(f"{name}.squeeze", f"Global{self.squeeze.capitalize()}Pool", (C,),
                                  0, C * H * W, "se", "squeeze"))
        self.fc1.trace((C,), f"{name}.fc1", records, group="se")
        self.fc2.trace((self.hidden,), f"{name}.fc2", records, group="se")
        if records is not None:
            records.append(Record(f"{name}.scale", "SEScale", tuple(shape), 0, C * H * W, "se", "scale"))
        return tuple(shape)

    def extra_repr(self):
        return (f"{self.channels}, reduction={self.reduction}, hidden={self.hidden}, "
                f"squeeze={self.squeeze!r}, gate={self.gate!r}")
