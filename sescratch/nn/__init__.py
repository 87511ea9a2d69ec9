"""Modules with hand-composed backward passes: layers, the SE block, residual blocks.

``Module.forward(x)`` keeps what ``Module.backward(dy) -> dx`` needs; parameter gradients are
added into ``Parameter.grad``. See :mod:`sescratch.nn.module` for the whole contract.
"""
from sescratch.nn import init
from sescratch.nn.blocks import (
    PLACEMENTS,
    BasicBlock,
    Bottleneck,
    ResidualBlock,
    ResNeXtBottleneck,
    ZeroPadShortcut,
    make_shortcut,
)
from sescratch.nn.batchnorm import BatchNorm2d
from sescratch.nn.dropout import Dropout
from sescratch.nn.layers import (
    Conv2d,
    GlobalAvgPool,
    Identity,
    Linear,
    MaxPool2d,
    ReLU,
    ReLU6,
    Sequential,
    Sigmoid,
)
from sescratch.nn.pooling import AvgPool2d
from sescratch.nn.shuffle import ChannelShuffle
from sescratch.nn.module import Module, Parameter, Record, ShapeError
from sescratch.nn.se import GATES, SQUEEZES, SEBlock
from sescratch.nn.variants import VARIANTS, residual_block

__all__ = [
    "init",
    "Module",
    "Parameter",
    "Record",
    "ShapeError",
    "Conv2d",
    "BatchNorm2d",
    "Linear",
    "ReLU",
    "ReLU6",
    "Sigmoid",
    "GlobalAvgPool",
    "MaxPool2d",
    "AvgPool2d",
    "ChannelShuffle",
    "Dropout",
    "Identity",
    "Sequential",
    "SEBlock",
    "SQUEEZES",
    "GATES",
    "PLACEMENTS",
    "ResidualBlock",
    "BasicBlock",
    "Bottleneck",
    "ResNeXtBottleneck",
    "ZeroPadShortcut",
    "make_shortcut",
    "VARIANTS",
    "residual_block",
]
