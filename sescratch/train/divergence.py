"""What the trainer does when the loss or a weight stops being finite: stop, keep the last
good checkpoint, and say which one it is."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sescratch.backend import to_numpy
from sescratch.errors import DataError, SescratchError
from sescratch.train.checkpoint import read_meta

__all__ = ["TrainingDiverged", "weights_finite", "first_nonfinite", "diverged"]


class TrainingDiverged(SescratchError):
    """The loss (or a weight) became NaN or infinite; the last good checkpoint is kept."""


def first_nonfinite(model) -> str | None:
    """The name of the first parameter or buffer of ``model`` holding NaN or inf (read on the
    host), None when all are finite. Buffers count: batch norm's running variance can overflow
    while every weight is still finite, and a checkpoint holding it could not be evaluated or
    resumed from."""
    for name, p in model.named_parameters():
        if not np.isfinite(to_numpy(p.data)).all():
            return name
    for name, b in model.named_buffers():
        if b is not None and not np.isfinite(to_numpy(b)).all():
            return name
    return None


def weights_finite(model) -> bool:
    """Whether every parameter and buffer of ``model`` is finite (read on the host)."""
    return first_nonfinite(model) is None


def diverged(what: str, out_dir: Path) -> TrainingDiverged:
    """The error to raise: ``what`` happened, and which ``out_dir/last.npz`` is kept (if any)."""
    last = Path(out_dir) / "last.npz"
    kept = "no checkpoint had been written yet"
    if last.exists():
        try:
            meta = read_meta(last)
            where = (f"epoch {meta['epoch'] + 1} after batch {meta['iteration']}" if meta.get("partial")
                     else f"after epoch {meta['epoch']}")
        except DataError:
            where = "unreadable"
        kept = f"the last good checkpoint {last} ({where}) is kept"
    return TrainingDiverged(f"training diverged: {what}; stopped, {kept}. Try a smaller --lr (or a warm-up).")
