"""Model summary: per-layer output shapes, parameters and multiply-accumulates (MACs).

Computed by shape propagation (:meth:`sescratch.nn.Module.trace`), so summarising SE-ResNet-50
at 224x224 is instant. MACs are for one example. Counted:

- convolution: ``C_out * OH * OW * (C_in / groups) * KH * KW``; linear: ``in * out``;
- the SE block's parts separately: squeeze ``C*H*W`` additions, the two FCs ``2 C^2 / r``, the
  scale ``C*H*W`` multiplications;
- batch norm, ReLU, max pooling and the residual addition as 0 (BN folds into the conv at
  inference; the rest are comparisons or additions).

The paper (§4) quotes 3.86 GFLOPs for ResNet-50 and 3.87 for SE-ResNet-50 (+0.26%); its "FLOPs"
are these conv/FC MACs. The summary shows the backbone's conv/FC MACs and, beside them, what the
SE blocks add, so the relative cost is visible.

Grouped and depthwise convolutions count ``C_in / groups`` inputs per output (a depthwise 3x3 on
C channels costs ``9 C H W``); channel shuffles and concatenations cost 0 (they move data).

Command line: ``sescratch summary se_resnet50 --input 3,224,224 [--json]``. ``--json`` prints
:meth:`Summary.to_dict`: ``{"parameters", "macs", "se_parameters", "se_macs", "layers": [...]}``
with ``macs`` the conv/FC MACs of the whole network *including* its SE blocks, ``se_macs`` the
part of them its SE blocks add (so ``macs - se_macs`` is the network without SE).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field

from sescratch.errors import UsageError
from sescratch.nn.module import Record

__all__ = ["Summary", "summary", "add_commands"]


@dataclass
class Summary:
    """Rows (one :class:`~sescratch.nn.Record` per layer) and their totals."""

    model_name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    records: list[Record] = field(default_factory=list)
    params: int = 0

    def macs(self, group: str | None = None, part: str | None = None) -> int:
        """Sum of MACs over the rows of a group (``"backbone"``/``"se"``) and/or part."""
        return sum(r.macs for r in self.records
                   if (group is None or r.group == group) and (part is None or r.part == part))

    @property
    def backbone_macs(self) -> int:
        """Conv and FC multiply-accumulates of the network without its SE blocks."""
        return self.macs("backbone", "conv") + self.macs("backbone", "fc")

    @property
    def se_macs(self) -> int:
        return self.macs("se")

    @property
    def se_params(self) -> int:
        return sum(r.params for r in self.records if r.group == "se")

    def table(self) -> str:
        rows = [("layer", "type", "output shape", "params", "MACs")]
        for r in self.records:
            rows.append((r.name, r.kind, "x".join(str(s) for s in r.output_shape), f"{r.params:,}", f"{r.macs:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*rows[0]), "-" * (sum(widths) + 8)]
        lines += [fmt.format(*row) for row in rows[1:]]
        lines.append("-" * (sum(widths) + 8))
        return "\n".join(lines + self._totals())

    def _totals(self) -> list[str]:
        base = self.backbone_macs
        se = self.se_macs
        pct = 100.0 * se / base if base else 0.0
        lines = [
            f"model {self.model_name}, input {'x'.join(map(str, self.input_shape))}, "
            f"output {'x'.join(map(str, self.output_shape))}",
            f"parameters: {self.params:,} ({self.params / 1e6:.2f} M), of which SE blocks {self.se_params:,}",
            f"conv/FC MACs without SE: {base:,} ({base / 1e9:.3f} G; BN, ReLU, pooling, additions not counted)",
        ]
        if se:
            lines += [
                f"SE blocks add: squeeze {self.macs('se', 'squeeze'):,} + FCs {self.macs('se', 'fc'):,} "
                f"+ scale {self.macs('se', 'scale'):,} = {se:,} MACs (+{pct:.2f}%)",
                f"total with SE: {base + se:,} ({(base + se) / 1e9:.3f} G); "
                f"FCs alone add +{100.0 * self.macs('se', 'fc') / base:.2f}%",
            ]
        return lines

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict:
        """The summary as JSON-ready data (what ``sescratch summary --json`` prints).

        ``parameters`` and ``macs`` are the whole model's (SE blocks included); ``se_parameters``
        and ``se_macs`` are the SE blocks' share; ``backbone_macs = macs - se_macs``; one entry
        per layer in ``layers`` (``name``, ``kind``, ``output_shape``, ``params``, ``macs``,
        ``group``: ``backbone``/``se``, ``part``).
        """
        return {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "parameters": int(self.params),
            "macs": int(self.backbone_macs + self.se_macs),
            "backbone_macs": int(self.backbone_macs),
            "se_parameters": int(self.se_params),
            "se_macs": int(self.se_macs),
            "layers": [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.records],
        }


def summary(model, input_shape, *, print_table: bool = False) -> Summary:
    """Summarise ``model`` for one input of shape ``(C, H, W)`` (a leading batch size is ignored).

    Returns a :class:`Summary`; ``str(result)`` is the table. ``ValueError`` if the input does not fit.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3:
        raise ValueError(f"summary: input_shape must be (C, H, W), got {tuple(input_shape)}")
    name = getattr(model, "model_name", type(model).__name__)
    if hasattr(model, "output_shape"):
        model.output_shape((1,) + shape)  # raises ValueError naming the model and the layer
    records: list[Record] = []
    out = model.trace(shape, "", records)
    result = Summary(name, shape, tuple(out), records, model.num_parameters())
    if print_table:
        print(result.table())
    return result


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(p) for p in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"--input must be C,H,W with three positive integers, got {text!r}")
    return shape


def _run(args) -> int:
    from sescratch import models

    if args.name not in models.list_models():
        raise UsageError(f"unknown model {args.name!r}; valid models: {', '.join(models.list_models())}")
    shape = _parse_shape(args.input)
    model = models.create(args.name, num_classes=args.num_classes, in_channels=shape[0], init=False)
    result = summary(model, shape)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return 0


def add_commands(subparsers) -> None:
    """Add ``sescratch summary NAME --input C,H,W [--num-classes K]``."""
    parser = subparsers.add_parser(
        "summary",
        help="per-layer output shapes, parameters and MACs of a model",
        description="Print a model's layers with output shape, parameters and multiply-accumulates, "
                    "and what its SE blocks add.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("name", help="model name (see sescratch.models.list_models())")
    parser.add_argument("--input", required=True, metavar="C,H,W", help="input shape, e.g. 3,224,224")
    parser.add_argument("--num-classes", type=int, default=1000, help="classifier outputs")
    parser.add_argument("--json", action="store_true",
                        help='print {"parameters", "macs", "se_parameters", "se_macs", "layers"} as JSON')
    parser.set_defaults(func=_run)

