"""ImageNet ResNets, ResNeXts and SENets, as in the original SENet release.

Reference for the SE networks: Cadene's ``pretrainedmodels/models/senet.py`` (a port of the
authors' Caffe models):

- SE-ResNet bottleneck strides its first 1x1 conv (``stride_on="1x1"``; torchvision strides
  the 3x3). The plain ``resnet50/101/152`` use the same blocks without SE.
- SE-ResNeXt (32x4d) strides the grouped 3x3; ``width = floor(planes * 4 / 64) * 32``.
- SENet-154: a three-conv stem (3x3 convs 3->64 stride 2, 64->64, 64->128), 64-group
  bottlenecks of widths ``2 planes`` and ``4 planes``, shortcut convs of kernel 3 (padding 1)
  after the first stage, dropout 0.2 before the classifier (inactive in eval).
- Stem max pool 3x3 stride 2: padding 1 here (the release uses ``ceil_mode=True``; same output
  size for 224x224 inputs). Final pooling is global (the release's 7x7 average at 224x224).
- SE blocks: reduction 16, biases in both FCs. ``se_resnet18/34`` put SE after the second 3x3 of
  torchvision's BasicBlock (the release has no such models).
"""
from __future__ import annotations

from sescratch.models.resnet import ResNet, make_stage
from sescratch.nn.blocks import BasicBlock, Bottleneck, ResNeXtBottleneck
from sescratch.nn.dropout import Dropout
from sescratch.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, ReLU, Sequential

__all__ = ["imagenet_resnet", "STAGE_BLOCKS"]

STAGE_BLOCKS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    154: (3, 8, 36, 3),
}


def _stem(in_channels, three_conv: bool) -> tuple[Sequential, int]:
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
    parts["pool"] = MaxPool2d(3, stride=2, padding=1)
    return Sequential(parts), channels


def imagenet_resnet(name, kind, depth, *, num_classes, in_channels=3, se=None, placement="standard",
                    stride_on=None, dropout=0.0) -> ResNet:
    """Build one ImageNet network.

    ``kind``: ``"basic"`` (ResNet-18/34), ``"bottleneck"`` (ResNet-50/101/152), ``"resnext"``
    (32x4d) or ``"senet"`` (SENet-154). ``se`` is ``None`` or the SEBlock options.
    ``stride_on`` defaults to the release's choice for the kind.
    ``dropout > 0`` puts a :class:`Dropout` layer (named ``dropout``) before the classifier.
    """
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
    stem, channels = _stem(in_channels, three_conv=(kind == "senet"))
    layers = {"layer0": stem}
    for i, n in enumerate(STAGE_BLOCKS[depth]):
        stage, channels = make_stage(
            block, channels, 64 * 2**i, n, stride=1 if i == 0 else 2,
            downsample_kernel=downsample_kernels[i], **block_kwargs,
        )
        layers[f"layer{i + 1}"] = stage
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
