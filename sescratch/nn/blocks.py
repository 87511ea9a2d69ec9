"""The paper's residual block (Fig. 3) with its SE block, forward and backward composed by hand.

The SE-ResNet module computes ``y = ReLU(SE(F(x)) + shortcut(x))`` with the residual branch
``F = conv-bn-relu(-conv-bn-relu)-conv-bn`` (two 3x3 convs in :class:`BasicBlock`; 1x1, 3x3, 1x1
in :class:`Bottleneck`). Without ``se`` it is the plain ResNet unit ``ReLU(F(x) + shortcut(x))``.
The input ``x`` feeds two paths, so its gradient is a sum: ``dx = dx_branch + dx_shortcut``
(:func:`sescratch.ops.add_into`, into the fresh ``dx_branch``). The sum and the ReLU at the end
are one op, :func:`sescratch.ops.add_relu_forward`: one pass over the maps, and its backward
sends one gradient array down both paths. Every batch norm followed by a ReLU runs with it as one
op (:meth:`sescratch.nn.BatchNorm2d.forward_relu`). The end of the block is one op too: in the
plain unit the branch's last batch norm, the sum and the ReLU
(:meth:`~sescratch.nn.BatchNorm2d.forward_add_relu`, the shortcut as its residual); in the SE
unit the last batch norm, the SE block, the sum and the ReLU
(:meth:`sescratch.nn.SEBlock.forward_bn_add_relu`, :mod:`sescratch.ops.bn_se_add_relu`: the
squeeze read off batch norm's statistics, the scale folded into its affine map). A max squeeze
runs the ops one by one.

:meth:`ResidualBlock.forward` and :meth:`~ResidualBlock.backward` are that standard block, line
for line. The SE placements of the ablation (TPAMI §6.5, Fig. 5, Tables 14 and 15) are separate
variants beside it: the mixins of :mod:`sescratch.nn.se_placements` (each with its own forward
and backward) combined with each block as one explicit class per placement in
:mod:`sescratch.nn.variants` (e.g. ``BasicBlockSEPre``, a subclass of ``BasicBlock``: same
children, ``state_dict`` names and summary); ``residual_block(BasicBlock, ..., placement="pre")``
picks the class.

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
from sescratch.nn.layers import BatchNorm2d, Conv2d
from sescratch.nn.module import Module, ShapeError
from sescratch.nn.se import SEBlock
from sescratch.nn.shortcuts import ZeroPadShortcut, make_shortcut

__all__ = [
    "PLACEMENTS",
    "ResidualBlock",
    "BasicBlock",
    "Bottleneck",
    "ResNeXtBottleneck",
    "ZeroPadShortcut",
    "make_shortcut",
]

PLACEMENTS = ("standard", "pre", "post", "identity", "after_3x3")


class ResidualBlock(Module):
    """The standard (SE-)ResNet block; subclasses give the branch ``F`` (``_branch_forward`` ...).

    The other SE placements are explicit subclasses (:mod:`sescratch.nn.variants`), built with
    :func:`sescratch.nn.variants.residual_block`; asking a standard block for another placement
    is an error that says so.
    """

    placement = "standard"  # the class's placement; an instance without SE sets None

    def _init_se_and_shortcut(self, se, placement, in_channels, out_channels, inner_channels, downsample):
        if placement not in PLACEMENTS:
            raise ValueError(f"{type(self).__name__}: placement must be one of {PLACEMENTS}, got {placement!r}")
        if se is not None and placement != self.placement:
            raise ValueError(
                f"{type(self).__name__} is the {self.placement!r} block; for placement {placement!r} build "
                f"sescratch.nn.residual_block({type(self).__name__}, ..., placement={placement!r}) "
                f"(one explicit variant class per placement, in sescratch.nn.variants)")
        self.placement = placement if se is not None else None
        channels = self._se_channels(in_channels, out_channels, inner_channels)
        self.se_module = SEBlock(channels, **se) if se is not None else None
        self.downsample = downsample

    def _se_channels(self, in_channels, out_channels, inner_channels):
        return out_channels  # standard: SE recalibrates the branch output

    def forward(self, x):
        s = self._shortcut(x)  # N,C_out,OH,OW
        if self.se_module is None:  # plain unit: the branch's last BN, the sum and the ReLU, one pass
            self._tail = "bn_add_relu"
            return self._last_bn.forward_add_relu(self._branch_body(x), s)
        if self.se_module.fused_with_bn_available():  # the last BN, the SE block, the sum, the ReLU: one op
            self._tail = "bn_se_add_relu"
            return self.se_module.forward_bn_add_relu(self._last_bn, self._branch_body(x), s)
        self._tail = "separate"  # a max squeeze: each op on its own
        u = self.se_module(self._branch_forward(x))  # N,C_out,OH,OW  SE on the branch output F(x)
        y, self._add_relu_cache = ops.add_relu_forward(u, s)  # ReLU(u + s), one pass
        return y

    def backward(self, dy):
        tail = self._take("_tail")
        if tail == "bn_add_relu":
            dv, ds = self._last_bn.backward_add_relu(dy)  # one gradient for both paths
            dx_branch = self._branch_body_backward(dv)
        elif tail == "bn_se_add_relu":
            dv, ds = self.se_module.backward_bn_add_relu(self._last_bn, dy)
            dx_branch = self._branch_body_backward(dv)
        else:
            du, ds = ops.add_relu_backward(dy, self._add_relu_cache)  # one gradient for both paths
            dx_branch = self._branch_backward(self.se_module.backward(du))
        dx_shortcut = self._shortcut_backward(ds)
        dx = ops.add_into(dx_branch, dx_shortcut)  # x fans out into the residual branch and the shortcut
        return dx

    def trace(self, shape, name, records=None):
        out = self._branch_trace(tuple(shape), name, records)
        out = self._se_trace(out, name, records)
        return self._check_sum(name, out, self._shortcut_trace(tuple(shape), name, records))

    # -- the pieces every variant shares ----------------------------------------------------
    def _branch_forward(self, x):
        """F(x): the block's :meth:`_branch_body`, then its last batch norm."""
        return self._last_bn(self._branch_body(x))  # N,C_out,OH,OW

    def _branch_backward(self, du):
        return self._branch_body_backward(self._last_bn.backward(du))

    def _se_trace(self, shape, name, records):
        return shape if self.se_module is None else self.se_module.trace(shape, f"{name}.se_module", records)

    def _shortcut(self, x):
        return x if self.downsample is None else self.downsample(x)

    def _shortcut_backward(self, ds):
        return ds if self.downsample is None else self.downsample.backward(ds)

    def _shortcut_trace(self, shape, name, records):
        return shape if self.downsample is None else self.downsample.trace(shape, f"{name}.downsample", records)

    @staticmethod
    def _check_sum(name, branch, shortcut):
        if branch != shortcut:
            raise ShapeError(f"layer '{name}': branch output {branch} does not match shortcut {shortcut}")
        return branch

    def extra_repr(self):
        se = f", SE placement={self.placement!r}" if self.placement else ""
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}{se}"


class BasicBlock(ResidualBlock):
    """Two 3x3 convs: ``F(x) = BN(conv3x3(ReLU(BN(conv3x3(x, stride)))))``; ``after_3x3`` is after the first."""

    expansion = 1

    def __init__(self, in_channels, planes, stride=1, *, downsample=None, se=None, placement="standard"):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, planes, stride
        self.conv1 = Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self._init_se_and_shortcut(se, placement, in_channels, planes, planes, downsample)

    @property
    def _last_bn(self):
        return self.bn2

    def _branch_body(self, x):
        """F(x) up to its last batch norm: ``conv2(ReLU(BN(conv1(x))))``."""
        h = self.bn1.forward_relu(self.conv1(x))  # N,P,OH,OW  ReLU(BN(.)), one pass
        return self.conv2(h)  # N,P,OH,OW

    def _branch_body_backward(self, dv):
        dh = self.conv2.backward(dv)
        return self.conv1.backward(self.bn1.backward_relu(dh))

    def _branch_trace(self, shape, name, records):
        shape = self.bn1.trace(self.conv1.trace(shape, f"{name}.conv1", records), f"{name}.bn1", records)
        return self.bn2.trace(self.conv2.trace(shape, f"{name}.conv2", records), f"{name}.bn2", records)


class Bottleneck(ResidualBlock):
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
        self._init_se_and_shortcut(se, placement, in_channels, out_channels, width_3x3, downsample)

    @property
    def _last_bn(self):
        return self.bn3

    def _branch_body(self, x):
        """F(x) up to its last batch norm: ``conv3(ReLU(BN(conv2(ReLU(BN(conv1(x)))))))``."""
        h = self.bn1.forward_relu(self.conv1(x))  # N,width,·,·  ReLU(BN(.)), one pass
        h = self.bn2.forward_relu(self.conv2(h))  # N,width_3x3,OH,OW
        return self.conv3(h)  # N,C_out,OH,OW

    def _branch_body_backward(self, dv):
        dh = self.conv3.backward(dv)
        dh = self.conv2.backward(self.bn2.backward_relu(dh))
        return self.conv1.backward(self.bn1.backward_relu(dh))

    def _branch_trace(self, shape, name, records):
        for i in (1, 2, 3):
            conv, bn = getattr(self, f"conv{i}"), getattr(self, f"bn{i}")
            shape = bn.trace(conv.trace(shape, f"{name}.conv{i}", records), f"{name}.bn{i}", records)
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
