"""What :mod:`sescratch.interop.onnx_export` checks before it builds a graph: the target path,
and an opset that the installed ``onnx`` (and ``onnxruntime``) can read back."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

__all__ = ["MIN_OPSET", "check_target", "supported_opsets", "check_opset"]

MIN_OPSET = 17  # the operators' signatures written here (Unsqueeze's axes as an input, Shape's start/end)


def check_target(path: str | os.PathLike, *, what: str = "export_onnx: path") -> Path:
    """``path`` as a file that can be written: not a directory, and no file where a parent
    directory must be; else a :class:`ValueError` starting with ``what`` (the argument's name).
    Checked before the graph is built; the write itself may still fail (permissions, a full disk)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory; expected a file path such as {path / 'model.onnx'}")
    blocking = next((p for p in path.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ValueError(f"{what} {path}: {blocking} is a file, not a directory")
    return path


@functools.lru_cache(maxsize=None)
def supported_opsets() -> range:
    """The opsets that can be written and read back: from :data:`MIN_OPSET` to the newest the
    installed ``onnx`` knows (``onnx.defs.onnx_opset_version()``) and, when ``onnxruntime`` is
    installed, that it loads. ``onnx.checker`` accepts any larger number, and the file then loads
    nowhere; onnxruntime publishes no maximum, so a one-node graph is offered to it (a few ms)."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    try:
        import onnxruntime
    except ImportError:
        return range(MIN_OPSET, newest + 1)
    while newest > MIN_OPSET and not _runtime_loads(onnx, onnxruntime, newest):
        newest -= 1
    return range(MIN_OPSET, newest + 1)


def _runtime_loads(onnx, onnxruntime, opset: int) -> bool:
    h = onnx.helper
    info = [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in ("x", "y")]
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "probe", info[:1], info[1:])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    try:
        onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime's own Fail / InvalidGraph errors: it cannot take this opset
        return False
    return True


def check_opset(opset) -> int:
    """``opset`` as an int in :func:`supported_opsets`, else a :class:`ValueError` naming the range."""
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"to_onnx: opset must be an integer, got {opset!r}")
    accepted = supported_opsets()
    if opset < MIN_OPSET:
        raise ValueError(f"to_onnx: opset must be >= {MIN_OPSET} ({accepted[0]} to {accepted[-1]} are accepted), "
                         f"got {opset}")
    if opset not in accepted:
        raise ValueError(f"to_onnx: opset must be between {accepted[0]} and {accepted[-1]} (the newest the "
                         f"installed onnx and onnxruntime read), got {opset}")
    return int(opset)
