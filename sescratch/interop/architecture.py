"""What a built model's modules say of the ``create`` options that made it.

:func:`model_architecture` reads the :data:`ARCHITECTURE_OPTIONS` back off a model, for
:func:`sescratch.interop.weights.save_weights` to record beside the tensors.
"""
from __future__ import annotations

__all__ = ["ARCHITECTURE_OPTIONS", "model_architecture"]

# The create options a file's tensors cannot (always) tell, which save_weights records: those that
# change no shape (placement, squeeze, gate, stride_on, stem_pool) and those whose shapes may
# coincide (reduction: 16 // 12 == 16 // 16; se_divisor; shortcut "A" vs "B" is told by missing
# keys, but recorded it simply loads). Not dropout, init or seed: the same network in eval mode.
ARCHITECTURE_OPTIONS = ("reduction", "placement", "squeeze", "gate", "shortcut", "stride_on", "stem_pool",
                        "se_divisor")


def model_architecture(model) -> dict:
    """The :data:`ARCHITECTURE_OPTIONS` of a built model, read off its modules: SE blocks
    (``reduction``, ``squeeze``, ``gate``, ``se_divisor``), residual blocks (``placement``,
    ``shortcut``, ``stride_on``) and the stem's max pool (``stem_pool``).

    Only the options its model (``model.model_name``) accepts; ``{}`` for a model that
    :func:`sescratch.models.create` does not know. An option whose modules disagree (a model changed
    by hand, which ``create`` cannot build) is left out rather than recorded wrongly.
    """
    from sescratch import models

    name = getattr(model, "model_name", None)
    if name not in models.list_models():
        return {}
    accepted, values = models.default_options(name), _option_values(model)
    found = {}
    for option in ARCHITECTURE_OPTIONS:
        distinct = set(values[option])
        if option in accepted and len(distinct) == 1 and _UNKNOWN not in distinct:
            (found[option],) = distinct
    return found


_UNKNOWN = object()  # an SE width rule no divisor reproduces


def _option_values(model) -> dict[str, list]:
    """Every value each architecture option takes in ``model``'s modules."""
    from sescratch.nn.blocks import Bottleneck, ResidualBlock
    from sescratch.nn.layers import MaxPool2d
    from sescratch.nn.se import SEBlock
    from sescratch.nn.shortcuts import ZeroPadShortcut

    modules = list(model.modules())
    se = [m for m in modules if isinstance(m, SEBlock)]
    blocks = [m for m in modules if isinstance(m, ResidualBlock)]
    pool = getattr(getattr(model, "layer0", None), "pool", None)
    stem = []
    if isinstance(pool, MaxPool2d):  # the release's (ceil_mode, no padding) or torchvision's (padding 1)
        stem = [{(True, (0, 0)): "ceil", (False, (1, 1)): "pad"}.get((pool.ceil_mode, pool.padding), _UNKNOWN)]
    return {
        "reduction": [int(m.reduction) for m in se],
        "squeeze": [m.squeeze for m in se],
        "gate": [m.gate for m in se],
        "se_divisor": [_se_divisor(se)] if se else [],
        "placement": [b.placement for b in blocks if b.placement is not None],
        "shortcut": ["A" if isinstance(b.downsample, ZeroPadShortcut) else "B"
                     for b in blocks if b.downsample is not None],
        "stride_on": [b.stride_on for b in blocks if isinstance(b, Bottleneck)],
        "stem_pool": stem,
    }


def _se_divisor(blocks):
    """The ``se_divisor`` that gives every SE block its width: None where ``C // r`` does (timm's 8
    gives the same widths there, and the same network), else the divisor that does (8 first)."""
    from sescratch.models.imagenet import se_width

    widths = [(int(b.channels), int(b.reduction), int(b.hidden)) for b in blocks]
    if all(h == max(c // r, 1) for c, r, h in widths):
        return None
    for divisor in (8, *range(1, max(h for _, _, h in widths) + 1)):
        if all(se_width(c, r, divisor) == h for c, r, h in widths):
            return divisor
    return _UNKNOWN
