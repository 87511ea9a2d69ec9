"""MobileNet v1 (Howard et al. 2017) and SE-MobileNet.

ImageNet (``mobilenet_v1``, 1.0 / 224): a 3x3 stride-2 conv to 32 channels, then 13
depthwise-separable blocks, each a 3x3 *depthwise* conv (``groups = C``: one filter per channel)
-> BN -> ReLU -> 1x1 *pointwise* conv -> BN -> ReLU, with output channels and strides
(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1) x 5, (1024, 2), (1024, 1);
global average pooling and an FC. No conv biases. 4,231,976 parameters and 569 M
multiply-accumulates at 224 (the paper's 4.2 M and 569 MFLOPs).

Cost model: a KxK conv from C to C' channels on an HxW map costs ``H W K^2 C C'``; the
depthwise + pointwise pair costs ``H W (K^2 C + C C')``, i.e. ``1/C' + 1/K^2`` of it. The 1x1
convs then hold 95 % of the MACs and 75 % of the parameters.

SE (``se_mobilenet_v1``): an SE block (r = 16, biases) after the pointwise conv's ReLU of each of
the 13 blocks, the paper's rule for non-residual networks ("after the non-linearity following each
convolution", applied to the block's output convolution). It adds 486,068 parameters
(-> 4,718,044, the paper's 4.7 M) and about 3 M MACs of FCs and scaling (569 -> 572 M in the paper;
:mod:`sescratch.summary` also counts the squeeze's additions). Putting SE after the depthwise
convs too would add little (their C is the block's input width), but the paper's parameter column
is met exactly by one SE per block.

Names: ``layer0`` (stem ``conv``, ``bn``, ``relu``), ``layer1`` ... ``layer5`` (the blocks grouped
by output resolution, 112 / 56 / 28 / 14 / 7; inside a block ``conv_dw, bn_dw, relu_dw, conv_pw,
bn_pw, relu_pw[, se_module]``), ``avg_pool``, ``last_linear``. Analysis labels ``SE_2_1`` ...
``SE_6_2`` (stage numbered as the ResNets', from 2).

CIFAR (``mobilenet_v1_cifar``): a stride-1 3x3 stem and the same 13 blocks, with the first
downsampling (block 2) removed: 32 -> 32 -> 16 -> 8 -> 4 (28 -> 28 -> 14 -> 7 -> 4), and width
multiplier ``width_multiplier`` (MobileNet's alpha, channels ``int(alpha C)``) 0.5 by default:
823,722 parameters (10 classes), 45 M MACs at 32x32.
"""
from __future__ import annotations

import numbers

from sescratch.models.parts import Network, make_se
from sescratch.nn.dropout import Dropout
from sescratch.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool, Linear, ReLU, Sequential

__all__ = ["mobilenet_v1", "MOBILENET_STAGES"]

# (out_channels, stride) of the depthwise-separable blocks, grouped by output resolution
MOBILENET_STAGES = (
    ((64, 1),),
    ((128, 2), (128, 1)),
    ((256, 2), (256, 1)),
    ((512, 2),) + ((512, 1),) * 5,
    ((1024, 2), (1024, 1)),
)


def separable_block(in_channels, out_channels, stride, se=None) -> Sequential:
    """Depthwise 3x3 (``groups = in_channels``) -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU [-> SE]."""
    parts = {
        "conv_dw": Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
        "bn_dw": BatchNorm2d(in_channels), "relu_dw": ReLU(),
        "conv_pw": Conv2d(in_channels, out_channels, 1, bias=False),
        "bn_pw": BatchNorm2d(out_channels), "relu_pw": ReLU(),
    }
    if se is not None:
        parts["se_module"] = make_se(out_channels, se)
    return Sequential(parts)


def mobilenet_v1(name, *, num_classes, in_channels=3, se=None, cifar=False, width_multiplier=None,
                 dropout=0.0) -> Network:
    """Build MobileNet v1 (``se=None``) or SE-MobileNet; ``cifar=True`` for the CIFAR-scale network.

    ``width_multiplier``: alpha (default 1.0; 0.5 for the CIFAR network), any positive number
    (MobileNet uses 0.25, 0.5, 0.75, 1.0); every width becomes ``max(int(alpha C), 1)``.
    ``dropout > 0`` puts a dropout before the FC.
    """
    alpha = (0.5 if cifar else 1.0) if width_multiplier is None else width_multiplier
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
        raise ValueError(f"{name}: option width_multiplier must be a positive number (MobileNet's alpha), "
                         f"got {width_multiplier!r}")

    def w(c):
        return max(int(c * alpha), 1)

    stem_stride = 1 if cifar else 2
    channels = w(32)
    layers = {"layer0": Sequential({
        "conv": Conv2d(in_channels, channels, 3, stem_stride, 1, bias=False), "bn": BatchNorm2d(channels),
        "relu": ReLU()})}
    for s, stage in enumerate(MOBILENET_STAGES, start=1):
        blocks = []
        for i, (out, stride) in enumerate(stage):
            if cifar and s == 2 and i == 0:
                stride = 1  # CIFAR: keep the resolution of the stem one stage longer
            blocks.append(separable_block(channels, w(out), stride, se))
            channels = w(out)
        layers[f"layer{s}"] = Sequential(*blocks)
    layers["avg_pool"] = GlobalAvgPool()
    if dropout:
        layers["dropout"] = Dropout(dropout)
    layers["last_linear"] = Linear(channels, num_classes)
    return Network(name, layers, in_channels)
