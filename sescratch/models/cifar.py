"""CIFAR ResNets (He et al. 2016, §4.2) and their SE versions (the paper's TPAMI CIFAR experiments).

Depth ``6n + 2``: a 3x3 conv stem with ``width`` channels, three stages of ``n`` BasicBlocks with
``width, 2 width, 4 width`` channels (16/32/64) and strides 1, 2, 2, global average pooling, a
linear classifier. Shortcuts that change shape: option ``"B"`` (1x1 conv + BN, the default) or
option ``"A"`` (subsample and zero-pad the new channels, parameter-free).

Parameter counts (10 classes): resnet20 272,474 (B) / 269,722 (A); se_resnet20 274,847 / 272,095;
resnet56 855,770; se_resnet56 862,889.
"""
from __future__ import annotations

from sescratch.models.resnet import ResNet, make_stage
from sescratch.nn.blocks import BasicBlock
from sescratch.nn.dropout import Dropout
from sescratch.ops._checks import is_int
from sescratch.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool, Linear, ReLU, Sequential

__all__ = ["CIFAR_DEPTHS", "cifar_resnet"]

CIFAR_DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}


def cifar_resnet(name, blocks_per_stage, *, num_classes, in_channels=3, se=None, placement="standard",
                 shortcut="B", width=16, dropout=0.0, block=BasicBlock, **block_kwargs) -> ResNet:
    """Build a CIFAR-style ResNet; ``se`` is ``None`` (plain) or the SEBlock options.

    ``blocks_per_stage`` is ``n`` (three equal stages) or a tuple of per-stage counts;
    ``block`` may be a Bottleneck class for narrow test networks (``block_kwargs`` go to it).
    ``dropout > 0`` puts a :class:`Dropout` layer (named ``dropout``) before the classifier.
    """
    if shortcut not in ("A", "B"):
        raise ValueError(f"{name}: shortcut must be 'A' or 'B', got {shortcut!r}")
    if not is_int(width) or width < 1:
        raise ValueError(f"{name}: width must be a positive int, got {width!r}")
    counts = (blocks_per_stage,) * 3 if isinstance(blocks_per_stage, int) else tuple(blocks_per_stage)
    layers = {
        "layer0": Sequential({
            "conv1": Conv2d(in_channels, width, 3, padding=1, bias=False),
            "bn1": BatchNorm2d(width),
            "relu1": ReLU(),
        })
    }
    channels = width
    for i, n in enumerate(counts):
        stage, channels = make_stage(
            block, channels, width * 2**i, n, stride=1 if i == 0 else 2, shortcut=shortcut,
            se=se, placement=placement, **block_kwargs,
        )
        layers[f"layer{i + 1}"] = stage
    layers["avg_pool"] = GlobalAvgPool()
    if dropout:
        layers["dropout"] = Dropout(dropout)
    layers["last_linear"] = Linear(channels, num_classes)
    return ResNet(name, layers, in_channels)
