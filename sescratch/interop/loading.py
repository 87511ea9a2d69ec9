"""Build a model from a weights file: ``create(name, weights=PATH)`` and ``--weights PATH``.

:func:`load_pretrained` reads the file (:mod:`sescratch.interop.weights`), detects its naming
(:mod:`sescratch.interop.naming`), builds the architecture that naming implies (torchvision and
timm ResNets stride the 3x3 and pad the stem's max pool; timm rounds SE widths to multiples of 8:
``se_divisor=8``) and copies every tensor. Nothing is left to chance: every missing, unexpected or mis-shaped key is an error that
lists them all, unless ``init_missing=True`` lets missing ones keep their fresh initialisation
(a plain ResNet's weights starting an SE-ResNet: the report lists the new keys).

What the tensors cannot tell comes from the file where it says so: a training checkpoint's
configuration, or the record :func:`~sescratch.interop.weights.save_weights` writes (the model's
``stride_on``, ``stem_pool``, ``gate``, ...). Those options are the defaults of the model built,
and an asked option that contradicts one is an error; so is one that contradicts an option the
run left at its default (``gate="tanh"`` on a checkpoint of a sigmoid run): every architecture
option is compared, not only the ones the run set.

Cadene's Inception-ResNet-v2 (``inceptionresnetv2-520b38e4.pth``) has 1001 classifier rows, row
0 a "background" class; for 1000 classes (the default, or ``num_classes=1000``) row 0 is dropped,
as Cadene's code does for its ``'imagenet'`` setting, and the report says so. ``num_classes=1001``
keeps every row.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from sescratch.interop.naming import (NAMINGS, architecture_options, detect_naming, file_key, file_shape,
                                      to_sescratch)
from sescratch.interop.weights import (WeightsError, model_architecture, read_run, read_saved_options,
                                       read_weights)

__all__ = ["LoadReport", "load_pretrained", "prepare_weights", "load_state"]

_OPTIONAL = (".num_batches_tracked",)  # counters the release's files predate; ours start at 0
_CLASSIFIER = "last_linear."


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: the naming found, options chosen, keys initialised afresh."""

    path: str
    naming: str
    options: dict = field(default_factory=dict)
    loaded: int = 0
    new_keys: list = field(default_factory=list)
    from_run: bool = False  # options read from a training checkpoint's configuration
    saved_from: str = ""  # the model whose options save_weights recorded in the file
    notes: list = field(default_factory=list)  # what was done to the file's tensors (a dropped row)

    def __str__(self) -> str:
        lines = [f"weights {self.path}: {NAMINGS[self.naming]} naming, {self.loaded} tensors loaded"]
        if self.options:
            source = ("the checkpoint's training run" if self.from_run else
                      f"the file's record ({self.saved_from})" if self.saved_from else "the file's zoo")
            lines.append(f"  architecture of {source}: " + ", ".join(f"{k}={v}" for k, v in self.options.items()))
        if self.new_keys:
            lines.append(f"  {len(self.new_keys)} keys not in the file, freshly initialised: " + ", ".join(self.new_keys))
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass
class _Record:
    """The architecture a file records itself: a training run's configuration (``run``) or
    :func:`~sescratch.interop.weights.save_weights`' record (``saved``)."""

    kind: str
    model: str
    options: dict  # set when building: the run's own options, or every option recorded
    defaults: dict  # the run's model's options it left at their defaults: compared, not set


def load_pretrained(name: str, path: str | os.PathLike, *, num_classes: int | None = None,
                    in_channels: int | None = None, init_missing: bool = False, **options):
    """``(model, report)``: ``sescratch.models.create(name, ...)`` holding the weights of ``path``.

    ``num_classes`` / ``in_channels`` default to the file's (classifier rows, less Cadene's
    Inception-ResNet-v2 background row; first conv's input channels) when None; ``options`` go to
    ``create``; an option that contradicts the file's architecture (``stride_on="1x1"`` with
    torchvision weights) is an error.
    """
    from sescratch import models

    ours, report = prepare_weights(name, path, options)
    if num_classes is None:  # the file's, less the background row of Cadene's Inception-ResNet-v2
        num_classes = _rows(ours, "last_linear.weight", 0, path, "num_classes")
        num_classes -= 1 if _has_background_row(name, ours) else 0
    in_channels = first_conv_channels(ours) if in_channels is None else in_channels  # 0: create says why
    model = models.create(name, num_classes=num_classes, in_channels=in_channels, init=init_missing,
                          **{**options, **report.options})
    load_state(model, ours, naming=report.naming, init_missing=init_missing, report=report, source=str(path))
    return model, report


def prepare_weights(name: str, path: str | os.PathLike, options: dict | None = None):
    """``(state in our names, report)`` for building ``name`` from ``path``: the file read, its
    naming detected, ``report.options`` the architecture options it implies (checked against
    ``options``). The model is then built with those options and filled by :func:`load_state`."""
    from sescratch import models

    options = options or {}
    state = read_weights(path)
    try:
        naming = detect_naming(state)
    except ValueError as exc:
        raise WeightsError(f"weights {path}: {exc}") from None
    accepted = models.default_options(name)
    record = _file_record(path)  # what the tensors cannot tell, where the file says it
    own = record.options if record else {}
    arch = {k: v for k, v in {**own, **architecture_options(naming)}.items() if k in accepted}
    compared = {k: v for k, v in (record.defaults if record else {}).items() if k in accepted}
    for key, value in {**compared, **arch}.items():
        if key in options and options[key] != value:
            raise WeightsError(f"weights {path} ({_source(key, record, naming)}) need {key}={value!r}, "
                               f"but {key}={options[key]!r} was asked for")
    report = LoadReport(str(path), naming, arch, from_run=bool(record and record.kind == "run"),
                        saved_from=record.model if record and record.kind == "saved" else "")
    return to_sescratch(state, naming), report


def _file_record(path) -> _Record | None:
    """The file's own record of its architecture (see :class:`_Record`), or None."""
    run = read_run(path)
    if run is not None:
        model, options = run
        return _Record("run", model, options, _run_defaults(path, model, options))
    saved = read_saved_options(path)
    if saved is not None:
        return _Record("saved", saved[0], saved[1], {})
    return None


def _run_defaults(path, model: str, options: dict) -> dict:
    """The architecture options a run left at its model's defaults, as the run built them.

    Read off the run's model built without weights (a few milliseconds: ``init=False``), because
    a default may depend on the model (``stride_on=None`` is "1x1" in an SE-ResNet, "3x3" in an
    SE-ResNeXt)."""
    from sescratch import models

    try:
        built = models.create(model, num_classes=1, init=False, **options)
    except (ValueError, TypeError) as exc:
        raise WeightsError(f"weights {path}: a training checkpoint whose model cannot be built "
                           f"({model} with {options}: {exc})") from None
    return {k: v for k, v in model_architecture(built).items() if k not in options}


def _source(key, record, naming) -> str:
    """Where the value of ``key`` a file needs comes from, for the error message."""
    if record is None or (key not in record.options and key not in record.defaults):
        return NAMINGS[naming]
    if key in record.defaults:
        return f"the training run's default for {record.model}"
    return "the training run's" if record.kind == "run" else f"recorded by save_weights for {record.model}"


def load_state(model, state: dict, *, naming: str = "sescratch", init_missing: bool = False,
               report: LoadReport | None = None, source: str = "state") -> list[str]:
    """Copy ``state`` (our names) into ``model``; returns the keys left at their initialisation.

    Raises :class:`WeightsError` listing every missing (unless ``init_missing``), unexpected and
    mis-shaped key, in the file's own names, before anything is copied. With ``init_missing`` a
    classifier (``last_linear``) of another shape keeps its initialisation too (fine-tuning for
    another number of classes); it is listed with the new keys.
    """
    target = model.state_dict()
    state = {k: _counter(v, target[k]) if k in target and k.endswith(_OPTIONAL) else v for k, v in state.items()}
    name = getattr(model, "model_name", type(model).__name__)
    if _has_background_row(name, state) and target["last_linear.weight"].shape[0] == _IMAGENET_CLASSES:
        state = {**state, **{k: np.asarray(state[k])[1:] for k in _BACKGROUND_KEYS}}
        if report is not None:
            report.notes.append("last_linear: 1001 rows in the file, row 0 the background class of Cadene's "
                                "Inception-ResNet-v2: dropped, as its 'imagenet' setting does (1000 classes; "
                                "num_classes=1001 keeps it)")
    missing = [k for k in target if k not in state and not k.endswith(_OPTIONAL)]
    unexpected = [k for k in state if k not in target]
    mismatched = [k for k in target if k in state and tuple(np.shape(state[k])) != tuple(target[k].shape)]
    if init_missing:  # fine-tuning: a classifier for another number of classes starts afresh
        missing += [k for k in mismatched if k.startswith(_CLASSIFIER)]
        mismatched = [k for k in mismatched if not k.startswith(_CLASSIFIER)]
    problems = []
    if missing and not init_missing:
        problems.append(f"{len(missing)} missing: " + ", ".join(file_key(k, naming) for k in missing))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: " + ", ".join(file_key(k, naming) for k in unexpected))
    if mismatched:
        problems.append(f"{len(mismatched)} mis-shaped: " + "; ".join(
            f"{file_key(k, naming)} is {file_shape(k, np.shape(state[k]), naming)} in the file, "
            f"{file_shape(k, target[k].shape, naming)} in the model" for k in mismatched))
    if problems:
        fixable = not unexpected and all(k.startswith(_CLASSIFIER) for k in mismatched)
        hint = (" (--init-missing / init_missing=True initialises missing keys afresh, and a classifier "
                "for another number of classes)") if fixable and not init_missing else ""
        raise WeightsError(f"weights {source} ({NAMINGS[naming]} naming) do not fit {name}: "
                           + " | ".join(problems) + hint)
    fresh = set(missing)
    copied = {k: v for k, v in state.items() if k in target and k not in fresh}
    model.load_state_dict({**target, **copied})
    if report is not None:
        report.loaded, report.new_keys = len(copied), list(missing)
    return list(missing)


# Cadene's Inception-ResNet-v2 file: 1001 classifier rows, row 0 "background" (its 'imagenet'
# setting drops it; TF-slim's checkpoint it was converted from predicts 1001 classes)
_BACKGROUND_MODELS = ("inception_resnet_v2", "se_inception_resnet_v2")
_BACKGROUND_KEYS = ("last_linear.weight", "last_linear.bias")
_IMAGENET_CLASSES = 1000


def _has_background_row(name: str, state: dict) -> bool:
    """Whether ``state`` (our names) is an Inception-ResNet-v2 classifier with the background row."""
    shapes = [tuple(np.shape(state[k])) if k in state else None for k in _BACKGROUND_KEYS]
    rows = _IMAGENET_CLASSES + 1
    return name in _BACKGROUND_MODELS and shapes[0] is not None and shapes[0][:1] == (rows,) and shapes[1] == (rows,)


def _counter(value, target):
    """A batch counter stored as ``(1,)`` (some writers cannot store 0-d arrays) read as the scalar."""
    value = np.asarray(value)
    return value.reshape(()) if value.size == 1 and np.ndim(target) == 0 else value


# The first convolution of every family, in our names: ResNets, MobileNet and ShuffleNet, VGG,
# BN-Inception (ImageNet, CIFAR), Inception-ResNet-v2 (tests check that each model has one)
FIRST_CONVS = ("layer0.conv1.weight", "layer0.conv.weight", "features.0.weight", "conv1_7x7_s2.conv.weight",
               "conv1_3x3.conv.weight", "conv2d_1a.conv.weight")


def first_conv_channels(state) -> int | None:
    """The first convolution's input channels, or None (the model's default) where the state has
    none of :data:`FIRST_CONVS` (the file's key order says nothing: safetensors sorts its keys)."""
    first = next((state[k] for k in FIRST_CONVS if k in state and np.ndim(state[k]) == 4), None)
    return None if first is None else int(np.shape(first)[1])


def _rows(state, key, axis, path, option) -> int:
    if key not in state:
        keys = ", ".join(list(state)[:4]) + (", ..." if len(state) > 4 else "")
        raise WeightsError(f"weights {path}: no {key!r} to read {option} from (every model here has "
                           f"one: the file may hold another architecture; its keys: {keys}); "
                           f"pass {option} explicitly to load it anyway")
    return int(np.shape(state[key])[axis])
