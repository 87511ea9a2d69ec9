"""Residual blocks with an optional SE block, forward and backward composed by hand.

A residual unit computes ``y = ReLU(F(x) + shortcut(x))``. The input ``x`` feeds two paths, so
its gradient is a sum: ``dx = dx_identity + dx_branch`` (a visible line in ``backward``).

SE placement (paper, TPAMI §6.5 / Fig. 5, Table 14; and SE after the 3x3 conv, Table 15):

========== ======================================================= ====================
placement  computation                                             SE channels
========== ======================================================= ====================
standard   ReLU(SE(F(x)) + shortcut(x))   (the paper's SE-ResNet)  output channels
pre        ReLU(F(SE(x)) + shortcut(x))                            input channels
post       SE(ReLU(F(x) + shortcut(x)))                            output channels
identity   ReLU(F(x) + SE(shortcut(x)))                            output channels
after_3x3  SE on the (first) 3x3 conv's output, inside F           3x3 conv's channels
========== ======================================================= ====================

Stride placement of the bottleneck: the SENet release (Caffe, Cadene's ``SEResNetBottleneck``)
strides the first 1x1 conv (``stride_on="1x1"``); torchvision strides the 3x3 (``"3x3"``).
"""
from __future__ import annotations

import math

from sescratch import ops
from sescratch.backend import get_array_module
from sescratch.nn.layers import BatchNorm2d, Conv2d, Sequential
from sescratch.nn.module import Module, ShapeError
from sescratch.nn.se import SEBlock

__all__ = [
    "PLACEMENTS",
    "BasicBlock",
    "Bottleneck",
    "ResNeXtBottleneck",
    "ZeroPadShortcut",
    "make_shortcut",
]

PLACEMENTS = ("standard", "pre", "post", "identity", "after_3x3")


class ZeroPadShortcut(Module):
    """Option A shortcut (He et al. 2016, CIFAR): subsample by ``stride``, zero-pad the new channels.

    ``y[:, p:p+C_in] = x[:, :, ::S, ::S]`` with ``p = (C_out - C_in) // 2`` zero channels before
    and the rest after; no parameters. Backward: ``dx[:, :, ::S, ::S] = dy[:, p:p+C_in]``, zero elsewhere.
    """

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pad_front = (out_channels - in_channels) // 2

    def forward(self, x):
        xp = get_array_module(x)
        S, p, C = self.stride, self.pad_front, self.in_channels
        sub = x[:, :, ::S, ::S]  # N,C_in,OH,OW
        y = xp.zeros((x.shape[0], self.out_channels) + sub.shape[2:], dtype=x.dtype)  # N,C_out,OH,OW
        y[:, p:p + C] = sub
        self._x_shape = x.shape
        return y

    def backward(self, dy):
        xp = get_array_module(dy)
        S, p, C = self.stride, self.pad_front, self.in_channels
        dx = xp.zeros(self._x_shape, dtype=dy.dtype)  # N,C_in,H,W
        dx[:, :, ::S, ::S] = dy[:, p:p + C]
        return dx

    def trace(self, shape, name, records=None):
        C, H, W = shape
        S = self.stride
        return (self.out_channels, (H - 1) // S + 1, (W - 1) // S + 1)

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def make_shortcut(in_channels, out_channels, stride, *, kind="B", kernel_size=1):
    """``None`` (identity) when shapes agree; else option "B" (conv + BN) or "A" (zero-pad)."""
    if stride == 1 and in_channels == out_channels:
        return None
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    if kind != "B":
        raise ValueError(f"make_shortcut: kind must be 'A' or 'B', got {kind!r}")
    return Sequential(
        Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=False),
        BatchNorm2d(out_channels),
    )


class _ResidualBlock(Module):
    """Shared residual wiring and SE placement; subclasses define the branch ``F``."""

    def _setup_se(self, se, placement, in_channels, out_channels, inner_channels):
        if placement not in PLACEMENTS:
            raise ValueError(f"{type(self).__name__}: placement must be one of {PLACEMENTS}, got {placement!r}")
        self.placement = placement if se is not None else None
        if se is not None:
            channels = {"pre": in_channels, "after_3x3": inner_channels}.get(placement, out_channels)
            self.se_module = SEBlock(channels, **se)

    def _se(self, where, x):
        return self.se_module(x) if self.placement == where else x

    def _se_backward(self, where, dy):
        return self.se_module.backward(dy) if self.placement == where else dy

    def forward(self, x):
        x_branch = self._se("pre", x)  # N,C_in,H,W
        identity = x if self.downsample is None else self.downsample(x)  # N,C_out,OH,OW
        identity = self._se("identity", identity)
        u = self._branch_forward(x_branch)  # N,C_out,OH,OW
        u = self._se("standard", u)
        total, self._add_cache = ops.add_forward(identity, u)  # N,C_out,OH,OW
        y, self._relu_out_cache = ops.relu_forward(total)
        return self._se("post", y)

    def backward(self, dy):
        dy = self._se_backward("post", dy)
        dtotal = ops.relu_backward(dy, self._relu_out_cache)
        didentity, du = ops.add_backward(dtotal, self._add_cache)
        du = self._se_backward("standard", du)
        dx_branch = self._branch_backward(du)
        didentity = self._se_backward("identity", didentity)
        dx_identity = didentity if self.downsample is None else self.downsample.backward(didentity)
        dx_branch = self._se_backward("pre", dx_branch)
        dx = dx_identity + dx_branch  # x fans out into the shortcut and the residual branch
        return dx

    def trace(self, shape, name, records=None):
        def se(where, s):
            return self.se_module.trace(s, f"{name}.se_module", records) if self.placement == where else s

        branch_in = se("pre", tuple(shape))
        out = se("standard", self._branch_trace(branch_in, name, records, se))
        identity = tuple(shape)
        if self.downsample is not None:
            identity = self.downsample.trace(identity, f"{name}.downsample", records)
        identity = se("identity", identity)
        if out != identity:
            raise ShapeError(f"layer '{name}': branch output {out} does not match shortcut {identity}")
        return se("post", out)

    def extra_repr(self):
        se = f", SE placement={self.placement!r}" if self.placement else ""
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}{se}"


class BasicBlock(_ResidualBlock):
    """Two 3x3 convs: ``F(x) = BN(conv3x3(ReLU(BN(conv3x3(x, stride)))))``; ``after_3x3`` is after the first."""

    expansion = 1

    def __init__(self, in_channels, planes, stride=1, *, downsample=None, se=None, placement="standard"):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, planes, stride
        self.conv1 = Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self._setup_se(se, placement, in_channels, planes, planes)
        self.downsample = downsample

    def _branch_forward(self, x):
        h = self.bn1(self.conv1(x))  # N,P,OH,OW
        h, self._relu1_cache = ops.relu_forward(h)
        h = self._se("after_3x3", h)
        return self.bn2(self.conv2(h))  # N,P,OH,OW

    def _branch_backward(self, du):
        dh = self.conv2.backward(self.bn2.backward(du))
        dh = self._se_backward("after_3x3", dh)
        dh = ops.relu_backward(dh, self._relu1_cache)
        return self.conv1.backward(self.bn1.backward(dh))

    def _branch_trace(self, shape, name, records, se):
        shape = self.bn1.trace(self.conv1.trace(shape, f"{name}.conv1", records), f"{name}.bn1", records)
        shape = se("after_3x3", shape)
        return self.bn2.trace(self.conv2.trace(shape, f"{name}.conv2", records), f"{name}.bn2", records)


class Bottleneck(_ResidualBlock):
    """1x1 (reduce) -> 3x3 (grouped) -> 1x1 (expand to ``planes * expansion``), BN and ReLU between.

    ``width`` (conv1's channels, default ``planes``) and ``width_3x3`` (conv2's, default ``width``)
    cover SENet-154's bottleneck (``2 * planes`` then ``4 * planes``, 64 groups).
    ``stride_on``: ``"1x1"`` (the SENet release) or ``"3x3"`` (torchvision, ResNeXt).
    """

    expansion = 4

    def __init__(self, in_channels, planes, stride=1, *, expansion=4, width=None, width_3x3=None, groups=1,
                 stride_on="1x1", downsample=None, se=None, placement="standard"):
        super().__init__()
        if stride_on not in ("1x1", "3x3"):
            raise ValueError(f"{type(self).__name__}: stride_on must be '1x1' or '3x3', got {stride_on!r}")
        width = planes if width is None else width
        width_3x3 = width if width_3x3 is None else width_3x3
        out_channels = planes * expansion
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.stride_on, self.groups = stride_on, groups
        s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.conv1 = Conv2d(in_channels, width, 1, stride=s1, bias=False)
        self.bn1 = BatchNorm2d(width)
        self.conv2 = Conv2d(width, width_3x3, 3, stride=s3, padding=1, groups=groups, bias=False)
        self.bn2 = BatchNorm2d(width_3x3)
        self.conv3 = Conv2d(width_3x3, out_channels, 1, bias=False)
        self.bn3 = BatchNorm2d(out_channels)
        self._setup_se(se, placement, in_channels, out_channels, width_3x3)
        self.downsample = downsample

    def _branch_forward(self, x):
        h = self.bn1(self.conv1(x))  # N,width,·,·
        h, self._relu1_cache = ops.relu_forward(h)
        h = self.bn2(self.conv2(h))  # N,width_3x3,OH,OW
        h, self._relu2_cache = ops.relu_forward(h)
        h = self._se("after_3x3", h)
        return self.bn3(self.conv3(h))  # N,C_out,OH,OW

    def _branch_backward(self, du):
        dh = self.conv3.backward(self.bn3.backward(du))
        dh = self._se_backward("after_3x3", dh)
        dh = ops.relu_backward(dh, self._relu2_cache)
        dh = self.conv2.backward(self.bn2.backward(dh))
        dh = ops.relu_backward(dh, self._relu1_cache)
        return self.conv1.backward(self.bn1.backward(dh))

    def _branch_trace(self, shape, name, records, se):
        for i in (1, 2, 3):
            conv, bn = getattr(self, f"conv{i}"), getattr(self, f"bn{i}")
            shape = bn.trace(conv.trace(shape, f"{name}.conv{i}", records), f"{name}.bn{i}", records)
            if i == 2:
                shape = se("after_3x3", shape)
        return shape


class ResNeXtBottleneck(Bottleneck):
    """ResNeXt's bottleneck: ``width = floor(planes * base_width / 64) * groups`` (32x4d: 128 at planes 64).

    Strides the grouped 3x3 conv, as ResNeXt and the SENet release's ``SEResNeXtBottleneck`` do.
    """

    def __init__(self, in_channels, planes, stride=1, *, groups=32, base_width=4, expansion=4, stride_on="3x3",
                 downsample=None, se=None, placement="standard"):
        width = math.floor(planes * base_width / 64) * groups
        super().__init__(in_channels, planes, stride, expansion=expansion, width=width, groups=groups,
                         stride_on=stride_on, downsample=downsample, se=se, placement=placement)
        self.base_width = base_width
