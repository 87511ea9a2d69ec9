"""Evaluate a model on a labelled set: loss, the paper's top-1 / top-5 error, confusion matrix.

:func:`load_for_evaluation` turns a checkpoint into a model and the test split it is evaluated
on; ``sescratch eval`` and ``sescratch excitations`` both start from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sescratch.backend import to_device, to_numpy
from sescratch.data.loader import BatchIterator
from sescratch.errors import UsageError
from sescratch.ops.loss import log_softmax
from sescratch.train.metrics import confusion_matrix, per_class_accuracy, topk_correct

__all__ = ["EvalResult", "evaluate", "Evaluand", "load_for_evaluation"]


@dataclass
class EvalResult:
    """Mean cross-entropy (no label smoothing), top-1 / top-5 error in [0, 1], counts."""

    loss: float
    top1_error: float
    top5_error: float
    count: int
    confusion: np.ndarray

    @property
    def accuracy(self) -> float:
        return 1.0 - self.top1_error

    def per_class_accuracy(self) -> np.ndarray:
        return per_class_accuracy(self.confusion)

    def report(self, classes) -> str:
        """The lines ``sescratch eval`` prints: errors, loss and per-class accuracy."""
        lines = [f"  top-1 error {100 * self.top1_error:.2f}%  (accuracy {100 * self.accuracy:.2f}%)",
                 f"  top-5 error {100 * self.top5_error:.2f}%",
                 f"  loss        {self.loss:.4f}",
                 "  per-class accuracy:"]
        for cls, acc in zip(classes, self.per_class_accuracy()):
            lines.append(f"    {cls:>16s}  {'n/a' if np.isnan(acc) else f'{100 * acc:6.2f}%'}")
        return "\n".join(lines)


def evaluate(model, x: np.ndarray, y: np.ndarray, transform, *, num_classes: int,
             batch_size: int = 500, device: str = "cpu") -> EvalResult:
    """Run ``model`` in eval mode over ``(x, y)`` in order; restores the previous mode after.

    Parameters
    ----------
    model : a sescratch Module mapping (N, C, H, W) to logits (N, K)
    x, y : uint8 images (N, C, H, W) and int64 labels (N,)
    transform : :class:`sescratch.data.Transform` without augmentation
    num_classes : K
    device : "cpu" or "gpu" (where the model is; batches are moved there with ``backend.to_device``)
    """
    was_training = model.training
    model.eval()
    loss_sum, top1, top5 = 0.0, 0, 0
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    try:
        for xb, yb in BatchIterator(x, y, batch_size, transform=transform):
            logits = to_numpy(model(to_device(xb, device))).astype(np.float64)  # N,K
            logp = log_softmax(logits)  # N,K
            loss_sum += float(-logp[np.arange(len(yb)), yb].sum())
            top1 += topk_correct(logits, yb, 1)
            top5 += topk_correct(logits, yb, 5)
            matrix += confusion_matrix(yb, logits.argmax(axis=1), num_classes)
    finally:
        model.train(was_training)
    n = len(y)
    return EvalResult(loss_sum / n, 1 - top1 / n, 1 - top5 / n, n, matrix)


class Evaluand(NamedTuple):
    """What :func:`load_for_evaluation` returns: a trained model ready to run on a test split."""

    model: object  # weights loaded, on ``device``
    data: object  # the :class:`sescratch.data.Dataset` evaluated on
    dataset: str  # its name
    transform: object  # the training run's normalisation, no augmentation
    config: object  # the run's :class:`~sescratch.train.TrainConfig`
    checkpoint: object  # the :class:`~sescratch.train.Checkpoint`
    device: str  # "cpu" or "gpu"


def load_for_evaluation(checkpoint, *, dataset: str | None = None, data_dir=None,
                        download: bool = True, backend: str = "numba") -> Evaluand:
    """Load a checkpoint's model and the test split to evaluate it on (default: its own dataset).

    ``checkpoint`` is a path or ``pretrained:NAME`` (:mod:`sescratch.train.pretrained`).
    Selects the kernels (``backend`` numba | numpy, or cupy: model on the GPU); the test subset
    and normalisation are the training run's. Raises :class:`UsageError` when the dataset's
    classes or channels, or the weights, do not fit the checkpoint's model.
    """
    from sescratch import backend as backends
    from sescratch.data import Transform, list_datasets, load_dataset
    from sescratch.train.checkpoint import load_checkpoint
    from sescratch.train.config import TrainConfig, build_model
    from sescratch.train.pretrained import resolve_checkpoint

    if dataset is not None and dataset not in list_datasets():
        raise UsageError(f"unknown dataset {dataset!r}; valid names: {', '.join(list_datasets())}")
    ckpt = load_checkpoint(resolve_checkpoint(checkpoint))
    config = TrainConfig.from_dict(ckpt.config)
    family, device = backends.run_placement(backend)
    if device == "cpu":
        backends.use(family)  # the evaluation's CPU kernels (a GPU run leaves the CPU family alone)
    name = dataset or config.dataset
    options = config.dataset_options if name == config.dataset else {}
    data = load_dataset(name, data_dir=data_dir or config.data_dir, download=download, **options)
    if name == config.dataset and (config.subset or config.test_subset):
        # the trainer's call: the training subset's draw comes first and moves the generator
        data = data.subset(config.subset, config.test_subset, seed=config.seed)
    norm, classes, shape = ckpt.meta["normalization"], ckpt.meta["classes"], ckpt.meta["image_shape"]
    if data.image_shape[0] != shape[0] or data.num_classes != len(classes):
        raise UsageError(f"{name} has {data.num_classes} classes of {data.image_shape} images; "
                         f"the checkpoint was trained on {len(classes)} classes of {tuple(shape)}")
    model = build_model(config, len(classes), data.image_shape[0], init=False)
    try:
        model.load_state_dict(ckpt.model_state)
    except ValueError as exc:
        raise UsageError(f"checkpoint {checkpoint}: weights do not fit {config.model}: {exc}") from None
    model = to_device(model, device)
    transform = Transform(norm["mean"], norm["std"], pad_to=norm["pad_to"])
    return Evaluand(model, data, name, transform, config, ckpt, device)
