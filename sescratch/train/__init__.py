"""Training: configuration, trainer, optimiser, schedules, checkpoints, evaluation, metrics.

    from sescratch.train import TrainConfig, fit
    result = fit(TrainConfig(model="se_resnet20", epochs=10, out_dir="runs/se20"))

One module per job:

* :mod:`~sescratch.train.config` — :class:`TrainConfig` (the run, saved in every checkpoint),
  :func:`build_model`, the option choices (``BACKENDS``, ``SCHEDULES``, ``SCHEDULE_UNITS``);
* :mod:`~sescratch.train.trainer` — :class:`Trainer` and :func:`fit`: the loop, resuming, Ctrl-C;
* :mod:`~sescratch.train.optim` — :class:`SGD` (PyTorch's update, step for step);
* :mod:`~sescratch.train.schedules` — learning rate as a pure function of epochs done;
* :mod:`~sescratch.train.checkpoint` — one ``.npz`` per checkpoint, written atomically, checked on load;
* :mod:`~sescratch.train.rundir` — the run directory: its lock, checks and crash repairs;
* :mod:`~sescratch.train.evaluation` — top-1 / top-5 error, :func:`load_for_evaluation`;
* :mod:`~sescratch.train.metrics` — top-k, confusion matrix, ``metrics.jsonl``/``.csv``, curves;
* :mod:`~sescratch.train.interrupt` — the Ctrl-C guard and the progress bar;
* :mod:`~sescratch.train.pretrained` — the checkpoints shipped with the package, :func:`load_pretrained`;
* :mod:`~sescratch.train.cli` — ``sescratch train`` and ``sescratch eval``.
"""
from sescratch.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from sescratch.train.config import BACKENDS, SCHEDULE_UNITS, SCHEDULES, TrainConfig, build_model
from sescratch.train.evaluation import EvalResult, Evaluand, evaluate, load_for_evaluation
from sescratch.train.interrupt import GracefulInterrupt, progress_bar
from sescratch.train.metrics import (
    MetricsLog,
    confusion_matrix,
    per_class_accuracy,
    plot_confusion,
    plot_curves,
    topk_correct,
)
from sescratch.train.optim import SGD
from sescratch.train.pretrained import Pretrained, list_pretrained, load_pretrained, pretrained_path
from sescratch.train.schedules import (
    Constant,
    Cosine,
    LinearWarmup,
    MultiStep,
    Schedule,
    Step,
    make_schedule,
)
from sescratch.train.trainer import (
    CheckpointWriteError,
    Trainer,
    TrainingDiverged,
    TrainResult,
    fit,
    print_epoch,
)

__all__ = [
    "TrainConfig", "build_model", "BACKENDS", "SCHEDULES", "SCHEDULE_UNITS",
    "Trainer", "TrainResult", "TrainingDiverged", "CheckpointWriteError", "fit", "print_epoch",
    "SGD", "Schedule", "Constant", "Step", "MultiStep", "Cosine", "LinearWarmup", "make_schedule",
    "Checkpoint", "save_checkpoint", "load_checkpoint",
    "EvalResult", "evaluate", "Evaluand", "load_for_evaluation",
    "Pretrained", "list_pretrained", "load_pretrained", "pretrained_path",
    "MetricsLog", "topk_correct", "confusion_matrix", "per_class_accuracy", "plot_curves",
    "plot_confusion", "GracefulInterrupt", "progress_bar",
]
