"""The paper's comparisons as rows: one model configuration each, with the paper's numbers.

:data:`EXPERIMENTS` names each comparison and the function that lists its :class:`Row` objects;
:func:`experiment_rows` checks the choices (depths, ratios, tables) and returns them.
:mod:`sescratch.analysis.experiments` trains every row under one budget.

============ ================================================================ ============
name         rows                                                             paper
============ ================================================================ ============
se-vs-plain  ResNet-d and SE-ResNet-d for each depth d                        Table 2
reduction    no SE, r = 2, 4, 8, 16, 32                                       Table 10
variants     squeeze avg/max; gate sigmoid/tanh/ReLU; placement standard/     Tables 11,
             PRE/POST/identity; SE after the 3x3 conv                         12, 14, 15
============ ================================================================ ============
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from sescratch.errors import UsageError

__all__ = ["Row", "DEFAULT_OPTIONS", "VARIANT_TABLES", "EXPERIMENTS", "experiment_rows", "se_widths",
           "same_networks"]


@dataclass(frozen=True)
class Row:
    """One configuration of a table: ``model`` with ``options`` (placement, squeeze, gate ...)."""

    table: str
    label: str
    model: str
    options: dict = field(default_factory=dict)
    reduction: int = 16
    paper: dict = field(default_factory=dict)  # the paper's ImageNet numbers for this row


# The paper's ImageNet top-1 error (%) and parameters for the rows (SE-ResNet-50, paper §6 and §7).
_SE50 = {"top1": 22.28, "params": "28.1M"}
VARIANT_TABLES = {
    "squeeze": [("avg", {"squeeze": "avg"}, _SE50), ("max", {"squeeze": "max"}, {"top1": 22.57})],
    "gate": [("sigmoid", {"gate": "sigmoid"}, _SE50), ("tanh", {"gate": "tanh"}, {"top1": 23.00}),
             ("ReLU", {"gate": "relu"}, {"top1": 23.47})],
    "placement": [("standard", {"placement": "standard"}, _SE50),
                  ("SE-PRE", {"placement": "pre"}, {"top1": 22.23}),
                  ("SE-POST", {"placement": "post"}, {"top1": 22.78}),
                  ("SE-Identity", {"placement": "identity"}, {"top1": 22.20})],
    "after_3x3": [("standard", {"placement": "standard"}, _SE50),
                  ("after the 3x3 conv", {"placement": "after_3x3"}, {"top1": 22.48, "params": "25.8M"})],
}
_REDUCTION_PAPER = {2: (22.29, "45.7M"), 4: (22.25, "35.7M"), 8: (22.26, "30.7M"),
                    16: (22.28, "28.1M"), 32: (22.72, "26.9M")}
_SE_VS_PLAIN_PAPER = {"plain": {"top1": 24.80, "model": "ResNet-50"},
                      "se": {"top1": 23.29, "model": "SE-ResNet-50"}}
DEFAULT_OPTIONS = {"placement": "standard", "squeeze": "avg", "gate": "sigmoid"}


def _se_vs_plain(depths=(20, 56), **_) -> list[Row]:
    rows = []
    for d in depths:
        rows.append(Row(f"depth {d}", f"ResNet-{d}", f"resnet{d}", paper=_SE_VS_PLAIN_PAPER["plain"]))
        rows.append(Row(f"depth {d}", f"SE-ResNet-{d}", f"se_resnet{d}", dict(DEFAULT_OPTIONS),
                        paper=_SE_VS_PLAIN_PAPER["se"]))
    return rows


def _reduction(depth=20, ratios=(2, 4, 8, 16, 32), **_) -> list[Row]:
    rows = [Row("reduction", "no SE", f"resnet{depth}", paper={"top1": 23.30, "params": "25.6M"})]
    for r in ratios:
        top1, params = _REDUCTION_PAPER.get(r, (None, None))
        paper = {"top1": top1, "params": params} if top1 is not None else {}
        rows.append(Row("reduction", f"r = {r}", f"se_resnet{depth}", dict(DEFAULT_OPTIONS), r, paper))
    return rows


def _variants(depth=20, tables=tuple(VARIANT_TABLES), **_) -> list[Row]:
    rows = []
    for table in tables:
        if table not in VARIANT_TABLES:
            raise UsageError(f"unknown variant table {table!r}; valid: {', '.join(VARIANT_TABLES)}")
        for label, change, paper in VARIANT_TABLES[table]:
            rows.append(Row(table, label, f"se_resnet{depth}", {**DEFAULT_OPTIONS, **change}, paper=paper))
    return rows


EXPERIMENTS: dict[str, tuple[str, Callable[..., list[Row]]]] = {
    "se-vs-plain": ("ResNet vs SE-ResNet under one recipe (paper Table 2)", _se_vs_plain),
    "reduction": ("Reduction ratio r (paper Table 10)", _reduction),
    "variants": ("Squeeze, gate and placement variants (paper Tables 11, 12, 14, 15)", _variants),
}


def experiment_rows(name: str, **choices) -> list[Row]:
    """The rows of experiment ``name``; ``choices``: ``depths``, ``depth``, ``ratios``, ``tables``."""
    if name not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    from sescratch.models import CIFAR_DEPTHS

    given = [("depths", d) for d in choices.get("depths") or ()]  # se-vs-plain
    given += [("depth", choices["depth"])] if choices.get("depth") is not None else []  # the others
    for key, d in given:
        if d not in CIFAR_DEPTHS:  # resnet18/50 exist, but as ImageNet models without a width
            raise UsageError(f"experiment {name}: --{key} {d} is not a CIFAR ResNet depth; "
                             f"valid: {', '.join(map(str, CIFAR_DEPTHS))}")
    return EXPERIMENTS[name][1](**choices)


def se_widths(row: Row, width: int) -> tuple[int, ...]:
    """The hidden units ``C / r`` of every SE block of ``row``'s model at ``width`` (empty
    without SE): what the reduction ratio changes. Small widths round several ratios to the same
    units (``max(C // r, 1)``): at width 4, r = 16 and r = 32 both give 1, 1, 2 per stage."""
    from sescratch.models import create
    from sescratch.nn.se import SEBlock

    options = {"width": width, **row.options}
    if row.model.startswith("se_"):
        options["reduction"] = row.reduction
    model = create(row.model, num_classes=10, **options)
    return tuple(m.hidden for m in model.modules() if isinstance(m, SEBlock))


def same_networks(rows: list[Row], width: int) -> list[list[Row]]:
    """Groups of two or more rows that build the same network at ``width``: the same model and
    options whose reduction ratios round to the same SE widths. Their rows train one network
    under different labels, so their numbers can only differ by the seeds."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        if row.model.startswith("se_"):
            key = (row.model, tuple(sorted(row.options.items())), se_widths(row, width))
            groups.setdefault(key, []).append(row)
    return [g for g in groups.values() if len({r.reduction for r in g}) > 1]
