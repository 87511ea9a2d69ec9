"""Inception-ResNet-v2 (Szegedy et al. 2017) and SE-Inception-ResNet-v2.

ImageNet (``inception_resnet_v2``, input 299): the network of Cadene's ``pretrainedmodels`` and
timm (a port of the TF-slim checkpoint), under the same names:

- stem ``conv2d_1a`` (3x3/2, 32), ``conv2d_2a`` (3x3, 32), ``conv2d_2b`` (3x3 pad 1, 64),
  ``maxpool_3a`` (3x3/2), ``conv2d_3b`` (1x1, 80), ``conv2d_4a`` (3x3, 192), ``maxpool_5a``
  (3x3/2): 299 -> 35;
- ``mixed_5b`` (branches 1x1 96 | 1x1 48 -> 5x5 64 | 1x1 64 -> 3x3 96 -> 3x3 96 | 3x3 average
  pool (padded zeros not counted) -> 1x1 64: 320 channels), ``repeat``: 10 Block35 (scale 0.17),
  ``mixed_6a`` (-> 17x17, 1088), ``repeat_1``: 20 Block17 (scale 0.10, 1x7 and 7x1 convs),
  ``mixed_7a`` (-> 8x8, 2080), ``repeat_2``: 9 Block8 (scale 0.20), ``block8`` (no ReLU),
  ``conv2d_7b`` (1x1, 1536), global average pooling (the port's 8x8 average), ``last_linear``.

Each ``conv2d_*``/branch conv is conv (no bias) -> BN (eps 0.001, TF's) -> ReLU. An
Inception-ResNet block concatenates its branches, maps them back to the input width with a
1x1 conv (with bias, ``conv2d``), scales the result and adds it to the input:
``y = relu(x + scale * conv2d(concat(branches(x))))``. 55,843,464 parameters at 1000 classes and
13.16 G multiply-accumulates at 299. The paper's column says 11.75 GFLOPs, which this
architecture does not give at 299 (nor near it: 11.72 G at 295, where the 35x35 grid drops to
34x34); outputs and MAC counts are checked against Cadene's definition (tests/models).

SE (``se_inception_resnet_v2``): the paper's SE-ResNet rule applied to the Inception-ResNet
blocks (Fig. 3 with the Inception branch as the residual branch): SE on the residual branch,
after the 1x1 ``conv2d`` and before the scaling and the addition (``repeat.0.se_module``), in all
40 blocks; the three ``mixed`` modules have no identity path and carry none. Labels: ``SE_5_1``
... ``SE_5_10`` (Block35), ``SE_6_1`` ... ``SE_6_20`` (Block17), ``SE_7_1`` ... ``SE_7_10``
(Block8, ``block8`` last), after the ``mixed_5b/6a/7a`` that open each group.

CIFAR (``inception_resnet_v2_cifar``): a stride-1 stem (3x3 convs 16, 16, 32, 1x1 40, 3x3 24, a
3x3/2 max pool padded by 1: 32 -> 16), the same modules at an eighth of the widths (mixed_5b 40,
mixed_6a 136, mixed_7a 260, conv2d_7b 192 channels) with 2, 4 and 2 (+1) blocks; 16 -> 7 -> 3.
"""
from __future__ import annotations

from sescratch import ops
from sescratch.models.parts import Branches, Network, conv_bn, make_se
from sescratch.nn.dropout import Dropout
from sescratch.nn import AvgPool2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, ReLU, Sequential
from sescratch.nn.module import Module, ShapeError

__all__ = ["inception_resnet_v2", "InceptionResNetBlock"]


def _unit(c_in, c_out, kernel, stride=1, padding=0):
    return conv_bn(c_in, c_out, kernel, stride, padding, eps=1e-3)


def _chain(*units):
    return units[0] if len(units) == 1 else Sequential(*units)


class InceptionResNetBlock(Branches):
    """``y = relu(x + scale * [se](conv2d(concat(branch0(x), branch1(x), ...))))``.

    Backward, bottom up against the forward: ReLU's backward; the sum fans ``dy`` out to the
    shortcut and the branch; the branch gradient is multiplied by ``scale``, goes back through SE
    and ``conv2d``, is split among the branches, and their input gradients are summed with the
    shortcut's (``x`` feeds the shortcut and every branch).
    """

    def __init__(self, branches: dict, width: int, channels: int, scale: float, *, relu=True, se=None):
        Module.__init__(self)
        self._set_branches(branches)  # concatenated: ``width`` channels
        self.conv2d = Conv2d(width, channels, 1, bias=True)  # back to the input width
        self.se_module = make_se(channels, se)
        self.scale = float(scale)
        self.relu = ReLU() if relu else None

    def forward(self, x):
        h = self._concat_forward(x)  # N,width,H,W
        u = self.conv2d(h)  # N,C,H,W
        if self.se_module is not None:
            u = self.se_module(u)
        y, self._add = ops.add_forward(x, self.scale * u)  # N,C,H,W
        return y if self.relu is None else self.relu(y)

    def backward(self, dy):
        if self.relu is not None:
            dy = self.relu.backward(dy)
        dx_shortcut, dr = ops.add_backward(dy, self._add)
        du = self.scale * dr
        if self.se_module is not None:
            du = self.se_module.backward(du)
        dh = self.conv2d.backward(du)
        return dx_shortcut + self._concat_backward(dh)  # fan-out: shortcut + every branch

    def trace(self, shape, name, records=None):
        prefix = f"{name}." if name else ""
        out = self.conv2d.trace(self._trace_branches(shape, name, records), f"{prefix}conv2d", records)
        if tuple(out) != tuple(shape):
            raise ShapeError(f"layer '{name}' (InceptionResNetBlock) needs input {out}, got {tuple(shape)}")
        if self.se_module is not None:
            self.se_module.trace(out, f"{prefix}se_module", records)
        return out

    def extra_repr(self):
        return f"branches={self.branch_names}, scale={self.scale}, relu={self.relu is not None}"


def _block35(c, w, se):
    return InceptionResNetBlock({
        "branch0": _unit(c, w(32), 1),
        "branch1": _chain(_unit(c, w(32), 1), _unit(w(32), w(32), 3, 1, 1)),
        "branch2": _chain(_unit(c, w(32), 1), _unit(w(32), w(48), 3, 1, 1), _unit(w(48), w(64), 3, 1, 1)),
    }, w(32) + w(32) + w(64), c, 0.17, se=se)


def _block17(c, w, se):
    return InceptionResNetBlock({
        "branch0": _unit(c, w(192), 1),
        "branch1": _chain(_unit(c, w(128), 1), _unit(w(128), w(160), (1, 7), 1, (0, 3)),
                          _unit(w(160), w(192), (7, 1), 1, (3, 0))),
    }, w(192) + w(192), c, 0.10, se=se)


def _block8(c, w, se, *, scale=0.20, relu=True):
    return InceptionResNetBlock({
        "branch0": _unit(c, w(192), 1),
        "branch1": _chain(_unit(c, w(192), 1), _unit(w(192), w(224), (1, 3), 1, (0, 1)),
                          _unit(w(224), w(256), (3, 1), 1, (1, 0))),
    }, w(192) + w(256), c, scale, relu=relu, se=se)


def _mixed(w, c_in):
    """``mixed_5b``, ``mixed_6a``, ``mixed_7a`` and their output widths."""
    m5b = Branches({
        "branch0": _unit(c_in, w(96), 1),
        "branch1": _chain(_unit(c_in, w(48), 1), _unit(w(48), w(64), 5, 1, 2)),
        "branch2": _chain(_unit(c_in, w(64), 1), _unit(w(64), w(96), 3, 1, 1), _unit(w(96), w(96), 3, 1, 1)),
        "branch3": _chain(AvgPool2d(3, 1, 1, count_include_pad=False), _unit(c_in, w(64), 1)),
    })
    c5 = w(96) + w(64) + w(96) + w(64)
    m6a = Branches({
        "branch0": _unit(c5, w(384), 3, 2),
        "branch1": _chain(_unit(c5, w(256), 1), _unit(w(256), w(256), 3, 1, 1), _unit(w(256), w(384), 3, 2)),
        "branch2": MaxPool2d(3, 2),
    })
    c6 = w(384) + w(384) + c5
    m7a = Branches({
        "branch0": _chain(_unit(c6, w(256), 1), _unit(w(256), w(384), 3, 2)),
        "branch1": _chain(_unit(c6, w(256), 1), _unit(w(256), w(288), 3, 2)),
        "branch2": _chain(_unit(c6, w(256), 1), _unit(w(256), w(288), 3, 1, 1), _unit(w(288), w(320), 3, 2)),
        "branch3": MaxPool2d(3, 2),
    })
    c7 = w(384) + w(288) + w(320) + c6
    return (m5b, c5), (m6a, c6), (m7a, c7)


def inception_resnet_v2(name, *, num_classes, in_channels=3, se=None, cifar=False, dropout=0.0) -> Network:
    """Build Inception-ResNet-v2 (``se=None``) or SE-Inception-ResNet-v2; ``cifar=True`` for the small one."""
    divisor, repeats = (8, (2, 4, 2)) if cifar else (1, (10, 20, 9))

    def w(c):
        return c // divisor

    if cifar:
        layers = {"conv2d_1a": _unit(in_channels, 16, 3, 1, 1), "conv2d_2a": _unit(16, 16, 3, 1, 1),
                  "conv2d_2b": _unit(16, 32, 3, 1, 1), "conv2d_3b": _unit(32, 40, 1),
                  "conv2d_4a": _unit(40, w(192), 3, 1, 1), "maxpool_5a": MaxPool2d(3, 2, padding=1)}
    else:
        layers = {"conv2d_1a": _unit(in_channels, 32, 3, 2), "conv2d_2a": _unit(32, 32, 3),
                  "conv2d_2b": _unit(32, 64, 3, 1, 1), "maxpool_3a": MaxPool2d(3, 2),
                  "conv2d_3b": _unit(64, 80, 1), "conv2d_4a": _unit(80, 192, 3), "maxpool_5a": MaxPool2d(3, 2)}
    (m5b, c5), (m6a, c6), (m7a, c7) = _mixed(w, w(192))
    layers["mixed_5b"] = m5b
    layers["repeat"] = Sequential(*[_block35(c5, w, se) for _ in range(repeats[0])])
    layers["mixed_6a"] = m6a
    layers["repeat_1"] = Sequential(*[_block17(c6, w, se) for _ in range(repeats[1])])
    layers["mixed_7a"] = m7a
    layers["repeat_2"] = Sequential(*[_block8(c7, w, se) for _ in range(repeats[2])])
    layers["block8"] = _block8(c7, w, se, scale=1.0, relu=False)
    layers["conv2d_7b"] = _unit(c7, w(1536), 1)
    layers["avg_pool"] = GlobalAvgPool()
    if dropout:
        layers["dropout"] = Dropout(dropout)
    layers["last_linear"] = Linear(w(1536), num_classes)
    se_paths = {}
    if se is not None:
        groups = (("repeat", 5, repeats[0]), ("repeat_1", 6, repeats[1]), ("repeat_2", 7, repeats[2]))
        for attr, stage, n in groups:
            se_paths.update({f"SE_{stage}_{i + 1}": f"{attr}.{i}.se_module" for i in range(n)})
        se_paths[f"SE_7_{repeats[2] + 1}"] = "block8.se_module"
    return Network(name, layers, in_channels, se_paths=se_paths)
