"""Checkpoints: one ``.npz`` holding everything needed to continue a run bit for bit.

Layout (every entry a plain array, so :func:`load_checkpoint` reads with ``allow_pickle=False``):

* ``model/<name>`` — the model's ``state_dict()`` (parameters and BN buffers, PyTorch names);
* ``optim/<name>`` — the optimiser's ``state_dict()`` (momentum buffers, step count, lr);
* ``rng_state`` — the trainer's ``np.random.Generator`` ``bit_generator.state``, as a JSON string;
* ``config`` — the run's configuration, as a JSON string;
* ``meta`` — JSON string: epochs done, position inside an interrupted epoch, history, best result;
* ``epoch`` — the number of completed epochs (int64, also inside ``meta``).

Writes are atomic (:func:`sescratch.io.atomic_open`): a crash leaves either the old file or the
new one, never a half-written one. Reads trust nothing: :func:`load_checkpoint` checks every entry
(meta keys and types, the configuration, weight dtypes and finiteness) and names the file.

Test-only fault injection: with ``SESCRATCH_TEST_KILL_AFTER=NAME:K`` in the environment, the
process kills itself with SIGKILL right after its K-th write of a file called NAME (e.g.
``last.npz:2``). The reliability tests use it to crash between two writes; never set it otherwise.
"""
from __future__ import annotations

import json
import math
import os
import signal
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sescratch.errors import DataError
from sescratch.io import atomic_open

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "read_meta", "FORMAT_VERSION", "META_KEYS"]

FORMAT_VERSION = 1
# meta key -> the JSON types it may have
META_KEYS = {"epoch": (int,), "iteration": (int,), "partial": (dict, type(None)), "history": (list,),
             "best": (dict, type(None)), "elapsed_s": (int, float), "normalization": (dict,),
             "classes": (list,), "image_shape": (list,)}
KILL_AFTER_ENV = "SESCRATCH_TEST_KILL_AFTER"
_writes: dict[str, int] = {}


def after_write(path: Path) -> None:
    """The test-only fault-injection hook (see the module docstring); does nothing normally."""
    target = os.environ.get(KILL_AFTER_ENV)
    if not target:
        return
    name, _, count = target.rpartition(":")
    _writes[path.name] = _writes.get(path.name, 0) + 1
    if path.name == name and _writes[path.name] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Checkpoint:
    model_state: dict
    optim_state: dict
    rng_state: dict
    config: dict
    meta: dict

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])


def save_checkpoint(path: str | os.PathLike, *, model_state: dict, optim_state: dict,
                    rng_state: dict, config: dict, meta: dict) -> Path:
    """Write a checkpoint atomically (temporary file in the same directory + ``os.replace``)."""
    path = Path(path)
    meta = {**meta, "format_version": FORMAT_VERSION}
    arrays = {f"model/{k}": np.asarray(v) for k, v in model_state.items()}
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in optim_state.items()})
    arrays["rng_state"] = np.array(json.dumps(rng_state))
    arrays["config"] = np.array(json.dumps(config))
    arrays["meta"] = np.array(json.dumps(meta))
    arrays["epoch"] = np.array(int(meta["epoch"]), dtype=np.int64)
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    after_write(path)
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and check a checkpoint written by :func:`save_checkpoint` (never unpickles anything).

    Raises
    ------
    DataError
        Saying which file and why: missing, not an ``.npz``, truncated, lacking entries, meta keys
        of the wrong type, an invalid configuration, or weights that are not finite floats.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"checkpoint {path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            files = set(archive.files)
            missing = [k for k in ("rng_state", "config", "meta") if k not in files]
            if missing:
                raise DataError(f"checkpoint {path}: not a sescratch checkpoint (missing {missing})")
            model = {k[6:]: archive[k] for k in archive.files if k.startswith("model/")}
            optim = {k[6:]: archive[k] for k in archive.files if k.startswith("optim/")}
            texts = {k: str(archive[k][()]) for k in ("rng_state", "config", "meta")}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):  # never repeat NumPy's advice to load it with allow_pickle
            raise DataError(f"checkpoint {path}: corrupt or not an .npz file (not a zip archive; "
                            "sescratch never unpickles files)") from None
        raise DataError(f"checkpoint {path}: corrupt or not an .npz file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"checkpoint {path}: corrupt or not an .npz file ({exc})") from None
    try:
        parsed = {k: json.loads(v) for k, v in texts.items()}
    except json.JSONDecodeError as exc:
        raise DataError(f"checkpoint {path}: corrupt JSON entry ({exc})") from None
    _check_contents(path, model, optim, parsed)
    return Checkpoint(model, optim, parsed["rng_state"], parsed["config"], parsed["meta"])


def read_meta(path: str | os.PathLike) -> dict:
    """Only the ``meta`` entry of a checkpoint (cheap: the weights are not read)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"][()]))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"checkpoint {path}: corrupt or not a sescratch checkpoint ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("epoch"), int):
        raise DataError(f"checkpoint {path}: meta is not a sescratch checkpoint's")
    return meta


def _check_contents(path: Path, model: dict, optim: dict, parsed: dict) -> None:
    from sescratch.errors import SescratchError
    from sescratch.train.config import TrainConfig

    def bad(what: str):
        return DataError(f"checkpoint {path}: {what}")

    if not model:
        raise bad("holds no model weights")
    for key in ("rng_state", "config", "meta"):
        if not isinstance(parsed[key], dict):
            raise bad(f"entry {key!r} must be a JSON object, got {type(parsed[key]).__name__}")
    if "bit_generator" not in parsed["rng_state"]:
        raise bad("entry 'rng_state' is not a NumPy generator state (no 'bit_generator')")
    meta = parsed["meta"]
    absent = [k for k in META_KEYS if k not in meta]
    if absent:
        raise bad(f"meta lacks {', '.join(absent)}")
    for key, types in META_KEYS.items():
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise bad(f"meta {key!r} must be {want}, got {value!r:.60}")
    if meta["epoch"] < 0 or meta["iteration"] < 0:
        raise bad(f"meta epoch/iteration must be >= 0, got {meta['epoch']}/{meta['iteration']}")
    try:
        TrainConfig.from_dict(parsed["config"]).validate()
    except (SescratchError, TypeError, ValueError) as exc:
        raise bad(f"invalid configuration: {exc}") from None
    for group, arrays in (("model", model), ("optim", optim)):
        for name, value in arrays.items():
            if value.dtype.kind == "f":
                if value.dtype not in (np.float32, np.float64):
                    raise bad(f"{group}/{name} has dtype {value.dtype}, expected float32 or float64")
                if not np.isfinite(value).all():
                    raise bad(f"{group}/{name} holds NaN or infinite values")
            elif value.dtype.kind not in "iub" or not (name.endswith("num_batches_tracked")
                                                       or group == "optim"):
                raise bad(f"{group}/{name} has dtype {value.dtype}, expected a floating dtype")
    if not math.isfinite(float(meta["elapsed_s"])):
        raise bad("meta 'elapsed_s' is not finite")
