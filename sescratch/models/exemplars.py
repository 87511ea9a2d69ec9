"""The registry rows of the paper's other SE exemplars (Table 2-3), read by :mod:`sescratch.models`.

``EXEMPLARS[name] = (builder, cifar, se, defaults)``: ``builder(name, num_classes=, in_channels=,
se=, cifar=, **options)`` builds the network; ``defaults`` are the options the model accepts
beyond the SE ones (``reduction``, ``squeeze``, ``gate`` for ``se_*``) and the common ones
(``dropout``, ``init``, ``seed``).

=========================================  ===================================================
model                                      options beyond SE and common ones
=========================================  ===================================================
``vgg16_bn``, ``se_vgg16_bn``              ``dropout`` default 0.5 (both classifier dropouts)
``vgg16_bn_cifar``, ``se_..._cifar``       ``width`` (first block's channels, default 16)
``bn_inception``, ``se_bn_inception``      -
``inception_resnet_v2``, ``se_...``        -
``mobilenet_v1``, ``se_mobilenet_v1``      ``width_multiplier`` (alpha, default 1.0; CIFAR 0.5)
``shufflenet_v1_g3``, ``se_...``           ``groups`` (1, 2, 3, 4 or 8; default 3)
=========================================  ===================================================
"""
from __future__ import annotations

from sescratch.models.inception import bn_inception
from sescratch.models.inception_resnet import inception_resnet_v2
from sescratch.models.mobilenet import mobilenet_v1
from sescratch.models.shufflenet import shufflenet_v1
from sescratch.models.vgg import vgg16_bn

__all__ = ["EXEMPLARS"]

_FAMILIES = {
    # base name: (builder, ImageNet defaults, CIFAR defaults)
    "vgg16_bn": (vgg16_bn, {"dropout": 0.5}, {"width": 16}),
    "bn_inception": (bn_inception, {}, {}),
    "inception_resnet_v2": (inception_resnet_v2, {}, {}),
    "mobilenet_v1": (mobilenet_v1, {"width_multiplier": 1.0}, {"width_multiplier": 0.5}),
    "shufflenet_v1_g3": (shufflenet_v1, {"groups": 3}, {"groups": 3}),
}

EXEMPLARS: dict[str, tuple] = {}
for _base, (_builder, _imagenet, _cifar) in _FAMILIES.items():
    for _se in (False, True):
        _name = f"se_{_base}" if _se else _base
        EXEMPLARS[_name] = (_builder, False, _se, dict(_imagenet))
        EXEMPLARS[f"{_name}_cifar"] = (_builder, True, _se, dict(_cifar))
