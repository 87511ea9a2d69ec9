"""The Squeeze-and-Excitation block (paper §3), forward and backward written out step by step.

Notation: ``u`` (N, C, H, W) the features to recalibrate, ``r`` the reduction ratio,
``C_r = hidden = max(C // r, 1)`` the bottleneck width of the excitation.

Forward (one line per equation)::

    z = F_sq(u)                 (N, C)      squeeze, Eq. 2: global average (or max) pooling
    h = W_1 z + b_1             (N, C_r)    excitation, Eq. 3: dimensionality reduction
    a = δ(h)                    (N, C_r)    ReLU
    e = W_2 a + b_2             (N, C)      dimensionality increase
    s = σ(e)                    (N, C)      gate (sigmoid; tanh, ReLU, hard sigmoid in the ablation)
    y = F_scale(u, s) = s ⊙ u   (N, C, H, W) scale, Eq. 4

Backward reads the same lines bottom-up. ``u`` feeds two places (the squeeze and the scale), so
its gradient is the sum of two paths: ``du = du_from_scale + du_from_squeeze``.

Extra parameters per block (Eq. 5, biases aside): ``2 C^2 / r``.
"""
from __future__ import annotations

from sescratch import ops
from sescratch.nn.layers import Linear
from sescratch.nn.module import Module, Record, ShapeError

__all__ = ["SEBlock", "SQUEEZES", "GATES"]

SQUEEZES = {
    "avg": (ops.global_avg_pool_forward, ops.global_avg_pool_backward),
    "max": (ops.global_max_pool_forward, ops.global_max_pool_backward),
}
GATES = {
    "sigmoid": (ops.sigmoid_forward, ops.sigmoid_backward),
    "tanh": (ops.tanh_forward, ops.tanh_backward),
    "relu": (ops.relu_forward, ops.relu_backward),
    "hard_sigmoid": (ops.hard_sigmoid_forward, ops.hard_sigmoid_backward),
}


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
    """

    def __init__(self, channels, reduction=16, *, bias=True, squeeze="avg", gate="sigmoid", hidden=None):
        super().__init__()
        if squeeze not in SQUEEZES:
            raise ValueError(f"SEBlock: squeeze must be one of {sorted(SQUEEZES)}, got {squeeze!r}")
        if gate not in GATES:
            raise ValueError(f"SEBlock: gate must be one of {sorted(GATES)}, got {gate!r}")
        if hidden is None:
            if not isinstance(reduction, int) or reduction < 1:
                raise ValueError(f"SEBlock: reduction must be a positive int, got {reduction!r}")
            hidden = max(channels // reduction, 1)
        elif not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"SEBlock: hidden must be a positive int, got {hidden!r}")
        self.channels, self.reduction, self.hidden = channels, reduction, hidden
        self.squeeze, self.gate = squeeze, gate
        self.fc1 = Linear(channels, hidden, bias=bias)  # W_1: C -> C/r
        self.fc2 = Linear(hidden, channels, bias=bias)  # W_2: C/r -> C
        self.excitation = None

    def forward(self, u):
        squeeze_forward, _ = SQUEEZES[self.squeeze]
        gate_forward, _ = GATES[self.gate]
        if u.ndim != 4 or u.shape[1] != self.channels:
            raise ValueError(
                f"SEBlock: expected u of shape (N, {self.channels}, H, W), got {tuple(u.shape)}"
            )
        z, self._squeeze_cache = squeeze_forward(u)  # N,C
        h = self.fc1(z)  # N,C_r
        a, self._relu_cache = ops.relu_forward(h)  # N,C_r
        e = self.fc2(a)  # N,C
        s, self._gate_cache = gate_forward(e)  # N,C
        y, self._scale_cache = ops.se_scale_forward(u, s)  # N,C,H,W
        self.excitation = s
        return y

    def backward(self, dy):
        _, squeeze_backward = SQUEEZES[self.squeeze]
        _, gate_backward = GATES[self.gate]
        du_from_scale, ds = ops.se_scale_backward(dy, self._scale_cache)  # N,C,H,W and N,C
        de = gate_backward(ds, self._gate_cache)  # N,C
        da = self.fc2.backward(de)  # N,C_r   (adds dW_2, db_2)
        dh = ops.relu_backward(da, self._relu_cache)  # N,C_r
        dz = self.fc1.backward(dh)  # N,C     (adds dW_1, db_1)
        du_from_squeeze = squeeze_backward(dz, self._squeeze_cache)  # N,C,H,W
        du = du_from_scale + du_from_squeeze  # u fans out into the squeeze and the scale
        return du

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
