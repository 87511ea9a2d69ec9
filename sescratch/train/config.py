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
import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sescratch.errors import UsageError
from sescratch.train.schedules import SCHEDULES

__all__ = ["TrainConfig", "InvalidField", "build_model", "model_options", "BACKENDS", "SCHEDULES", "SCHEDULE_UNITS"]

# The choices of the options, shared by TrainConfig.validate and every command line.
SCHEDULE_UNITS = ("iteration", "epoch")
BACKENDS = ("numba", "numpy", "cupy")
DTYPES = ("float32", "float64")  # issue 14: --dtype float64 for exact comparisons

# Fields that may differ between a run and its resumption without changing its numbers.
RESUMABLE_CHANGES = ("epochs", "resume", "progress", "out_dir", "data_dir", "download",
                     "eval_batch_size", "backend", "overwrite", "save_every")
# Model options a training run sets itself: the CLI and the API refuse them in model_options.
RUN_OWNED_OPTIONS = {"init": "a training run always initialises its weights",
                     "seed": "the run's --seed (TrainConfig.seed) seeds the initialisation"}


class InvalidField(UsageError):
    """A :class:`TrainConfig` field out of its accepted range: ``field``, ``value``, ``reason``."""

    def __init__(self, field: str, value, reason: str):
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"invalid training configuration: {field}={value!r:.80}: {reason}")


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
    dropout masks), ``out_dir``, ``resume``, ``overwrite`` (replace an earlier run in ``out_dir``),
    ``save_every`` (also write ``last.npz`` every N iterations inside an epoch), ``progress``
    (tqdm bars), ``eval_batch_size``.
    Precision and data parallelism (issue 14, :mod:`sescratch.train.distributed`): ``dtype``
    (float32 | float64 weights and activations), ``distributed`` (one of the ranks of
    ``mpirun -n N``; ``batch_size`` is then the global batch), ``sync_bn`` (batch statistics of
    the global batch), ``comm_timeout`` (seconds a rank waits in a collective before aborting).
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
    overwrite: bool = False
    save_every: int | None = None
    dtype: str = "float32"  # issue 14 (H9): the four fields below
    distributed: bool = False
    sync_bn: bool = False
    comm_timeout: float = 600.0

    def __post_init__(self):
        for name in ("out_dir", "data_dir"):  # a pathlib.Path is a path too; stored as text (JSON)
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))

    def validate(self) -> "TrainConfig":
        """Raise :class:`UsageError` naming the first invalid field, its value and the accepted range.

        Checks types as well as ranges (a config may come from JSON or a checkpoint), the model
        options (:func:`sescratch.models.check_options`) and the names of model and dataset.
        """
        from sescratch import models
        from sescratch.data import list_datasets
        from sescratch.data.registry import check_dataset_options

        for name, value in self.to_dict().items():
            message = _check_field(self, name, value)
            if message:
                raise InvalidField(name, value, message)
        if self.model not in models.list_models():
            raise UsageError(f"unknown model {self.model!r}; valid names: {', '.join(models.list_models())}")
        if self.dataset not in list_datasets():
            raise UsageError(f"unknown dataset {self.dataset!r}; valid names: {', '.join(list_datasets())}")
        check_dataset_options(self.dataset, self.dataset_options)
        if self.resume and self.overwrite:
            raise UsageError("invalid training configuration: resume and overwrite exclude each other")
        for key, why in RUN_OWNED_OPTIONS.items():
            if key in self.model_options:
                raise UsageError(f"invalid training configuration: model option {key} is not "
                                 f"accepted ({why})")
        try:
            models.check_options(self.model, model_options(self))
        except ValueError as exc:
            raise UsageError(f"invalid model option: {exc}") from None
        asked = self.model_options.get("reduction", self.reduction)
        if asked != self.reduction:  # the run records TrainConfig.reduction: one place for r
            raise UsageError(f"invalid training configuration: model option reduction={asked!r} differs "
                             f"from reduction={self.reduction} (--reduction); give r once, with --reduction")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict (e.g. a checkpoint's ``config``); unknown keys raise UsageError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = [] if not isinstance(data, dict) else sorted(set(data) - names)
        if not isinstance(data, dict):
            raise UsageError(f"a configuration must be a dict, got {type(data).__name__}")
        if unknown:
            raise UsageError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**data)

    def differences(self, other: "TrainConfig") -> list[str]:
        """Fields (other than :data:`RESUMABLE_CHANGES`) whose values differ."""
        mine, theirs = (json.loads(json.dumps(c.to_dict())) for c in (self, other))  # tuples = lists
        return [f"{k}: {theirs[k]!r} -> {mine[k]!r}" for k in mine
                if k not in RESUMABLE_CHANGES and mine[k] != theirs[k]]


def model_options(config: TrainConfig) -> dict:
    """The ``create`` options of the config's model (``reduction`` for SE models)."""
    options = dict(config.model_options)
    if config.model.startswith(("se_", "senet")):
        options.setdefault("reduction", config.reduction)
    return options


_INT_RANGES = {"reduction": (1, 4096), "crop_padding": (0, 64), "epochs": (1, 1_000_000),
               "batch_size": (1, 1 << 20), "step_size": (1, 1_000_000), "seed": (0, 2**63 - 1),
               "eval_batch_size": (1, 1 << 20)}
_OPTIONAL_INT_RANGES = {"subset": (1, 1 << 40), "test_subset": (1, 1 << 40), "pad_to": (1, 4096),
                        "save_every": (1, 1 << 40)}
_BOOLS = ("download", "augment", "nesterov", "no_decay_bn_bias", "resume", "progress", "overwrite")
_CHOICES = {"schedule": SCHEDULES, "schedule_unit": SCHEDULE_UNITS, "backend": BACKENDS}
_BOOLS += ("distributed", "sync_bn")  # issue 14
_CHOICES["dtype"] = DTYPES  # issue 14
RESUMABLE_CHANGES += ("distributed", "sync_bn", "comm_timeout")  # issue 14: a resume may change N


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_field(config: TrainConfig, name: str, value) -> str | None:
    """Why ``value`` is not valid for field ``name`` (None when it is)."""
    if name == "comm_timeout":  # issue 14
        return None if _is_real(value) and value > 0 else "expected a finite number of seconds > 0"
    if name == "sync_bn" and value is True and not config.distributed:
        return "needs distributed (--distributed, under mpirun)"
    if name in _INT_RANGES or name in _OPTIONAL_INT_RANGES:
        if value is None and name in _OPTIONAL_INT_RANGES:
            return None
        low, high = _INT_RANGES.get(name) or _OPTIONAL_INT_RANGES[name]
        if not _is_int(value) or not low <= value <= high:
            return f"expected an integer in [{low}, {high}]"
        return None
    if name in _BOOLS:
        return None if isinstance(value, bool) else "expected true or false"
    if name in _CHOICES:
        return None if value in _CHOICES[name] else f"expected one of {', '.join(_CHOICES[name])}"
    reals = {"lr": ("> 0", lambda v: v > 0), "momentum": ("in [0, 1)", lambda v: 0 <= v < 1),
             "weight_decay": (">= 0", lambda v: v >= 0),
             "label_smoothing": ("in [0, 1)", lambda v: 0 <= v < 1),
             "gamma": ("> 0", lambda v: v > 0),
             "warmup_epochs": (f"in [0, epochs = {config.epochs}]", lambda v: 0 <= v <= config.epochs)}
    if name in reals:
        text, ok = reals[name]
        return None if _is_real(value) and ok(value) else f"expected a finite number {text}"
    if name in ("model", "dataset", "out_dir"):
        return None if isinstance(value, str) and value.strip() else "expected a non-empty string"
    if name == "data_dir":
        return None if value is None or (isinstance(value, str) and value) else "expected a directory"
    if name in ("model_options", "dataset_options"):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return "expected a dict with string keys"
        return None
    if name == "milestones":
        return _check_milestones(value)
    return None


def _check_milestones(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value or not all(_is_int(v) and v >= 1 for v in value):
        return "expected a non-empty list of integers >= 1"
    if any(b <= a for a, b in zip(value, value[1:])):
        return "expected strictly increasing epochs"
    return None


def build_model(config: TrainConfig, num_classes: int, in_channels: int, **extra):
    """``sescratch.models.create`` with the config's options (``reduction`` for SE models)."""
    from sescratch import models

    if config.model not in models.list_models():
        raise UsageError(f"unknown model {config.model!r}; valid names: {', '.join(models.list_models())}")
    options = model_options(config)
    options.setdefault("seed", config.seed)
    return models.create(config.model, num_classes=num_classes, in_channels=in_channels,
                         **options, **extra)


def build_transforms(config: TrainConfig, data) -> tuple[dict, "Transform", "Transform"]:
    """The run's input pipeline for ``data`` (a :class:`sescratch.data.Dataset`): the
    normalisation a checkpoint records (per-channel mean and std of the training split, and
    ``pad_to``), the training transform (with the config's augmentation) and the test one."""
    from sescratch.data import Transform

    if config.pad_to is not None and config.pad_to < max(data.image_shape[1:]):
        raise UsageError(f"invalid training configuration: pad_to={config.pad_to}: expected an "
                         f"integer >= the image size {max(data.image_shape[1:])} of {config.dataset}")
    mean, std = (list(map(float, s)) for s in data.channel_stats())
    common = dict(mean=mean, std=std, pad_to=config.pad_to, dtype=np.dtype(config.dtype).type)
    return ({"mean": mean, "std": std, "pad_to": config.pad_to},
            Transform(**common, augment=config.augment, crop_padding=config.crop_padding),
            Transform(**common))
