"""The configuration of a training run: one dataclass, saved as JSON in every checkpoint,
and :func:`build_model`, the model a configuration names.

The defaults are the recipe ``sescratch train`` runs with no arguments: SE-ResNet-20 (r = 16) on
the embedded Fashion-MNIST subset (6,000 / 1,000 images, 28x28, no padding to 32), 7 epochs of
SGD (batch 64, momentum 0.9, weight decay 5e-4) with lr 0.1 on a per-iteration cosine schedule,
random crop (padding 2) and horizontal flip. Sized for a 2-core machine: a few minutes of
training (the measured time and accuracy are in ``README.md``, "Results").
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from sescratch.errors import UsageError
from sescratch.train.schedules import SCHEDULES

__all__ = ["TrainConfig", "build_model", "BACKENDS", "SCHEDULES", "SCHEDULE_UNITS"]

# The choices of the options, shared by TrainConfig.validate and every command line.
SCHEDULE_UNITS = ("iteration", "epoch")
BACKENDS = ("numba", "numpy", "cupy")

# Fields that may differ between a run and its resumption without changing its numbers.
RESUMABLE_CHANGES = ("epochs", "resume", "progress", "out_dir", "data_dir", "download",
                     "eval_batch_size", "backend")


@dataclass
class TrainConfig:
    """Everything that defines a run.

    Model: ``model`` (a name from ``sescratch.models.list_models()``), ``reduction`` (SE ratio r,
    ignored by plain ResNets), ``model_options`` (any other ``create`` option: ``width``,
    ``placement``, ``squeeze``, ``gate``, ``shortcut``, ``dropout`` ...).
    Data: ``dataset`` (``sescratch.data.list_datasets()``), ``dataset_options`` (passed to the
    loader), ``data_dir``, ``download``, ``subset`` / ``test_subset`` (stratified image counts),
    ``augment`` (random crop with ``crop_padding`` + horizontal flip), ``pad_to`` (e.g. 32).
    Optimisation: ``epochs``, ``batch_size``, ``lr``, ``momentum``, ``nesterov``, ``weight_decay``,
    ``no_decay_bn_bias``, ``label_smoothing``, ``schedule`` (constant | step | multistep | cosine)
    with ``step_size``, ``milestones``, ``gamma``, ``warmup_epochs``, updated per ``schedule_unit``
    (``"iteration"`` or ``"epoch"``).
    Run: ``backend`` (numba | numpy | cupy), ``seed`` (initialisation, shuffling, augmentation,
    dropout masks), ``out_dir``, ``resume``, ``progress`` (tqdm bars), ``eval_batch_size``.
    """

    model: str = "se_resnet20"
    reduction: int = 16
    model_options: dict = field(default_factory=dict)
    dataset: str = "fashion-mnist-subset"
    dataset_options: dict = field(default_factory=dict)
    data_dir: str | None = None
    download: bool = True
    subset: int | None = None
    test_subset: int | None = None
    augment: bool = True
    crop_padding: int = 2
    pad_to: int | None = None
    epochs: int = 7
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    no_decay_bn_bias: bool = False
    label_smoothing: float = 0.0
    schedule: str = "cosine"
    step_size: int = 30
    milestones: list | None = None
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    schedule_unit: str = "iteration"
    backend: str = "numba"
    seed: int = 0
    out_dir: str = "runs/se_resnet20"
    resume: bool = False
    progress: bool = True
    eval_batch_size: int = 500

    def validate(self) -> "TrainConfig":
        """Raise :class:`UsageError` naming the first out-of-range field."""
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.reduction >= 1, "reduction must be >= 1"),
            (self.crop_padding >= 0, "crop_padding must be >= 0"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.schedule_unit in SCHEDULE_UNITS, f"schedule_unit must be one of {SCHEDULE_UNITS}"),
            (self.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}"),
            (self.subset is None or self.subset >= 1, "subset must be >= 1"),
            (self.test_subset is None or self.test_subset >= 1, "test_subset must be >= 1"),
            (not self.nesterov or self.momentum > 0, "nesterov needs momentum > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(f"invalid training configuration: {message}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict (e.g. a checkpoint's ``config``); unknown keys raise UsageError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UsageError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**data)

    def differences(self, other: "TrainConfig") -> list[str]:
        """Fields (other than :data:`RESUMABLE_CHANGES`) whose values differ."""
        mine, theirs = (json.loads(json.dumps(c.to_dict())) for c in (self, other))  # tuples = lists
        return [f"{k}: {theirs[k]!r} -> {mine[k]!r}" for k in mine
                if k not in RESUMABLE_CHANGES and mine[k] != theirs[k]]


def build_model(config: TrainConfig, num_classes: int, in_channels: int, **extra):
    """``sescratch.models.create`` with the config's options (``reduction`` for SE models)."""
    from sescratch import models

    if config.model not in models.list_models():
        raise UsageError(f"unknown model {config.model!r}; valid names: {', '.join(models.list_models())}")
    options = dict(config.model_options)
    if config.model.startswith(("se_", "senet")):
        options.setdefault("reduction", config.reduction)
    options.setdefault("seed", config.seed)
    return models.create(config.model, num_classes=num_classes, in_channels=in_channels,
                         **options, **extra)
