"""Which zoo wrote a ``state_dict``, what architecture it implies, and its keys in our names.

==================== =============================================== ====================================
naming               recognised by                                   architecture it implies
==================== =============================================== ====================================
``sescratch``        ``layer0.conv1.weight``, SE FCs ``(out, in)``   ours, as ``create`` builds it
``release``          ``layer0.conv1.weight``, SE FCs as 1x1 convs    the SENet release (Cadene's
                     ``layerS.B.se_module.fc1.weight (out, in, 1, 1)`` ``pretrainedmodels``): ours
``torchvision``      ``conv1.weight``, ``layerS.B...``, ``fc.weight`` torchvision ResNet / ResNeXt:
                     and no SE                                       stride on the 3x3, stem max pool
                                                                     padded by 1
``timm``             as torchvision plus ``layerS.B.se.fc1.weight``  timm ``seresnet*`` /
                     (1x1 convs)                                     ``seresnext*``: as torchvision, SE
                                                                     widths rounded to multiples of 8
``bninception``      ``conv1_7x7_s2_bn.*``, ``inception_3a_1x1``     ``bn_inception`` (Cadene's port;
                     (the port's flat names)                         units nested in ours)
``torchvision_vgg``  ``features.N.*`` and ``classifier.0/3/6.*``     ``vgg16_bn``: the same
                     (torchvision's ``vgg16_bn``)                    ``features.N``; the classifier's
                                                                     FCs renamed (Cadene's names)
==================== =============================================== ====================================

Cadene's Inception-ResNet-v2 port (``conv2d_1a.conv``, ``mixed_5b.branch0``, ``repeat.0.conv2d``,
``block8``, ``last_linear``) uses the names of our ``inception_resnet_v2``: it reads as ``sescratch``.

Renaming to ours: ``conv1``/``bn1`` -> ``layer0.conv1``/``layer0.bn1``, ``fc`` -> ``last_linear``,
``se`` -> ``se_module``; torchvision VGG's ``classifier.0``, ``classifier.3``, ``classifier.6``
(its ``Sequential`` of FC, ReLU, dropout, FC, ReLU, dropout, FC) -> ``linear0``, ``linear1``,
``last_linear`` (its ``features.N`` indices are ours already, and its ``avgpool`` to 7x7 holds no
tensor and does nothing at 224x224, the only size our ``vgg16_bn`` takes); SE FC weights stored
as 1x1 convolutions ``(out, in, 1, 1)`` become ``(out, in)`` (the same numbers: a 1x1 conv on a
1x1 map *is* a fully connected layer). Nothing else is ever reshaped: a tensor of another shape
is an error, and the timm SE widths are matched by building the SE blocks that wide (the model
option ``se_divisor=8``): a file whose widths follow another rule fails with the mis-shaped keys
listed.
"""
from __future__ import annotations

import re

import numpy as np

__all__ = ["NAMINGS", "detect_naming", "to_sescratch", "file_key", "file_shape", "architecture_options"]

NAMINGS = {
    "sescratch": "sescratch",
    "release": "SENet release port (pretrainedmodels: layer0.*, se_module.fc* as 1x1 convs)",
    "torchvision": "torchvision ResNet (conv1, bn1, layerS.B.*, fc)",
    "timm": "timm seresnet (conv1, bn1, layerS.B.se.fc*, fc)",
    "bninception": "BN-Inception port (pretrainedmodels: inception_3a_1x1, inception_3a_1x1_bn, ...)",
    "torchvision_vgg": "torchvision VGG (features.N, classifier.0/3/6)",
}

# (our prefix, their prefix) of the torchvision-style namings
_TORCHVISION_PREFIXES = (("layer0.conv1.", "conv1."), ("layer0.bn1.", "bn1."), ("last_linear.", "fc."))
# BN-Inception port: flat names, the BN of conv X named X_bn; ours nest the units in modules
_BNI_STEM = re.compile(r"^(conv1_7x7_s2|conv2_3x3_reduce|conv2_3x3)(_bn)?\.(.+)$")
_BNI_MODULE = re.compile(r"^inception_(\d[a-e])_(double_3x3_reduce|double_3x3_1|double_3x3_2|3x3_reduce|3x3|1x1|"
                         r"pool_proj)(_bn)?\.(.+)$")
_BNI_BRANCH = {"1x1": "branch_1x1", "3x3_reduce": "branch_3x3.reduce", "3x3": "branch_3x3.conv",
               "double_3x3_reduce": "branch_double_3x3.reduce", "double_3x3_1": "branch_double_3x3.conv1",
               "double_3x3_2": "branch_double_3x3.conv2", "pool_proj": "branch_pool.proj"}
# torchvision VGG: (our prefix, their prefix) of the classifier's three FCs
_VGG_CLASSIFIER = (("linear0.", "classifier.0."), ("linear1.", "classifier.3."), ("last_linear.", "classifier.6."))
_SE_FC_WEIGHT = re.compile(r"\.se_module\.fc[12]\.weight$")
_TIMM_SE = re.compile(r"^(layer\d+\.\d+)\.se\.(fc[12]\.(weight|bias))$")


def detect_naming(state: dict) -> str:
    """One of :data:`NAMINGS` for a ``{key: array}``; ``ValueError`` for timm layouts we do not build."""
    keys = set(state)
    if "layer0.conv1.weight" in keys:
        se_fc = [k for k in keys if _SE_FC_WEIGHT.search(k)]
        if se_fc and all(np.ndim(state[k]) == 4 for k in se_fc):
            return "release"
        return "sescratch"
    if "conv1_7x7_s2.weight" in keys and "conv1_7x7_s2_bn.weight" in keys:
        return "bninception"
    if "conv1.0.weight" in keys and "layer1.0.conv1.weight" in keys:
        raise ValueError("timm deep-stem ResNet weights (conv1.0, conv1.1, ...: the '-d'/'-t' variants such as "
                         "seresnet152d, seresnext26d_32x4d) have no sescratch equivalent")
    if "features.0.weight" in keys and "classifier.6.weight" in keys:
        return "torchvision_vgg"
    if "conv1.weight" in keys and "layer1.0.conv1.weight" in keys:
        if any(_TIMM_SE.match(k) for k in keys):
            return "timm"
        return "torchvision"
    return "sescratch"  # our other models; anything else fails to load with the keys listed


def to_sescratch(state: dict, naming: str) -> dict[str, np.ndarray]:
    """The same tensors under our names (SE FCs of shape ``(out, in, 1, 1)`` as ``(out, in)``)."""
    if naming not in NAMINGS:
        raise ValueError(f"to_sescratch: naming must be one of {list(NAMINGS)}, got {naming!r}")
    out = {}
    for key, value in state.items():
        ours = _our_key(key, naming)
        if _SE_FC_WEIGHT.search(ours) and np.ndim(value) == 4 and np.shape(value)[2:] == (1, 1):
            value = np.asarray(value).reshape(np.shape(value)[:2])  # a 1x1 conv is an FC: same numbers
        out[ours] = value
    return out


def _our_key(key: str, naming: str) -> str:
    if naming == "bninception":
        m = _BNI_STEM.match(key)
        if m:
            return f"{m.group(1)}.{'bn' if m.group(2) else 'conv'}.{m.group(3)}"
        m = _BNI_MODULE.match(key)
        if m:
            return f"inception_{m.group(1)}.{_BNI_BRANCH[m.group(2)]}.{'bn' if m.group(3) else 'conv'}.{m.group(4)}"
        return key
    if naming == "torchvision_vgg":
        return _renamed(key, _VGG_CLASSIFIER, to_ours=True)
    if naming in ("torchvision", "timm"):
        for ours, theirs in _TORCHVISION_PREFIXES:
            if key.startswith(theirs):
                return ours + key[len(theirs):]
        m = _TIMM_SE.match(key)
        if m:
            return f"{m.group(1)}.se_module.{m.group(2)}"
    return key


def file_key(ours: str, naming: str) -> str:
    """The name the file's naming gives to our key ``ours`` (for error messages)."""
    if naming == "bninception":
        return _bninception_key(ours)
    if naming == "torchvision_vgg":
        return _renamed(ours, _VGG_CLASSIFIER, to_ours=False)
    if naming not in ("torchvision", "timm"):
        return ours
    for prefix, theirs in _TORCHVISION_PREFIXES:
        if ours.startswith(prefix):
            return theirs + ours[len(prefix):]
    return ours.replace(".se_module.", ".se.")


def _renamed(key: str, prefixes, *, to_ours: bool) -> str:
    """``key`` with the first matching prefix of the ``(ours, theirs)`` pairs swapped, theirs for
    ours (``to_ours``) or ours for theirs; unchanged where none matches."""
    for ours, theirs in prefixes:
        old, new = (theirs, ours) if to_ours else (ours, theirs)
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _bninception_key(ours: str) -> str:
    parts = ours.split(".")
    if len(parts) >= 3 and parts[1] in ("conv", "bn") and parts[0].startswith("conv"):
        return f"{parts[0]}{'_bn' if parts[1] == 'bn' else ''}." + ".".join(parts[2:])
    for theirs, path in _BNI_BRANCH.items():
        prefix = f"{parts[0]}.{path}."
        if parts[0].startswith("inception_") and ours.startswith(prefix):
            unit, rest = ours[len(prefix):].split(".", 1)
            return f"{parts[0]}_{theirs}{'_bn' if unit == 'bn' else ''}.{rest}"
    return ours


def file_shape(ours: str, shape, naming: str) -> tuple:
    """The shape the file stores for our key ``ours`` (its SE FCs are 1x1 convs in two namings)."""
    shape = tuple(shape)
    if naming in ("release", "timm") and _SE_FC_WEIGHT.search(ours) and len(shape) == 2:
        return shape + (1, 1)
    return shape


def architecture_options(naming: str) -> dict:
    """The ``create`` options that make our model compute what the file's zoo computes.

    Only those a model accepts apply (``stride_on`` means nothing to a BasicBlock network).
    """
    if naming == "torchvision":
        return {"stride_on": "3x3", "stem_pool": "pad"}
    if naming == "timm":  # SE width make_divisible(C / 16, 8), timm's rd_divisor
        return {"stride_on": "3x3", "stem_pool": "pad", "se_divisor": 8}
    return {}
