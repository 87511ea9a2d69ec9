"""ImageNet ResNets, ResNeXts and SENets, as in the original SENet release.

Reference for the SE networks: Cadene's ``pretrainedmodels/models/senet.py`` (a port of the
authors' Caffe models):

- SE-ResNet bottleneck strides its first 1x1 conv (``stride_on="1x1"``; torchvision strides
  the 3x3). The plain ``resnet50/101/152`` use the same blocks without SE.
- SE-ResNeXt (32x4d) strides the grouped 3x3; ``width = floor(planes * 4 / 64) * 32``.
- SENet-154: a three-conv stem (3x3 convs 3->64 stride 2, 64->64, 64->128), 64-group
  bottlenecks of widths ``2 planes`` and ``4 planes``, shortcut convs of kernel 3 (padding 1)
  after the first stage, dropout 0.2 before the classifier (inactive in eval).
- Stem max pool 3x3 stride 2 without padding, rounding the output size up (``ceil_mode``,
  Caffe's pooling, as the release: ``stem_pool="ceil"``, the default). torchvision and timm pad
  by 1 instead (``stem_pool="pad"``): the same size at even inputs, but other windows, so other
  numbers. Final pooling is global (the release's 7x7 average at 224x224).
- ``se_divisor=d`` rounds every SE width to timm's ``make_divisible(C / r, d)`` (timm's
  ``seresnet*``: ``d = 8``, so 64 channels get 8 hidden units, not 4); default: ``C // r``.
- SE blocks: reduction 16, biases in both FCs. ``se_resnet18/34`` put SE after the second 3x3 of
  torchvision's BasicBlock (the release has no such models).
"""
from __future__ import annotations

from sescratch.models.resnet import ResNet, make_stage
from sescratch.nn.blocks import BasicBlock, Bottleneck, ResNeXtBottleneck
from sescratch.nn.dropout import Dropout
from sescratch.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, ReLU, Sequential
from sescratch.nn.se import SEBlock

__all__ = ["imagenet_resnet", "STAGE_BLOCKS", "STEM_POOLS", "se_width"]

STAGE_BLOCKS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    154: (3, 8, 36, 3),
}
STEM_POOLS = ("ceil", "pad")


def _stem(in_channels, three_conv: bool, pool: str = "ceil") -> tuple[Sequential, int]:
    if three_conv:
        parts = {
            "conv1": Conv2d(in_channels, 64, 3, stride=2, padding=1, bias=False), "bn1": BatchNorm2d(64),
            "relu1": ReLU(),
            "conv2": Conv2d(64, 64, 3, padding=1, bias=False), "bn2": BatchNorm2d(64), "relu2": ReLU(),
            "conv3": Conv2d(64, 128, 3, padding=1, bias=False), "bn3": BatchNorm2d(128), "relu3": ReLU(),
        }
        channels = 128
    else:
        parts = {
            "conv1": Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False), "bn1": BatchNorm2d(64),
            "relu1": ReLU(),
        }
        channels = 64
    if pool == "ceil":  # the release (Caffe): windows from the top-left corner, a partial last one
        parts["pool"] = MaxPool2d(3, stride=2, ceil_mode=True)
    else:  # torchvision / timm
        parts["pool"] = MaxPool2d(3, stride=2, padding=1)
    return Sequential(parts), channels


def se_width(channels: int, reduction: int, divisor: int | None) -> int:
    """SE hidden width: ``max(C // r, 1)``, or timm's ``make_divisible(C / r, divisor)``."""
    if divisor is None:
        return max(channels // reduction, 1)
    return max(divisor, int(channels / reduction + divisor / 2) // divisor * divisor)


def imagenet_resnet(name, kind, depth, *, num_classes, in_channels=3, se=None, placement="standard",
                    stride_on=None, dropout=0.0, stem_pool="ceil", se_divisor=None) -> ResNet:
    """Build one ImageNet network.

    ``kind``: ``"basic"`` (ResNet-18/34), ``"bottleneck"`` (ResNet-50/101/152), ``"resnext"``
    (32x4d) or ``"senet"`` (SENet-154). ``se`` is ``None`` or the SEBlock options.
    ``stride_on`` defaults to the release's choice for the kind.
    ``dropout > 0`` puts a :class:`Dropout` layer (named ``dropout``) before the classifier.
    ``stem_pool``: ``"ceil"`` (the release) or ``"pad"`` (torchvision, timm); ``se_divisor``: see
    :func:`se_width`.
    """
    if stem_pool not in STEM_POOLS:
        raise ValueError(f"{name}: option stem_pool must be one of {STEM_POOLS}, got {stem_pool!r}")
    if se_divisor is not None and (isinstance(se_divisor, bool) or not isinstance(se_divisor, int)
                                   or se_divisor < 1):
        raise ValueError(f"{name}: option se_divisor must be None or a positive int, got {se_divisor!r}")
    block_kwargs = {"se": se, "placement": placement}
    downsample_kernels = (1, 1, 1, 1)
    if kind == "basic":
        block = BasicBlock
    elif kind == "bottleneck":
        block = Bottleneck
        block_kwargs["stride_on"] = stride_on or "1x1"
    elif kind == "resnext":
        block = ResNeXtBottleneck
        block_kwargs.update(groups=32, base_width=4, stride_on=stride_on or "3x3")
    elif kind == "senet":
        block = _SENetBottleneck
        block_kwargs["stride_on"] = stride_on or "3x3"
        downsample_kernels = (1, 3, 3, 3)
    else:
        raise ValueError(f"imagenet_resnet: unknown kind {kind!r}")
    stem, channels = _stem(in_channels, three_conv=(kind == "senet"), pool=stem_pool)
    layers = {"layer0": stem}
    for i, n in enumerate(STAGE_BLOCKS[depth]):
        stage, channels = make_stage(
            block, channels, 64 * 2**i, n, stride=1 if i == 0 else 2,
            downsample_kernel=downsample_kernels[i], **block_kwargs,
        )
        layers[f"layer{i + 1}"] = stage
        if se is not None and se_divisor is not None:
            _round_se_widths(stage, se_divisor)
    layers["avg_pool"] = GlobalAvgPool()
    if dropout:
        layers["dropout"] = Dropout(dropout)
    layers["last_linear"] = Linear(channels, num_classes)
    return ResNet(name, layers, in_channels)


class _SENetBottleneck(Bottleneck):
    """SENet-154's bottleneck (the release's ``SEBottleneck``): 1x1 to ``2 planes``, grouped 3x3 to
    ``4 planes`` (64 groups), 1x1 to ``4 planes``."""

    def __init__(self, in_channels, planes, stride=1, *, stride_on="3x3", downsample=None, se=None,
                 placement="standard"):
        super().__init__(in_channels, planes, stride, width=2 * planes, width_3x3=4 * planes, groups=64,
                         stride_on=stride_on, downsample=downsample, se=se, placement=placement)


def _round_se_widths(stage, divisor: int) -> None:
    """Rebuild each block's SE block at :func:`se_width` (same channels, squeeze, gate and bias)."""
    for block in stage:
        se = block.se_module
        hidden = se_width(se.channels, se.reduction, divisor)
        if hidden != se.hidden:
            block.se_module = SEBlock(se.channels, se.reduction, bias=se.fc1.bias is not None,
                                      squeeze=se.squeeze, gate=se.gate, hidden=hidden)
