"""An independent PyTorch definition of the SENet release (Cadene's ``pretrainedmodels`` port of
the authors' Caffe models), written for the tests from the release's architecture, not from ours.

Nothing here imports sescratch. The differences from a torchvision ResNet that matter:

- stem (``layer0``): 7x7/2 conv (SENet-154: three 3x3 convs 3->64/2, 64->64, 64->128), BN,
  ReLU, then ``MaxPool2d(3, stride=2, ceil_mode=True)`` without padding (Caffe's pooling);
- SE module: global average pool, ``fc1``/``fc2`` as 1x1 convolutions *with* bias, ReLU,
  sigmoid, then the channel-wise product; applied to the branch before the residual addition;
- SE-ResNet bottleneck (``SEResNetBottleneck``) strides its first 1x1 conv; SE-ResNeXt
  (``SEResNeXtBottleneck``, width ``floor(planes * 4 / 64) * 32``) and SENet-154
  (``SEBottleneck``: widths ``2 planes``, ``4 planes``, 64 groups) stride the grouped 3x3;
- shortcut convs are 1x1 except SENet-154's in layer2..4 (3x3, padding 1);
- head: ``AvgPool2d(7, stride=1)`` (the whole 7x7 map at 224x224 input), dropout (SENet-154:
  0.2), ``last_linear``.

``final_pool`` replaces the 7x7 of the head's average pool: the tests run small inputs, whose
last feature map is smaller than 7x7; ``AvgPool2d(k, stride=1)`` over a k x k map is the same
"average over the whole map" the release computes at 224x224.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

RELEASE = {  # name -> (bottleneck kind, blocks per stage)
    "se_resnet50": ("resnet", (3, 4, 6, 3)),
    "se_resnet101": ("resnet", (3, 4, 23, 3)),
    "se_resnet152": ("resnet", (3, 8, 36, 3)),
    "se_resnext50_32x4d": ("resnext", (3, 4, 6, 3)),
    "se_resnext101_32x4d": ("resnext", (3, 4, 23, 3)),
    "senet154": ("senet", (3, 8, 36, 3)),
}


class SEModule(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        s = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * s


class ReleaseBottleneck(nn.Module):
    """The three bottlenecks of the release, differing only in widths, groups and stride placement."""

    def __init__(self, kind, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        if kind == "resnet":
            w1, w2, groups, s1, s2 = planes, planes, 1, stride, 1
        elif kind == "resnext":
            w1 = w2 = math.floor(planes * (4 / 64)) * 32
            groups, s1, s2 = 32, 1, stride
        else:  # senet
            w1, w2, groups, s1, s2 = planes * 2, planes * 4, 64, 1, stride
        self.conv1 = nn.Conv2d(inplanes, w1, 1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1)
        self.conv2 = nn.Conv2d(w1, w2, 3, stride=s2, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(w2)
        self.conv3 = nn.Conv2d(w2, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.se_module = SEModule(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.se_module(out) + residual)


class ReleaseSENet(nn.Module):
    def __init__(self, name, num_classes=1000, final_pool=7):
        super().__init__()
        kind, blocks = RELEASE[name]
        senet = kind == "senet"
        if senet:
            stem = [("conv1", nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(64)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(64, 64, 3, padding=1, bias=False)), ("bn2", nn.BatchNorm2d(64)),
                    ("relu2", nn.ReLU()),
                    ("conv3", nn.Conv2d(64, 128, 3, padding=1, bias=False)), ("bn3", nn.BatchNorm2d(128)),
                    ("relu3", nn.ReLU())]
            inplanes = 128
        else:
            stem = [("conv1", nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)), ("bn1", nn.BatchNorm2d(64)),
                    ("relu1", nn.ReLU())]
            inplanes = 64
        stem.append(("pool", nn.MaxPool2d(3, stride=2, ceil_mode=True)))
        self.layer0 = nn.Sequential(OrderedDict(stem))
        for i, n in enumerate(blocks):
            planes, stride = 64 * 2**i, 1 if i == 0 else 2
            k = 3 if senet and i > 0 else 1
            downsample = None
            if stride != 1 or inplanes != planes * 4:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes * 4, k, stride=stride, padding=(k - 1) // 2, bias=False),
                    nn.BatchNorm2d(planes * 4))
            layer = [ReleaseBottleneck(kind, inplanes, planes, stride, downsample)]
            inplanes = planes * 4
            layer += [ReleaseBottleneck(kind, inplanes, planes) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.avg_pool = nn.AvgPool2d(final_pool, stride=1)
        self.dropout = nn.Dropout(0.2) if senet else None
        self.last_linear = nn.Linear(2048, num_classes)

    def forward(self, x):
        for i in range(5):
            x = getattr(self, f"layer{i}")(x)
        x = self.avg_pool(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.last_linear(x.view(x.size(0), -1))


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and non-trivial BN statistics that keep activations O(1) through 150 layers."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in module.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                scale = 0.2 if name.endswith(("bn3", "downsample.1")) and "layer0" not in name else 1.0
                m.weight.copy_((0.5 + torch.rand(c, generator=g)) * scale)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / math.sqrt(m.in_features))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return module
