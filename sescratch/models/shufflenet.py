"""ShuffleNet v1 (Zhang et al. 2018), 1x, and SE-ShuffleNet.

ImageNet (``shufflenet_v1_g3``, 224): a 3x3/2 conv to 24 channels, BN, ReLU, a 3x3/2 max pool
(224 -> 56), then three stages of 4, 8, 4 ShuffleNet units with 240, 480, 960 channels for
``groups = 3`` (the ShuffleNet paper's Table 1: 144/288/576 for g = 1, 200/400/800 for 2,
272/544/1088 for 4, 384/768/1536 for 8), global average pooling and an FC. A unit (Fig. 2 of
the ShuffleNet paper) runs a bottleneck branch of ``m = C_out / 4`` channels:

    1x1 group conv (g groups; 1 in the very first unit, whose input has 24 channels) -> BN -> ReLU
    -> channel shuffle (g groups) -> 3x3 depthwise conv (stride s) -> BN -> 1x1 group conv -> BN

and joins it with its input: ``relu(x + branch(x))`` at stride 1; at stride 2 (the first unit of
each stage) ``relu(concat(avg_pool_3x3/2(x), branch(x)))`` with a branch of ``C_out - C_in``
channels. No conv biases. 1,865,728 parameters and 137 M multiply-accumulates at 224 for g = 3
(the paper's 1.8 M / 140 MFLOPs; Megvii's reference code, whose layout this is).

Cost model: a 1x1 conv with g groups costs ``H W C C' / g``; the shuffle (a permutation of the
channels) lets the next group conv see every group, and costs nothing.

SE (``se_shufflenet_v1_g3``): on the residual branch before the addition (after the last BN),
the SE-ResNet rule, in the 13 stride-1 units (those with an identity addition): it adds 576,195
parameters (-> 2,441,923, the paper's 2.4 M) and about 2 M MACs (140 -> 142 M). SE on all 16 units
(stride-2 units included, on their ``C_out - C_in`` branch) would give 2.59 M, off the paper's
column: the stride-1 placement is what the paper's numbers allow. Labels ``SE_2_2`` ... ``SE_4_4``
(stage as the ShuffleNet paper, unit within it).

Names: ``layer0`` (``conv``, ``bn``, ``relu``, ``pool``), ``layer1`` ... ``layer3`` (stages 2-4;
inside a unit ``conv1, bn1, relu1, shuffle, conv_dw, bn2, conv2, bn3[, se_module]``, plus
``shortcut`` (the average pool) at stride 2), ``avg_pool``, ``last_linear``.

CIFAR (``shufflenet_v1_g3_cifar``): a stride-1 3x3 stem to 24 channels and no max pool, then the
same three stages and widths: 32 -> 16 -> 8 -> 4 (28 -> 14 -> 7 -> 4); 914,338 parameters, 43 M
MACs at 32x32 for 10 classes.
"""
from __future__ import annotations

from sescratch import ops
from sescratch.models.parts import Network, make_se
from sescratch.nn.dropout import Dropout
from sescratch.nn import (AvgPool2d, BatchNorm2d, ChannelShuffle, Conv2d, GlobalAvgPool, Linear, MaxPool2d, ReLU,
                          Sequential)
from sescratch.nn.module import Module, ShapeError

__all__ = ["shufflenet_v1", "ShuffleUnit", "SHUFFLENET_WIDTHS", "SHUFFLENET_UNITS"]

SHUFFLENET_WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
                     8: (384, 768, 1536)}
SHUFFLENET_UNITS = (4, 8, 4)
STEM_CHANNELS = 24


class ShuffleUnit(Module):
    """One ShuffleNet unit: ``relu(x + branch(x))`` (stride 1) or ``relu(concat(pool(x), branch(x)))``.

    Backward, bottom up: ReLU's backward; at stride 1 the sum fans the gradient out to the
    identity and the branch, at stride 2 the concatenation splits it between the pooled shortcut
    and the branch; then the branch's layers in reverse, and the input gradient is the **sum** of
    the shortcut's and the branch's (``x`` feeds both).
    """

    def __init__(self, in_channels, out_channels, stride, groups, *, first_groups=None, se=None):
        super().__init__()
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        mid = out_channels // 4
        g1 = groups if first_groups is None else first_groups
        self.in_channels, self.out_channels, self.stride, self.groups = in_channels, out_channels, stride, groups
        self.conv1 = Conv2d(in_channels, mid, 1, groups=g1, bias=False)
        self.bn1 = BatchNorm2d(mid)
        self.relu1 = ReLU()
        self.shuffle = ChannelShuffle(groups)
        self.conv_dw = Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = BatchNorm2d(mid)
        self.conv2 = Conv2d(mid, branch_out, 1, groups=groups, bias=False)
        self.bn3 = BatchNorm2d(branch_out)
        self.se_module = make_se(branch_out, se)
        self.shortcut = AvgPool2d(3, 2, 1) if stride == 2 else None
        self.relu = ReLU()

    def branch_layers(self) -> list:
        """The branch's layers in forward order (the SE block last, when there is one)."""
        layers = [self.conv1, self.bn1, self.relu1, self.shuffle, self.conv_dw, self.bn2, self.conv2, self.bn3]
        return layers + ([self.se_module] if self.se_module is not None else [])

    def forward(self, x):
        b = x
        for layer in self.branch_layers():
            b = layer(b)  # N,C_branch,OH,OW at the end
        if self.shortcut is None:
            y, self._join = ops.add_forward(x, b)  # N,C,H,W
        else:
            y, self._join = ops.concat_forward([self.shortcut(x), b], axis=1)  # N,C_in+C_branch,OH,OW
        return self.relu(y)

    def backward(self, dy):
        dy = self.relu.backward(dy)
        if self.shortcut is None:
            dx_shortcut, db = ops.add_backward(dy, self._join)
        else:
            dpool, db = ops.concat_backward(dy, self._join)
            dx_shortcut = self.shortcut.backward(dpool)  # N,C_in,H,W
        for layer in reversed(self.branch_layers()):
            db = layer.backward(db)
        return dx_shortcut + db  # fan-out: x feeds the shortcut and the branch

    def trace(self, shape, name, records=None):
        prefix = f"{name}." if name else ""
        b = tuple(shape)
        for attr in ("conv1", "bn1", "relu1", "shuffle", "conv_dw", "bn2", "conv2", "bn3"):
            b = getattr(self, attr).trace(b, prefix + attr, records)
        if self.se_module is not None:
            self.se_module.trace(b, prefix + "se_module", records)
        if self.shortcut is None:
            return b
        s = self.shortcut.trace(tuple(shape), prefix + "shortcut", records)
        if s[1:] != b[1:]:
            raise ShapeError(f"layer '{name}' (ShuffleUnit): shortcut {s} and branch {b} do not concatenate")
        return (s[0] + b[0],) + b[1:]

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, groups={self.groups}"


def shufflenet_v1(name, *, num_classes, in_channels=3, se=None, cifar=False, groups=3, dropout=0.0) -> Network:
    """Build ShuffleNet v1 1x (``se=None``) or SE-ShuffleNet; ``cifar=True`` for the CIFAR-scale network.

    ``groups``: g of the 1x1 group convs and the shuffle, one of 1, 2, 3, 4, 8 (the widths of the
    ShuffleNet paper's Table 1 exist for those only).
    """
    if isinstance(groups, bool) or groups not in SHUFFLENET_WIDTHS:
        raise ValueError(f"{name}: option groups must be one of {', '.join(map(str, SHUFFLENET_WIDTHS))} "
                         f"(ShuffleNet's Table 1), got {groups!r}")
    if cifar:
        stem = {"conv": Conv2d(in_channels, STEM_CHANNELS, 3, 1, 1, bias=False)}
    else:
        stem = {"conv": Conv2d(in_channels, STEM_CHANNELS, 3, 2, 1, bias=False)}
    stem.update({"bn": BatchNorm2d(STEM_CHANNELS), "relu": ReLU()})
    if not cifar:
        stem["pool"] = MaxPool2d(3, 2, 1)
    layers = {"layer0": Sequential(stem)}
    channels = STEM_CHANNELS
    for s, (width, units) in enumerate(zip(SHUFFLENET_WIDTHS[groups], SHUFFLENET_UNITS), start=1):
        stage = []
        for i in range(units):
            first_groups = 1 if (s == 1 and i == 0) else None  # 24 input channels: no groups
            stride = 2 if i == 0 else 1
            stage.append(ShuffleUnit(channels, width, stride, groups, first_groups=first_groups,
                                     se=se if stride == 1 else None))
            channels = width
        layers[f"layer{s}"] = Sequential(*stage)
    layers["avg_pool"] = GlobalAvgPool()
    if dropout:
        layers["dropout"] = Dropout(dropout)
    layers["last_linear"] = Linear(channels, num_classes)
    return Network(name, layers, in_channels)
