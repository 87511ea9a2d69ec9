"""Weight files in, weight files out: ``.npz``, ``.safetensors`` and PyTorch ``.pth`` / ``.pt``.

:func:`read_weights` returns a flat ``{name: numpy array}`` whatever the format:

* ``.npz`` -- ours (:func:`save_weights`, or a training checkpoint ``last.npz`` / ``best.npz``,
  whose ``model/`` entries are taken); read with ``allow_pickle=False``;
* ``.safetensors`` -- through the ``safetensors.numpy`` API: no PyTorch needed;
* ``.pth`` / ``.pt`` / ``.bin`` -- only with PyTorch installed, and always with
  ``torch.load(..., weights_only=True)``: nothing but tensors and plain containers is ever
  unpickled. A ``{"state_dict": ...}`` (or ``"model"``, ``"model_state_dict"``) wrapper and
  the ``module.`` prefix of ``DataParallel`` are taken off.

Half-precision tensors (float16, bfloat16) become float32; everything else keeps its dtype (the
model casts on load).
A file that exists but holds no named arrays raises :class:`WeightsError` saying so.

:func:`save_weights` of a model also records what the tensors cannot tell: the model's name and
its :data:`ARCHITECTURE_OPTIONS` (``stride_on``, ``stem_pool``, ``gate``, ...: options that change
no tensor's shape, or not always), read off the built model by :func:`model_architecture`, as
JSON ``{"format": 1, "model": ..., "options": {...}}``: in ``.npz`` the string entry
``__sescratch__``, in ``.safetensors`` the header's ``__metadata__["sescratch"]`` (the format's
string-to-string metadata, which ``safetensors.torch.load_file`` leaves out of the tensors).
:func:`read_saved_options` reads it back and ``create(name, weights=PATH)`` builds that
architecture. Files without it (other tools', or ours from before it was recorded) load as
they always did. ``.pth`` is not written at all: a ``torch.save`` state dict has no place for a
record that ``load_state_dict`` would skip (a string entry is an unexpected key to PyTorch, a
``{"state_dict": ...}`` wrapper breaks ``model.load_state_dict(torch.load(f))``), and writing it
would make PyTorch a dependency of saving; PyTorch users read the ``.safetensors`` file.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from sescratch.errors import DataError
from sescratch.interop.architecture import ARCHITECTURE_OPTIONS, model_architecture
from sescratch.io import atomic_open

__all__ = ["WeightsError", "read_weights", "read_run_options", "read_run", "read_saved_options", "save_weights",
           "model_architecture", "ARCHITECTURE_OPTIONS", "WEIGHT_SUFFIXES"]

WEIGHT_SUFFIXES = (".npz", ".safetensors", ".pth", ".pt", ".bin")
_WRAPPERS = ("state_dict", "model_state_dict", "model", "module")
_RECORD = "__sescratch__"  # the .npz entry; in .safetensors the __metadata__ key is "sescratch"
_RECORD_FORMAT = 1


class WeightsError(DataError):
    """A weights file is missing, unreadable, not a weights file, or does not fit the model."""


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{name: array}`` from a weights file (format chosen by the suffix, see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights {path}: file not found")
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise WeightsError(f"weights {path}: unknown format {suffix or '(no suffix)'!r}; "
                           f"expected one of {', '.join(WEIGHT_SUFFIXES)}")
    reader = {".npz": _read_npz, ".safetensors": _read_safetensors}.get(suffix, _read_torch)
    state = reader(path)
    if not state:
        raise WeightsError(f"weights {path}: not a weights file (no named arrays in it)")
    return {k: _plain(v) for k, v in state.items()}


def read_run_options(path: str | os.PathLike) -> dict | None:
    """The ``create`` options a training checkpoint's model was built with (its configuration's
    ``model_options``, with ``reduction`` for SE models); None for any other weights file.

    Options such as ``stride_on``, ``stem_pool``, ``placement`` or ``gate`` change no tensor's
    shape, so the weights alone cannot tell them: a checkpoint used as weights must rebuild its
    run's network, not the defaults. Only the options the run set are here; those it left at
    their defaults are the model's (:func:`sescratch.interop.loading.prepare_weights` compares
    those too)."""
    run = read_run(path)
    return None if run is None else run[1]


def read_run(path: str | os.PathLike) -> tuple[str, dict] | None:
    """``(model name, options)`` of a training checkpoint's run (see :func:`read_run_options`);
    None for any other weights file."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not (_is_training_checkpoint(archive.files) and "config" in archive.files):
                return None
            text = str(archive["config"][()])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"weights {path}: not a readable .npz file ({exc})") from None
    from sescratch.errors import UsageError
    from sescratch.train.config import TrainConfig, model_options

    try:
        config = TrainConfig.from_dict(json.loads(text))
        return config.model, model_options(config)
    except (ValueError, TypeError, UsageError) as exc:  # json's JSONDecodeError is a ValueError
        raise WeightsError(f"weights {path}: a training checkpoint whose configuration "
                           f"cannot be read ({exc})") from None


def read_saved_options(path: str | os.PathLike) -> tuple[str, dict] | None:
    """``(model name, architecture options)`` that :func:`save_weights` recorded in ``path``; None
    for a file without that record (another tool's, ours from before it was recorded, ``.pth``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        text = _npz_record(path)
    elif suffix == ".safetensors":
        metadata = _safetensors_header(path).get("__metadata__")
        text = metadata.get("sescratch") if isinstance(metadata, dict) else None
    else:
        return None
    if text is None:
        return None
    try:
        record = json.loads(text)
        model, options = record["model"], record["options"]
        if record.get("format") != _RECORD_FORMAT or not isinstance(model, str) or not isinstance(options, dict):
            raise TypeError(f"expected format {_RECORD_FORMAT}, a model name and a dict of options")
    except (ValueError, TypeError, KeyError) as exc:
        raise WeightsError(f"weights {path}: its sescratch record (architecture options) cannot be read "
                           f"({type(exc).__name__}: {exc}); got {str(text)[:120]!r}") from None
    return model, options


def save_weights(state, path: str | os.PathLike) -> Path:
    """Write a ``state_dict`` (or a model's) to ``.npz`` or ``.safetensors``, atomically.

    Given a model of :func:`sescratch.models.create`, the file also records its name and
    :func:`model_architecture` (see the module docstring): ``create(name, weights=path)`` then
    rebuilds the same network, not the defaults. A bare ``state_dict`` records nothing.
    """
    record = _record(state) if hasattr(state, "state_dict") else None
    if hasattr(state, "state_dict"):
        state = state.state_dict()
    path = Path(path)
    arrays = {k: np.array(v, order="C") for k, v in state.items()}  # 0-d stays 0-d
    if _RECORD in arrays:
        raise WeightsError(f"save_weights {path}: {_RECORD!r} is the name of sescratch's record, not a tensor's")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        extra = {} if record is None else {_RECORD: np.array(record)}  # a str array: no pickle needed
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays, **extra)
    elif suffix == ".safetensors":
        from safetensors.numpy import save

        blob = save(arrays, metadata=None if record is None else {"sescratch": record})
        with atomic_open(path, "wb") as f:
            f.write(blob)
    else:
        raise WeightsError(f"save_weights {path}: writes .npz or .safetensors, got {suffix or '(no suffix)'!r} "
                           "(for PyTorch write .safetensors: safetensors.torch.load_file reads it)")
    return path


def _record(model) -> str | None:
    """The JSON record :func:`save_weights` writes for ``model`` (None for a model ``create`` does not know)."""
    from sescratch import models

    name = getattr(model, "model_name", None)
    if name not in models.list_models():
        return None
    return json.dumps({"format": _RECORD_FORMAT, "model": name, "options": model_architecture(model)},
                      sort_keys=True)


def _npz_record(path: Path) -> str | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return str(archive[_RECORD][()]) if _RECORD in archive.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"weights {path}: not a readable .npz file ({exc})") from None


def _safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file (its first 8 bytes give the header's length)."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        return header
    except (OSError, ValueError) as exc:
        raise WeightsError(f"weights {path}: not a readable .safetensors file ({exc})") from None


def _is_training_checkpoint(names) -> bool:
    """An .npz of :func:`sescratch.train.save_checkpoint`: ``meta`` beside ``model/`` entries."""
    return "meta" in names and any(n.startswith("model/") for n in names)


def _read_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = archive.files
            if _is_training_checkpoint(names):
                return {n[len("model/"):]: archive[n] for n in names if n.startswith("model/")}
            return {n: archive[n] for n in names if n != _RECORD}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"weights {path}: not a readable .npz file ({exc})") from None


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise WeightsError(f"weights {path}: reading .safetensors needs the 'safetensors' package "
                           "(pip install safetensors)") from None
    try:
        return load_file(str(path))
    except TypeError as exc:  # NumPy has no bfloat16: read those tensors ourselves
        if "bfloat16" not in str(exc):
            raise WeightsError(f"weights {path}: not a readable .safetensors file ({exc})") from None
        return _read_safetensors_bfloat16(path)
    except Exception as exc:  # safetensors raises its own SafetensorError for any malformed file
        raise WeightsError(f"weights {path}: not a readable .safetensors file ({exc})") from None


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
                       "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _read_safetensors_bfloat16(path: Path) -> dict:
    """A .safetensors file holding bfloat16 tensors, which NumPy cannot represent: its layout
    (an 8-byte little-endian header size, a JSON header of dtype, shape and byte offsets, then
    the data) read directly, each bfloat16 widened to the float32 with the same upper 16 bits."""
    data = path.read_bytes()
    try:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + size])
        body = memoryview(data)[8 + size:]
        state = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            raw = body[start:end]
            if entry["dtype"] == "BF16":
                bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                value = bits.view(np.float32)
            else:
                dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]]).newbyteorder("<")
                value = np.frombuffer(raw, dtype=dtype)
            state[name] = value.reshape(entry["shape"]).copy()
        return state
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"weights {path}: not a readable .safetensors file ({exc})") from None


def _read_torch(path: Path) -> dict:
    try:
        import torch
    except ImportError:
        raise WeightsError(f"weights {path}: reading PyTorch files needs PyTorch (pip install torch); "
                           ".npz and .safetensors files need nothing more") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything beyond tensors; RuntimeError for non-zip data
        raise WeightsError(f"weights {path}: not a PyTorch weights file, or one holding more than tensors "
                           f"(read with weights_only=True; {type(exc).__name__}: {_first_line(exc)})") from None
    return _state_from_object(obj, path, torch)


def _state_from_object(obj, path, torch) -> dict:
    for _ in range(3):  # {"state_dict": {...}} and the like, possibly nested
        if isinstance(obj, dict) and not _all_tensors(obj, torch):
            inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not obj or not _all_tensors(obj, torch):
        kind = type(obj).__name__
        raise WeightsError(f"weights {path}: not a weights file: holds a {kind}, not a state_dict of tensors"
                           + (f" (keys: {', '.join(map(str, list(obj)[:8]))})" if isinstance(obj, dict) else ""))
    state = {}
    for name, tensor in obj.items():
        if tensor.dtype in (torch.float16, torch.bfloat16):
            tensor = tensor.float()
        state[name[len("module."):] if name.startswith("module.") else name] = tensor.detach().cpu().numpy()
    return state


def _all_tensors(obj: dict, torch) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _plain(value) -> np.ndarray:
    value = np.asarray(value)
    half = value.dtype == np.float16 or value.dtype.name == "bfloat16"  # ml_dtypes' (onnx, jax bring it)
    return value.astype(np.float32) if half else value


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""
