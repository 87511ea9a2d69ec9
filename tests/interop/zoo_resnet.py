"""Independent PyTorch definitions of torchvision's ResNet / ResNeXt and timm's ``seresnet*``,
written for the tests (neither library is installed here), with their ``state_dict`` names.

torchvision (v1.5 ResNet): stem ``conv1`` 7x7/2, ``bn1``, ReLU, ``MaxPool2d(3, 2, padding=1)``;
the bottleneck strides its 3x3 conv (width ``int(planes * base_width / 64) * groups``); global
average pool; ``fc``. timm's ``seresnet*`` is the same network with an SE module ``se``
(``fc1``/``fc2`` 1x1 convs with bias) after the last BN of each block's branch, of width
``make_divisible(C / 16, 8)`` (timm's ``rd_divisor=8``, ``round_limit=0``).
"""
from __future__ import annotations

from torch import nn

ZOO = {  # name -> (block, blocks per stage, groups, base width)
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64),
    "resnet34": ("basic", (3, 4, 6, 3), 1, 64),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4),
}


def timm_se_width(channels: int, ratio: float = 1 / 16, divisor: int = 8) -> int:
    """timm's ``make_divisible(channels * ratio, divisor, round_limit=0.)``."""
    return max(divisor, int(channels * ratio + divisor / 2) // divisor * divisor)


class TimmSE(nn.Module):
    def __init__(self, channels):
        super().__init__()
        hidden = timm_se_width(channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.fc2(self.act(self.fc1(s))).sigmoid()


class Basic(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, downsample, se, groups, base_width):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = TimmSE(planes) if se else None
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottle(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, downsample, se, groups, base_width):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.se = TimmSE(planes * 4) if se else None
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ZooResNet(nn.Module):
    """``ZooResNet("resnet50")`` is torchvision's; ``ZooResNet("resnet50", se=True)`` timm's seresnet50."""

    def __init__(self, name, num_classes=1000, se=False):
        super().__init__()
        kind, blocks, groups, base_width = ZOO[name]
        block = Basic if kind == "basic" else Bottle
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, n in enumerate(blocks):
            planes, stride = 64 * 2**i, 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                                           nn.BatchNorm2d(planes * block.expansion))
            layer = [block(inplanes, planes, stride, downsample, se, groups, base_width)]
            inplanes = planes * block.expansion
            layer += [block(inplanes, planes, 1, None, se, groups, base_width) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(self.avgpool(x).flatten(1))
