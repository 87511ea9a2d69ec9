"""BN-Inception (Ioffe & Szegedy 2015, the network of the public PyTorch ports) and SE-BN-Inception.

ImageNet (``bn_inception``): the BN-Inception of Cadene's ``pretrainedmodels`` (a port of
Xiong's Caffe model), whose layer table is the batch-norm paper's Fig. 5:

- stem: 7x7/2 conv 64, 3x3/2 max pool, 1x1 conv 64, 3x3 conv 192, 3x3/2 max pool (224 -> 28);
- ten Inception modules, ``3a 3b 3c 4a 4b 4c 4d 4e 5a 5b``. A module runs four branches on its
  input and concatenates them: ``1x1``; ``1x1 -> 3x3``; ``1x1 -> 3x3 -> 3x3`` (the "double
  3x3" that replaced GoogLeNet's 5x5); ``3x3 pool -> 1x1`` (average pooling, stride 1, padding
  1, padded zeros counted; max pooling in 5b). ``3c`` and ``4e`` halve the resolution: stride-2
  3x3 convs, a 3x3/2 max pool with nothing after it, no 1x1 branch;
- global average pooling (Cadene's 7x7 average at 224) and an FC from 1024.

Every conv has a bias and is followed by BN and ReLU. Pools use ``ceil_mode`` (Caffe's rounding)
as the port does. 11,295,240 parameters at 1000 classes; 2.03 G multiply-accumulates at 224
(the paper's 2.03 GFLOPs). Deviation from the port: BN momentum 0.1 (the port writes 0.9, a
Caffe-to-PyTorch slip that would make the running statistics follow the last batch only).

SE (``se_bn_inception``): the paper's Fig. 2, SE on the output of each whole Inception module,
i.e. after the concatenation (10 SE blocks, ``inception_3a.se_module``; labels ``SE_3_1`` (3a) ...
``SE_5_2`` (5b)). Per module SE costs ``2 C^2 / r`` FC MACs on C = 256 ... 1056 channels, once
per module rather than once per branch, and the squeeze and scale are one pass over the module's
output: 2.03 -> 2.04 G, as the paper's column.

Names: ``conv1_7x7_s2``, ``pool1_3x3_s2``, ``conv2_3x3_reduce``, ``conv2_3x3``, ``pool2_3x3_s2``
(conv units with ``conv``, ``bn``, ``relu``), ``inception_3a`` ... ``inception_5b`` (branches
``branch_1x1``, ``branch_3x3`` = {``reduce``, ``conv``}, ``branch_double_3x3`` = {``reduce``,
``conv1``, ``conv2``}, ``branch_pool`` = {``pool``, ``proj``}), ``global_pool``, ``last_linear``.

CIFAR (``bn_inception_cifar``): a stride-1 stem (3x3 conv 16, 1x1 conv 16, 3x3 conv 48, 3x3/2
max pool: 32 -> 16, 28 -> 14), the same ten modules with a quarter of the widths (3a: 16, 16->16,
16->24->24, pool->8), global pooling, FC. The reduction modules' max pool pads by 1 instead of
rounding up, so that odd sizes (7 for 28x28 inputs) still match the stride-2 convs.
"""
from __future__ import annotations

from sescratch.models.parts import Branches, Network, conv_bn, make_se
from sescratch.nn.dropout import Dropout
from sescratch.nn import AvgPool2d, GlobalAvgPool, Linear, MaxPool2d, Sequential

__all__ = ["bn_inception", "BN_INCEPTION_MODULES"]

# name: (1x1, (3x3 reduce, 3x3), (double reduce, double 3x3), pool kind, pool projection);
# a reduction module (stride 2) has no 1x1 branch and no projection
BN_INCEPTION_MODULES = {
    "3a": (64, (64, 64), (64, 96), "avg", 32),
    "3b": (64, (64, 96), (64, 96), "avg", 64),
    "3c": (None, (128, 160), (64, 96), "max", None),
    "4a": (224, (64, 96), (96, 128), "avg", 128),
    "4b": (192, (96, 128), (96, 128), "avg", 128),
    "4c": (160, (128, 160), (128, 160), "avg", 128),
    "4d": (96, (128, 192), (160, 192), "avg", 128),
    "4e": (None, (128, 192), (192, 256), "max", None),
    "5a": (352, (192, 320), (160, 224), "avg", 128),
    "5b": (352, (192, 320), (192, 224), "max", 128),
}


def _unit(c_in, c_out, kernel, stride=1, padding=0):
    return conv_bn(c_in, c_out, kernel, stride, padding, bias=True)


def inception_module(in_channels, spec, *, scale=1, se=None, cifar=False) -> tuple[Branches, int]:
    """One BN-Inception module from a row of :data:`BN_INCEPTION_MODULES` (widths divided by ``scale``).

    Returns ``(module, out_channels)``; ``se`` puts an SE block on the concatenated output.
    """
    c1, (r3, c3), (rd, cd), pool, proj = spec
    c1, r3, c3, rd, cd = (None if c is None else c // scale for c in (c1, r3, c3, rd, cd))
    reduction = c1 is None
    stride = 2 if reduction else 1
    branches = {}
    if not reduction:
        branches["branch_1x1"] = _unit(in_channels, c1, 1)
    branches["branch_3x3"] = Sequential({"reduce": _unit(in_channels, r3, 1), "conv": _unit(r3, c3, 3, stride, 1)})
    branches["branch_double_3x3"] = Sequential({
        "reduce": _unit(in_channels, rd, 1), "conv1": _unit(rd, cd, 3, 1, 1), "conv2": _unit(cd, cd, 3, stride, 1)})
    if reduction:  # the pooled input itself, no projection
        pool_layer = MaxPool2d(3, 2, padding=1) if cifar else MaxPool2d(3, 2, ceil_mode=True)
        branches["branch_pool"] = Sequential({"pool": pool_layer})
        out = c3 + cd + in_channels
    else:
        pool_layer = (AvgPool2d(3, 1, 1, ceil_mode=True, count_include_pad=True) if pool == "avg"
                      else MaxPool2d(3, 1, 1, ceil_mode=True))
        branches["branch_pool"] = Sequential({"pool": pool_layer, "proj": _unit(in_channels, proj // scale, 1)})
        out = c1 + c3 + cd + proj // scale
    return Branches(branches, make_se(out, se)), out


def bn_inception(name, *, num_classes, in_channels=3, se=None, cifar=False, dropout=0.0) -> Network:
    """Build BN-Inception (``se=None``) or SE-BN-Inception; ``cifar=True`` for the CIFAR-scale network."""
    if cifar:
        scale = 4
        layers = {
            "conv1_3x3": _unit(in_channels, 16, 3, 1, 1),
            "conv2_3x3_reduce": _unit(16, 16, 1),
            "conv2_3x3": _unit(16, 48, 3, 1, 1),
            "pool2_3x3_s2": MaxPool2d(3, 2, ceil_mode=True),
        }
        channels = 48
    else:
        scale = 1
        layers = {
            "conv1_7x7_s2": _unit(in_channels, 64, 7, 2, 3),
            "pool1_3x3_s2": MaxPool2d(3, 2, ceil_mode=True),
            "conv2_3x3_reduce": _unit(64, 64, 1),
            "conv2_3x3": _unit(64, 192, 3, 1, 1),
            "pool2_3x3_s2": MaxPool2d(3, 2, ceil_mode=True),
        }
        channels = 192
    se_paths, stage, index = {}, None, 0
    for key, spec in BN_INCEPTION_MODULES.items():
        module, channels = inception_module(channels, spec, scale=scale, se=se, cifar=cifar)
        layers[f"inception_{key}"] = module
        index = index + 1 if key[0] == stage else 1
        stage = key[0]
        if se is not None:
            se_paths[f"SE_{stage}_{index}"] = f"inception_{key}.se_module"
    layers["global_pool"] = GlobalAvgPool()
    if dropout:
        layers["dropout"] = Dropout(dropout)
    layers["last_linear"] = Linear(channels, num_classes)
    return Network(name, layers, in_channels, se_paths=se_paths)
