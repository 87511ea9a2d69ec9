"""Torch counterparts of the modules of the paper's other exemplars (VGG, BN-Inception,
Inception-ResNet-v2, MobileNet, ShuffleNet), for :func:`sescratch.interop.torch.to_torch`.

Written from the published definitions (``torch.cat`` of the branches, Cadene's
``Block35/17/8`` arithmetic, Megvii's ShuffleNet unit) with torch's own layers, so a test that
compares our hand-written backward with torch autograd compares two independent codes.
:func:`convert` returns ``None`` for modules it does not know; ``to_torch`` then tries its own.
"""
from __future__ import annotations

import functools

__all__ = ["convert"]


@functools.lru_cache(maxsize=None)
def _classes():
    import torch
    from torch import nn

    class Branches(nn.Module):
        def __init__(self, branches, se_module):
            super().__init__()
            self.names = list(branches)
            for name, branch in branches.items():
                setattr(self, name, branch)
            self.se_module = se_module

        def forward(self, x):
            y = torch.cat([getattr(self, n)(x) for n in self.names], dim=1)
            return y if self.se_module is None else self.se_module(y)

    class InceptionResNetBlock(nn.Module):
        def __init__(self, branches, conv2d, se_module, scale, relu):
            super().__init__()
            self.names = list(branches)
            for name, branch in branches.items():
                setattr(self, name, branch)
            self.conv2d, self.se_module, self.scale, self.relu = conv2d, se_module, scale, relu

        def forward(self, x):
            out = self.conv2d(torch.cat([getattr(self, n)(x) for n in self.names], dim=1))
            if self.se_module is not None:
                out = self.se_module(out)
            out = out * self.scale + x
            return torch.relu(out) if self.relu else out

    class ShuffleUnit(nn.Module):
        def __init__(self, children, stride):
            super().__init__()
            for name, child in children.items():
                setattr(self, name, child)
            self.stride = stride

        def forward(self, x):
            b = self.relu1(self.bn1(self.conv1(x)))
            b = self.bn3(self.conv2(self.bn2(self.conv_dw(self.shuffle(b)))))
            if self.se_module is not None:
                b = self.se_module(b)
            if self.stride == 2:
                return torch.relu(torch.cat([self.shortcut(x), b], dim=1))
            return torch.relu(x + b)

    return {"Branches": Branches, "InceptionResNetBlock": InceptionResNetBlock, "ShuffleUnit": ShuffleUnit}


def convert(module, convert_child):
    """The torch module for ``module`` (children converted with ``convert_child``), or ``None``."""
    from collections import OrderedDict

    from torch import nn

    from sescratch import nn as snn
    from sescratch.models.inception_resnet import InceptionResNetBlock
    from sescratch.models.parts import Branches, Flatten
    from sescratch.models.shufflenet import ShuffleUnit

    T = _classes()

    def child(m):
        return None if m is None else convert_child(m)

    if isinstance(module, Flatten):
        return nn.Flatten()
    if isinstance(module, InceptionResNetBlock):
        branches = OrderedDict((n, child(getattr(module, n))) for n in module.branch_names)
        return T["InceptionResNetBlock"](branches, child(module.conv2d), child(module.se_module), module.scale,
                                         module.relu is not None)
    if isinstance(module, Branches):
        branches = OrderedDict((n, child(getattr(module, n))) for n in module.branch_names)
        return T["Branches"](branches, child(module.se_module))
    if isinstance(module, ShuffleUnit):
        children = OrderedDict((n, child(getattr(module, n))) for n in (
            "conv1", "bn1", "relu1", "shuffle", "conv_dw", "bn2", "conv2", "bn3", "se_module", "shortcut"))
        return T["ShuffleUnit"](children, module.stride)
    if isinstance(module, snn.AvgPool2d):
        return nn.AvgPool2d(module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode,
                            count_include_pad=module.count_include_pad)
    if isinstance(module, snn.ChannelShuffle):
        return nn.ChannelShuffle(module.groups)
    return None
