"""The model zoo: ``create(name, *, num_classes, in_channels=3, **options)`` and ``list_models()``.

CIFAR family (3 stages, 16/32/64 channels): ``resnet20/32/44/56/110``, ``se_resnet20/32/44/56/110``.
ImageNet family (the SENet release): ``resnet18/34/50/101/152``, ``se_resnet18/34/50/101/152``,
``resnext50_32x4d``, ``se_resnext50_32x4d``, ``se_resnext101_32x4d``, ``senet154``.
The paper's other exemplars (:mod:`sescratch.models.exemplars`, each plain, ``se_`` and ``_cifar``):
``vgg16_bn``, ``bn_inception``, ``inception_resnet_v2``, ``mobilenet_v1``, ``shufflenet_v1_g3``
(their own options: ``width`` (VGG CIFAR), ``width_multiplier`` (MobileNet), ``groups``
(ShuffleNet); SE options without ``placement``: each family fixes where SE goes).

Options (each model accepts those that apply to it; others raise ``ValueError``):

============ ========================================= ===================================
option       values                                    models
============ ========================================= ===================================
reduction    int, default 16                           SE models
placement    standard | pre | post | identity |        SE models (paper's Tables 14/15)
             after_3x3
squeeze      avg | max                                 SE models
gate         sigmoid | tanh | relu | hard_sigmoid      SE models
shortcut     "B" (1x1 conv + BN) | "A" (zero-pad)      CIFAR
width        channels of the first stage, default 16   CIFAR
stride_on    "1x1" | "3x3" (default: the release's)    ImageNet bottleneck models
stem_pool    "ceil" (the release: no padding,          ImageNet ResNets / SENets
             ceil_mode) | "pad" (padding 1:
             torchvision, timm)
se_divisor   None (``C // r``) | int d: SE widths      ImageNet SE ResNets / SENets
             ``make_divisible(C / r, d)`` (timm: 8)
dropout      probability in [0, 1) of the dropout      all (default 0; senet154: 0.2,
             before the classifier (0: no layer)       the release's)
init         True | False (zeros: fast, for counting   all
             or loading weights)
seed         int >= 0: seed of the initialisation      all (default ``DEFAULT_SEED`` = 0)
============ ========================================= ===================================

Each call initialises from its own generator, ``np.random.default_rng(seed)``: the weights
depend on ``name``, the options and ``seed`` only, never on the models built before (``seed=None``
means :data:`DEFAULT_SEED`). Dropout masks do not come from this generator: a model with
``dropout > 0`` needs ``model.set_rng(rng)`` (the run's generator) before it trains.

``create(name, weights=PATH)`` builds the model from a weights file instead (``.npz``,
``.safetensors``, ``.pth``/``.pt``; ours, the SENet release's, timm's or torchvision's naming):
``num_classes`` and ``in_channels`` default to the file's, the architecture options the file's
zoo implies are set (:func:`sescratch.interop.loading.load_pretrained`), ``init_missing=True``
initialises keys the file lacks (a plain ResNet's weights starting an SE-ResNet).
"""
from __future__ import annotations

import numbers

import numpy as np

from sescratch.models.cifar import CIFAR_DEPTHS, cifar_resnet
from sescratch.models.exemplars import EXEMPLARS
from sescratch.models.imagenet import imagenet_resnet
from sescratch.models.resnet import ResNet, make_stage
from sescratch.nn import init as _init
from sescratch.ops._checks import is_int

__all__ = ["create", "check_options", "default_options", "list_models", "native_input_size", "DEFAULT_SEED",
           "ResNet", "make_stage", "cifar_resnet", "imagenet_resnet"]

DEFAULT_SEED = 0
_COMMON = {"dropout": 0.0, "init": True, "seed": None}
_SE = {"reduction": 16, "placement": "standard", "squeeze": "avg", "gate": "sigmoid"}
_CIFAR = {"shortcut": "B", "width": 16}

# name -> (family builder arguments, default options)
_MODELS: dict[str, tuple[dict, dict]] = {}
for _depth, _n in CIFAR_DEPTHS.items():
    _MODELS[f"resnet{_depth}"] = ({"family": "cifar", "n": _n, "se": False}, {**_CIFAR})
    _MODELS[f"se_resnet{_depth}"] = ({"family": "cifar", "n": _n, "se": True}, {**_CIFAR, **_SE})
for _depth in (18, 34, 50, 101, 152):
    _kind = "basic" if _depth < 50 else "bottleneck"
    _extra = {} if _kind == "basic" else {"stride_on": None}
    _MODELS[f"resnet{_depth}"] = ({"family": "imagenet", "kind": _kind, "depth": _depth, "se": False}, _extra)
    _MODELS[f"se_resnet{_depth}"] = (
        {"family": "imagenet", "kind": _kind, "depth": _depth, "se": True}, {**_SE, **_extra})
_MODELS["resnext50_32x4d"] = ({"family": "imagenet", "kind": "resnext", "depth": 50, "se": False},
                              {"stride_on": None})
for _depth in (50, 101):
    _MODELS[f"se_resnext{_depth}_32x4d"] = (
        {"family": "imagenet", "kind": "resnext", "depth": _depth, "se": True}, {**_SE, "stride_on": None})
_MODELS["senet154"] = ({"family": "imagenet", "kind": "senet", "depth": 154, "se": True},
                       {**_SE, "stride_on": None, "dropout": 0.2})
for _spec, _defaults in _MODELS.values():  # the stem pool and SE widths of other zoos (loading their weights)
    if _spec["family"] == "imagenet":
        _defaults["stem_pool"] = "ceil"
        if _spec["se"]:
            _defaults["se_divisor"] = None
# the paper's other exemplars (VGG, BN-Inception, Inception-ResNet-v2, MobileNet, ShuffleNet):
# sescratch.models.exemplars; SE options without ``placement`` (each family fixes where SE goes)
for _name, (_builder, _cifar, _se, _defaults) in EXEMPLARS.items():
    _se_options = {k: v for k, v in _SE.items() if k != "placement"} if _se else {}
    _MODELS[_name] = ({"family": "exemplar", "builder": _builder, "cifar": _cifar, "se": _se},
                      {**_se_options, **_defaults})


def list_models() -> list[str]:
    """Every name :func:`create` accepts, CIFAR family first."""
    return list(_MODELS)


def native_input_size(name: str) -> tuple[int, int]:
    """The (H, W) the model ``name`` is designed for: 32x32 for the CIFAR-scale networks, 299x299
    for Inception-ResNet-v2 (Szegedy et al. 2017; its released weights were trained at 299),
    224x224 for the other ImageNet ones (a model whose head fixes its input also says so in
    ``input_size``)."""
    if name not in _MODELS:
        raise ValueError(f"native_input_size: unknown model {name!r}; valid models: {', '.join(_MODELS)}")
    spec = _MODELS[name][0]
    cifar = spec["family"] == "cifar" or spec["family"] == "exemplar" and spec["cifar"]
    if cifar:
        return (32, 32)
    return (299, 299) if name in ("inception_resnet_v2", "se_inception_resnet_v2") else (224, 224)


def default_options(name: str) -> dict:
    """The options ``name`` accepts, with their defaults."""
    if name not in _MODELS:
        raise ValueError(f"create: unknown model {name!r}; valid models: {', '.join(_MODELS)}")
    defaults = _MODELS[name][1]
    return {**defaults, **{k: v for k, v in _COMMON.items() if k not in defaults}}


def create(name: str, *, num_classes: int | None = None, in_channels: int | None = None, weights=None,
           init_missing: bool = False, **options) -> ResNet:
    """Build the model ``name`` (see :func:`list_models` and the option table above).

    ``num_classes`` is required unless ``weights`` (a path) gives it; ``in_channels`` defaults to
    3 (or the file's).
    """
    if name not in _MODELS:
        raise ValueError(f"create: unknown model {name!r}; valid models: {', '.join(_MODELS)}")
    if weights is not None:
        from sescratch.interop.loading import load_pretrained

        if "init" in options:
            raise ValueError(f"create({name!r}): option init does not go with weights= (use init_missing)")
        return load_pretrained(name, weights, num_classes=num_classes, in_channels=in_channels,
                               init_missing=init_missing, **options)[0]
    if init_missing:
        raise ValueError(f"create({name!r}): init_missing=True needs weights=PATH")
    if num_classes is None:  # a missing required argument, as Python reports it, with the way out
        raise TypeError(f"create({name!r}): num_classes is required (or weights=PATH to read it from)")
    in_channels = 3 if in_channels is None else in_channels
    spec, defaults = _MODELS[name]
    defaults = {**defaults, **{k: v for k, v in _COMMON.items() if k not in defaults}}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"create({name!r}): unknown option(s) {', '.join(unknown)}; valid options: {', '.join(defaults)}"
        )
    for label, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if not is_int(value) or value < 1:
            raise ValueError(f"create({name!r}): {label} must be a positive int, got {value!r}")
    num_classes, in_channels = int(num_classes), int(in_channels)
    opts = {**defaults, **options}
    _check_dropout(name, opts["dropout"])
    check_options(name, opts)
    se = None
    if spec["se"]:
        se = {"reduction": opts.pop("reduction"), "squeeze": opts.pop("squeeze"), "gate": opts.pop("gate")}
    placement = opts.pop("placement", "standard")
    init, seed = opts.pop("init"), opts.pop("seed")
    seed = DEFAULT_SEED if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"create({name!r}): seed must be a non-negative int or None, got {seed!r}")
    with _init.use_generator(np.random.default_rng(int(seed))):  # this model's own generator
        if init:
            return _build(name, spec, num_classes, in_channels, se, placement, opts)
        with _init.skip_init():
            return _build(name, spec, num_classes, in_channels, se, placement, opts)


# Accepted values of the options shared by the families: (kind, choices or (low, high)).
_OPTION_RULES = {
    "reduction": ("int", (1, 4096)),
    "width": ("int", (1, 1024)),
    "placement": ("choice", ("standard", "pre", "post", "identity", "after_3x3")),
    "squeeze": ("choice", ("avg", "max")),
    "gate": ("choice", ("sigmoid", "tanh", "relu", "hard_sigmoid")),
    "shortcut": ("choice", ("A", "B")),
    "stride_on": ("choice", (None, "1x1", "3x3")),
    "stem_pool": ("choice", ("ceil", "pad")),
    "init": ("choice", (True, False)),
}


def check_options(name: str, options: dict) -> None:
    """Raise ``ValueError`` naming the option, its value and the accepted range, before building.

    Checks what :func:`create` would refuse (unknown names and values) without building anything.
    """
    if name not in _MODELS:
        raise ValueError(f"create: unknown model {name!r}; valid models: {', '.join(_MODELS)}")
    valid = {*_MODELS[name][1], *_COMMON}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"create({name!r}): unknown option(s) {', '.join(unknown)}; "
                         f"valid options: {', '.join(sorted(valid))}")
    if "dropout" in options:
        _check_dropout(name, options["dropout"])
    for key, value in options.items():
        if key not in _OPTION_RULES:
            continue
        kind, allowed = _OPTION_RULES[key]
        if kind == "int":
            low, high = allowed
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise ValueError(f"create({name!r}): option {key} must be an int in [{low}, {high}], "
                                 f"got {value!r}")
        elif not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
            raise ValueError(f"create({name!r}): option {key} must be one of "
                             f"{', '.join(map(repr, allowed))}; got {value!r}")


def _check_dropout(name: str, p) -> None:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
        raise ValueError(f"create({name!r}): option dropout must be a number in [0, 1), got {p!r}")


def _build(name, spec, num_classes, in_channels, se, placement, opts) -> ResNet:
    if spec["family"] == "exemplar":
        return spec["builder"](name, num_classes=num_classes, in_channels=in_channels, se=se,
                               cifar=spec["cifar"], **opts)
    if spec["family"] == "cifar":
        return cifar_resnet(name, spec["n"], num_classes=num_classes, in_channels=in_channels, se=se,
                            placement=placement, **opts)
    return imagenet_resnet(name, spec["kind"], spec["depth"], num_classes=num_classes, in_channels=in_channels,
                           se=se, placement=placement, **opts)
