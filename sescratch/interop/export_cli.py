"""``sescratch export``: a model (and its weights) as an ONNX graph, every argument checked first.

See :mod:`sescratch.interop.cli` for the command's arguments and :mod:`sescratch.interop.onnx_export`
for the graph.
"""
from __future__ import annotations

import sys
from pathlib import Path

from sescratch.errors import UsageError

__all__ = ["run_export"]


def run_export(args) -> int:
    """``sescratch export``: every argument checked (opset, --out, --num-classes) before the model
    is built, so a mistake costs no export."""
    from sescratch.interop.cli import check_num_classes, model_from_args, run_pipeline
    from sescratch.interop.onnx_export import export_onnx

    opset = _check_opset(args.opset)
    out = _check_out_file(args.out)
    check_num_classes(args)
    run = run_pipeline(args, args.name)
    model, report = model_from_args(args, args.name)
    if report is None:
        print("note: no --weights: exporting a fresh initialisation", file=sys.stderr)
    else:
        print(report, file=sys.stderr)
    shape = args.input or _default_input(model, run)
    if len(shape) != 3:
        raise UsageError(f"--input: expected C,H,W, got {','.join(map(str, shape))}")
    try:
        model.output_shape((1,) + tuple(shape))
    except ValueError as exc:
        raise UsageError(f"--input {','.join(map(str, shape))}: {exc}") from None
    path = export_onnx(model, out, shape, opset=opset)
    print(f"wrote {path} ({args.name}, input (N, {', '.join(map(str, shape))}), opset {opset})")
    return 0


def _check_opset(opset: int) -> int:
    """``--opset`` within what the installed onnx (and onnxruntime) read, else a :class:`UsageError`."""
    try:
        from sescratch.interop.onnx_export import check_opset
        return check_opset(opset)
    except ImportError:
        raise UsageError("export needs the 'onnx' package: pip install 'sescratch[onnx]'") from None
    except ValueError as exc:
        raise UsageError(f"--opset {opset}: {str(exc).removeprefix('to_onnx: ')}") from None


def _check_out_file(out) -> Path:
    """``--out`` as a writable file path, checked before any work: not a directory, no file where
    a directory must be, and its directory created and proved writable
    (:func:`sescratch.train.rundir.check_writable`, as train and eval check theirs)."""
    from sescratch.interop.onnx_export import check_target
    from sescratch.train.rundir import check_writable

    try:
        path = check_target(out, what="--out")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check_writable(path.parent)
    return path


def _default_input(model, run=None) -> tuple[int, int, int]:
    """The input a training run's images reach the network with (``run``: its
    :class:`~sescratch.interop.run_input.RunPreprocessing`, padding included), else the model's fixed
    input size if it has one, else the one it is designed for: 32x32 for CIFAR-scale networks,
    299x299 for Inception-ResNet-v2, 224x224 for the other ImageNet ones
    (:func:`sescratch.models.native_input_size`)."""
    from sescratch import models

    if run is not None:
        return run.input_shape
    size = getattr(model, "input_size", None) or models.native_input_size(model.model_name)
    return (model.in_channels, *size)
