"""Evaluate a model on a labelled set: loss, the paper's top-1 / top-5 error, confusion matrix."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sescratch.data.loader import BatchIterator
from sescratch.metrics import confusion_matrix, per_class_accuracy, topk_correct
from sescratch.ops.loss import log_softmax

__all__ = ["EvalResult", "evaluate"]


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


def to_numpy(a) -> np.ndarray:
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def evaluate(model, x: np.ndarray, y: np.ndarray, transform, *, num_classes: int,
             batch_size: int = 500, device: str = "cpu") -> EvalResult:
    """Run ``model`` in eval mode over ``(x, y)`` in order; restores the previous mode after.

    Parameters
    ----------
    model : a sescratch Module mapping (N, C, H, W) to logits (N, K)
    x, y : uint8 images (N, C, H, W) and int64 labels (N,)
    transform : :class:`sescratch.data.Transform` without augmentation
    num_classes : K
    device : "cpu" or "gpu" (batches are moved with ``cupy.asarray`` for "gpu")
    """
    was_training = model.training
    model.eval()
    loss_sum, top1, top5 = 0.0, 0, 0
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    try:
        for xb, yb in BatchIterator(x, y, batch_size, transform=transform):
            if device == "gpu":
                import cupy

                xb = cupy.asarray(xb)
            logits = to_numpy(model(xb)).astype(np.float64)  # N,K
            logp = log_softmax(logits)  # N,K
            loss_sum += float(-logp[np.arange(len(yb)), yb].sum())
            top1 += topk_correct(logits, yb, 1)
            top5 += topk_correct(logits, yb, 5)
            matrix += confusion_matrix(yb, logits.argmax(axis=1), num_classes)
    finally:
        model.train(was_training)
    n = len(y)
    return EvalResult(loss_sum / n, 1 - top1 / n, 1 - top5 / n, n, matrix)
