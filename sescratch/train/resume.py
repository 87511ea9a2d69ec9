"""A run's place in training, and its restoring from ``last.npz`` (``--resume``).

:class:`RunPosition` is what a checkpoint's ``meta`` holds besides the weights: epochs done, the
batches done of the epoch in progress and their tally (``partial``), the history, the best epoch
and the training time so far. :func:`restore` checks that the stored run is the configured one,
loads the weights, BN buffers, momentum buffers and the generator's state into the given
objects, and returns the position with the notes for the user.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sescratch.errors import DataError, UsageError
from sescratch.train import rundir
from sescratch.train.checkpoint import load_checkpoint
from sescratch.train.config import TrainConfig

__all__ = ["RunPosition", "restore"]


@dataclass
class RunPosition:
    epoch: int = 0  # epochs completed
    iteration: int = 0  # batches done of the epoch in progress
    partial: dict | None = None  # their tally (loss_sum, top1, top5, seen, time_s), or None
    history: list[dict] = field(default_factory=list)
    best: dict | None = None  # {"epoch", "test_top1_error"} of the best epoch so far
    elapsed_s: float = 0.0  # training time of the completed epochs


def restore(path: Path, config: TrainConfig, model, optimizer,
            rng: np.random.Generator) -> tuple[RunPosition, list[str]]:
    """Load ``path`` (a ``last.npz``) into ``model``, ``optimizer`` and ``rng``.

    Raises :class:`UsageError` when the file is missing or its run's configuration differs
    from ``config`` in more than :data:`sescratch.train.config.RESUMABLE_CHANGES`, and
    :class:`DataError` when it holds no optimiser state or weights that do not fit the model.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"--resume: no checkpoint to resume from at {path}")
    ckpt = load_checkpoint(path)
    stored = TrainConfig.from_dict(ckpt.config)
    changed = config.differences(stored)
    if changed:
        raise UsageError(f"--resume: configuration differs from {path}: " + "; ".join(changed))
    if not ckpt.optim_state:  # sescratch.train.pretrained.export_pretrained drops it
        raise DataError(f"checkpoint {path} holds no optimiser state (an exported checkpoint): it "
                        f"cannot be resumed; start a new run from its weights with --weights {path}")
    try:
        model.load_state_dict(ckpt.model_state)
        optimizer.load_state_dict(ckpt.optim_state)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"checkpoint {path}: does not fit {config.model}: {exc}") from None
    rng.bit_generator.state = ckpt.rng_state
    meta = ckpt.meta
    position = RunPosition(meta["epoch"], meta["iteration"], meta["partial"], meta["history"],
                           meta["best"], meta["elapsed_s"])
    return position, rundir.schedule_notes(stored, config, ckpt.epoch)
