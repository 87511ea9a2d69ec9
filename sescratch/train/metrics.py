"""Classification metrics and the files a training run writes about itself.

* :func:`topk_correct` — how many rows have the label among the k largest logits (the paper's
  top-1 and top-5 error are ``1 - correct / N``); :func:`topk_hits`, the same count left on the
  logits' device; :class:`EpochTally`, an epoch's loss and counts, read from a GPU in batches.
* :func:`confusion_matrix`, :func:`per_class_accuracy`.
* :class:`MetricsLog` — one JSON object per epoch in ``metrics.jsonl`` and the same rows in
  ``metrics.csv``, both rewritten whole from the history (so a resumed run never duplicates rows).
* :func:`plot_curves` (loss and top-1 error per epoch, train and test: the paper's Fig. 4 for
  our run) and :func:`plot_confusion`, saved as PNG with Matplotlib's Agg backend.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from sescratch.backend import get_array_module, to_numpy
from sescratch.io import atomic_open, atomic_write_text
from sescratch.plotting import figure, save_figure

__all__ = ["topk_correct", "topk_hits", "EpochTally",
           "confusion_matrix", "per_class_accuracy", "MetricsLog", "plot_curves",
           "plot_confusion"]


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> int:
    """Number of rows whose label is among the ``k`` largest logits (k clipped to the classes).

    Ties are broken towards the lower class index, as ``np.argsort`` is stable.
    """
    return int(topk_hits(logits, labels, k))


def topk_hits(logits, labels, k: int):
    """:func:`topk_correct` as a 0-d integer array on the logits' device (NumPy or CuPy).

    Nothing is copied to the host, so on a GPU nothing waits; ``labels`` may be on the host.
    """
    xp = get_array_module(logits)
    labels = xp.asarray(labels)  # N  (an asynchronous copy to a GPU)
    k = min(k, logits.shape[1])
    label_logit = logits[xp.arange(len(labels)), labels][:, None]  # N,1
    higher = (logits > label_logit).sum(axis=1)  # N  classes strictly above the label
    ties_before = ((logits == label_logit) & (xp.arange(logits.shape[1]) < labels[:, None])).sum(axis=1)
    finite = xp.isfinite(logits).all(axis=1)  # N  a row with NaN/inf never counts as correct
    return (((higher + ties_before) < k) & finite).sum()


class EpochTally:
    """An epoch's running loss sum and top-1 / top-5 counts, read from the device every few batches.

    :meth:`add` only queues work on the arrays' device (on a GPU nothing waits for it);
    :meth:`flush` copies the pending losses to the host at once (one synchronisation) and adds
    them to ``partial`` (the trainer's ``loss_sum``, ``top1``, ``top5``, ``seen``) in batch order
    in float64: the very sums of adding each ``float(loss) * len(labels)`` as it came.
    ``every``: how many batches make :attr:`due` true (1 on the CPU, where reading costs nothing).
    """

    def __init__(self, partial: dict, every: int = 1):
        self.partial, self.every = partial, int(every)
        self._losses: list = []
        self._sizes: list[int] = []
        self._top1 = self._top5 = 0

    def add(self, loss, logits, labels) -> None:
        """One batch: its mean loss (a float or a 0-d array), logits (N, K) and labels (N,)."""
        self._losses.append(loss)
        self._sizes.append(len(labels))
        self._top1 = self._top1 + topk_hits(logits, labels, 1)
        self._top5 = self._top5 + topk_hits(logits, labels, 5)

    @property
    def pending(self) -> int:
        return len(self._losses)

    @property
    def due(self) -> bool:
        return self.pending >= self.every

    def flush(self) -> tuple[int, float] | None:
        """Add the pending batches to ``partial``; ``(i, loss)`` for the first one whose loss is not
        finite (``i`` counted from the oldest pending batch, 0-based), else None."""
        if not self._losses:
            return None
        losses = self._losses
        if not all(isinstance(v, float) for v in losses):
            xp = get_array_module(*losses)
            losses = to_numpy(xp.stack([xp.asarray(v) for v in losses])).tolist()  # one copy
        p = self.partial
        for i, (loss, n) in enumerate(zip(losses, self._sizes)):
            loss = float(loss)
            if not math.isfinite(loss):
                return i, loss
            p["loss_sum"] += loss * n
        p["top1"] += int(self._top1)
        p["top5"] += int(self._top5)
        p["seen"] += sum(self._sizes)
        self._losses, self._sizes, self._top1, self._top5 = [], [], 0, 0
        return None


def epoch_row(epoch: int, lr: float, train: dict, test, elapsed_s: float) -> dict:
    """One epoch's history entry: ``train`` the epoch's tally (``loss_sum``, ``top1``, ``top5``,
    ``seen``, ``time_s``), ``test`` an :class:`sescratch.train.evaluation.EvalResult`."""
    seen = train["seen"]
    return {"epoch": epoch, "lr": lr, "train_loss": train["loss_sum"] / seen,
            "train_top1_error": 1 - train["top1"] / seen, "train_top5_error": 1 - train["top5"] / seen,
            "test_loss": test.loss, "test_top1_error": test.top1_error,
            "test_top5_error": test.top5_error, "test_accuracy": test.accuracy,
            "epoch_time_s": train["time_s"], "train_images_per_s": seen / max(train["time_s"], 1e-9),
            "elapsed_s": elapsed_s}


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Diagonal over row sums (NaN for a class with no images)."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


class MetricsLog:
    """Writes ``metrics.jsonl`` and ``metrics.csv`` in ``out_dir`` from a list of epoch rows."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.jsonl = self.out_dir / "metrics.jsonl"
        self.csv = self.out_dir / "metrics.csv"

    def write(self, history: list[dict]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.jsonl, "".join(json.dumps(row) + "\n" for row in history))
        columns: list[str] = []
        for row in history:
            columns += [key for key in row if key not in columns]
        with atomic_open(self.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(history)


def plot_curves(history: list[dict], path: str | os.PathLike, title: str = "") -> Path:
    """Loss and top-1 error (%) per epoch, train and test, side by side."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_err) = figure(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("test", "--")):
        ax_loss.plot(epochs, [row[f"{split}_loss"] for row in history], style, marker="o", label=split)
        ax_err.plot(epochs, [100 * row[f"{split}_top1_error"] for row in history], style,
                    marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_err.set(xlabel="epoch", ylabel="top-1 error (%)", title="top-1 error")
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100, format="png")


def plot_confusion(matrix: np.ndarray, classes, path: str | os.PathLike, title: str = "") -> Path:
    """The confusion matrix as a heat map with counts, rows = true class."""
    K = len(classes)
    size = max(5.0, 0.5 * K + 2)
    fig, ax = figure(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    if K <= 20:
        ax.set_xticks(range(K), classes, rotation=60, ha="right")
        ax.set_yticks(range(K), classes)
        peak = matrix.max() if matrix.size else 0
        for i in range(K):
            for j in range(K):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > peak / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100, format="png")
