"""The residual blocks with the SE block in another place: one explicit class per placement.

The paper's block is :class:`~sescratch.nn.blocks.BasicBlock` / :class:`~sescratch.nn.blocks.Bottleneck`
(SE on the branch output, ``placement="standard"``). The ablation's placements (TPAMI §6.5,
Tables 14 and 15) are the mixins of :mod:`sescratch.nn.se_placements` put in front of a block
class; each combination below is written out once, so ``type(block)`` says what it computes.

=========== ============================= ================================ ==========================
placement   BasicBlock                    Bottleneck                       ResNeXtBottleneck
=========== ============================= ================================ ==========================
pre         :class:`BasicBlockSEPre`      :class:`BottleneckSEPre`         :class:`ResNeXtBottleneckSEPre`
post        :class:`BasicBlockSEPost`     :class:`BottleneckSEPost`        :class:`ResNeXtBottleneckSEPost`
identity    :class:`BasicBlockSEIdentity` :class:`BottleneckSEIdentity`    :class:`ResNeXtBottleneckSEIdentity`
after_3x3   :class:`BasicBlockSEAfter3x3` :class:`BottleneckSEAfter3x3`    :class:`ResNeXtBottleneckSEAfter3x3`
=========== ============================= ================================ ==========================

:func:`residual_block` picks the class for a placement; the models build every block with it.
"""
from __future__ import annotations

from sescratch.nn import se_placements as sp
from sescratch.nn.blocks import PLACEMENTS, BasicBlock, Bottleneck, ResNeXtBottleneck

__all__ = [
    "VARIANTS",
    "residual_block",
    "BasicBlockSEPre",
    "BasicBlockSEPost",
    "BasicBlockSEIdentity",
    "BasicBlockSEAfter3x3",
    "BottleneckSEPre",
    "BottleneckSEPost",
    "BottleneckSEIdentity",
    "BottleneckSEAfter3x3",
    "ResNeXtBottleneckSEPre",
    "ResNeXtBottleneckSEPost",
    "ResNeXtBottleneckSEIdentity",
    "ResNeXtBottleneckSEAfter3x3",
]


class BasicBlockSEPre(sp.SEPre, BasicBlock):
    """BasicBlock, SE-PRE: ``ReLU(F(SE(x)) + shortcut(x))``."""


class BasicBlockSEPost(sp.SEPost, BasicBlock):
    """BasicBlock, SE-POST: ``SE(ReLU(F(x) + shortcut(x)))``."""


class BasicBlockSEIdentity(sp.SEIdentity, BasicBlock):
    """BasicBlock, SE-Identity: ``ReLU(F(x) + SE(shortcut(x)))``."""


class BasicBlockSEAfter3x3(sp.BasicSEAfter3x3, BasicBlock):
    """BasicBlock with SE on the first 3x3 conv's output, inside ``F``."""


class BottleneckSEPre(sp.SEPre, Bottleneck):
    """Bottleneck, SE-PRE: ``ReLU(F(SE(x)) + shortcut(x))``."""


class BottleneckSEPost(sp.SEPost, Bottleneck):
    """Bottleneck, SE-POST: ``SE(ReLU(F(x) + shortcut(x)))``."""


class BottleneckSEIdentity(sp.SEIdentity, Bottleneck):
    """Bottleneck, SE-Identity: ``ReLU(F(x) + SE(shortcut(x)))``."""


class BottleneckSEAfter3x3(sp.BottleneckSEAfter3x3, Bottleneck):
    """Bottleneck with SE on the 3x3 conv's output, inside ``F`` (Table 15)."""


class ResNeXtBottleneckSEPre(sp.SEPre, ResNeXtBottleneck):
    """ResNeXtBottleneck, SE-PRE: ``ReLU(F(SE(x)) + shortcut(x))``."""


class ResNeXtBottleneckSEPost(sp.SEPost, ResNeXtBottleneck):
    """ResNeXtBottleneck, SE-POST: ``SE(ReLU(F(x) + shortcut(x)))``."""


class ResNeXtBottleneckSEIdentity(sp.SEIdentity, ResNeXtBottleneck):
    """ResNeXtBottleneck, SE-Identity: ``ReLU(F(x) + SE(shortcut(x)))``."""


class ResNeXtBottleneckSEAfter3x3(sp.BottleneckSEAfter3x3, ResNeXtBottleneck):
    """ResNeXtBottleneck with SE on the grouped 3x3 conv's output, inside ``F``."""


VARIANTS: dict[tuple[type, str], type] = {
    (BasicBlock, "pre"): BasicBlockSEPre,
    (BasicBlock, "post"): BasicBlockSEPost,
    (BasicBlock, "identity"): BasicBlockSEIdentity,
    (BasicBlock, "after_3x3"): BasicBlockSEAfter3x3,
    (Bottleneck, "pre"): BottleneckSEPre,
    (Bottleneck, "post"): BottleneckSEPost,
    (Bottleneck, "identity"): BottleneckSEIdentity,
    (Bottleneck, "after_3x3"): BottleneckSEAfter3x3,
    (ResNeXtBottleneck, "pre"): ResNeXtBottleneckSEPre,
    (ResNeXtBottleneck, "post"): ResNeXtBottleneckSEPost,
    (ResNeXtBottleneck, "identity"): ResNeXtBottleneckSEIdentity,
    (ResNeXtBottleneck, "after_3x3"): ResNeXtBottleneckSEAfter3x3,
}


def residual_block(block_class, *args, se=None, placement="standard", **kwargs):
    """Build ``block_class(*args, se=se, **kwargs)`` with its SE block at ``placement``.

    ``placement="standard"`` (the paper) or no SE at all builds ``block_class`` itself; another
    placement builds its explicit variant class (the table above).

    Raises
    ------
    ValueError
        ``placement`` is not one of :data:`~sescratch.nn.blocks.PLACEMENTS`, or ``block_class``
        has no variant for it.
    """
    name = getattr(block_class, "__name__", repr(block_class))
    if placement not in PLACEMENTS:
        raise ValueError(f"{name}: placement must be one of {PLACEMENTS}, got {placement!r}")
    if se is None or placement == "standard":
        return block_class(*args, se=se, placement=placement, **kwargs)
    variant = VARIANTS.get((block_class, placement))
    if variant is None:
        known = sorted({cls.__name__ for cls, _ in VARIANTS})
        raise ValueError(f"residual_block: no {placement!r} variant of {name}; blocks with variants: {known}")
    return variant(*args, se=se, placement=placement, **kwargs)
