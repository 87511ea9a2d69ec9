"""Checkpoints: one ``.npz`` holding everything needed to continue a run bit for bit.

Layout (every entry a plain array, so :func:`load_checkpoint` reads with ``allow_pickle=False``):

* ``model/<name>`` — the model's ``state_dict()`` (parameters and BN buffers, PyTorch names);
* ``optim/<name>`` — the optimiser's ``state_dict()`` (momentum buffers, step count, lr);
* ``rng_state`` — the trainer's ``np.random.Generator`` ``bit_generator.state``, as a JSON string;
* ``config`` — the run's configuration, as a JSON string;
* ``meta`` — JSON string: epochs done, position inside an interrupted epoch, history, best result;
* ``epoch`` — the number of completed epochs (int64, also inside ``meta``).

Writes are atomic (:func:`sescratch.io.atomic_open`): a crash leaves either the old file or the
new one, never a half-written one.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sescratch.errors import DataError
from sescratch.io import atomic_open

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "FORMAT_VERSION"]

FORMAT_VERSION = 1


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
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (never unpickles anything).

    Raises
    ------
    DataError
        Saying which file and why: missing, not an ``.npz``, truncated, or lacking entries.
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
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"checkpoint {path}: corrupt or not an .npz file ({exc})") from exc
    try:
        parsed = {k: json.loads(v) for k, v in texts.items()}
    except json.JSONDecodeError as exc:
        raise DataError(f"checkpoint {path}: corrupt JSON entry ({exc})") from exc
    if not model:
        raise DataError(f"checkpoint {path}: holds no model weights")
    return Checkpoint(model, optim, parsed["rng_state"], parsed["config"], parsed["meta"])
