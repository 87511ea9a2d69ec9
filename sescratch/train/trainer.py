"""Train a model: the loop of forward, loss, backward and SGD step, with everything around it.

    from sescratch.train import TrainConfig, fit
    result = fit(TrainConfig(model="se_resnet20", epochs=10, out_dir="runs/se20"))
    result.history[-1]["test_top1_error"]

One epoch: shuffle (the run's ``np.random.Generator``), for every mini-batch augment,
``model.set_rng(...)`` (the batch's dropout generator), ``logits = model(x)``,
``loss, dlogits = softmax_cross_entropy(logits, y)``, ``model.backward(dlogits)``,
``optimizer.step()``; then evaluate on the test split (top-1 / top-5 error, the paper's
measures), append a row to the history, write ``last.npz`` (and ``best.npz``
when the test top-1 error improved), ``metrics.jsonl``, ``metrics.csv`` and ``curves.png``.

Resuming is bit-exact because the checkpoint holds the weights, BN buffers, momentum buffers
and the generator's state *at the start of the epoch in progress*, plus how many of its batches
were done: a resumed run replays the epoch's shuffle and augmentation draws for the batches
already done (without training on them) and continues with identical numbers. Dropout masks
come from a generator that is a pure function of (seed, epoch, iteration)
(:meth:`Trainer.dropout_rng`), so they too are the uninterrupted run's; the weight-initialisation
generator draws nothing after the model is built.
Ctrl-C (SIGINT) finishes the current batch, saves ``last.npz`` and returns with status
``"interrupted"``; a second Ctrl-C aborts at once. ``config.save_every = N`` also saves
``last.npz`` every N iterations inside an epoch, so a crash (even ``kill -9``) loses at most N
steps and resuming is still bit-exact. A NaN or infinite loss raises :class:`TrainingDiverged`,
leaving the last good checkpoint untouched; a failed write (a full disk) raises
:class:`CheckpointWriteError` and keeps the previous file.

Before any work the run directory is checked and locked (:mod:`sescratch.train.rundir`): a
directory that is a file, read-only, in use by another run, or holding an earlier run (without
``resume`` or ``overwrite``) is refused; temporaries of crashed writes are removed and a stale
``best.npz`` is repaired on resume.

``config.backend`` picks the kernels: ``"numba"`` or ``"numpy"`` (selected with
:func:`sescratch.backend.use` for the duration of :meth:`Trainer.fit`), or ``"cupy"`` (model
and batches on the GPU).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sescratch import backend
from sescratch.backend import to_device
from sescratch.data import BatchIterator, load_dataset
from sescratch.errors import UsageError
from sescratch.ops.loss import softmax_cross_entropy
from sescratch.train.checkpoint import save_checkpoint
from sescratch.train.config import TrainConfig, build_model, build_transforms
from sescratch.train.evaluation import evaluate
from sescratch.train.interrupt import GracefulInterrupt, progress_bar
from sescratch.train import distributed, resume, rundir
from sescratch.train.divergence import TrainingDiverged, diverged, first_nonfinite
from sescratch.train.rundir import CheckpointWriteError
from sescratch.train.metrics import EpochTally, MetricsLog, epoch_row, plot_curves
from sescratch.train.optim import SGD
from sescratch.train.schedules import make_schedule

__all__ = ["Trainer", "TrainResult", "TrainingDiverged", "CheckpointWriteError", "fit", "print_epoch"]

GPU_READ_EVERY = 16  # batches between reads of the loss and counts from a GPU (one sync each)


@dataclass
class TrainResult:
    history: list[dict]
    status: str  # "completed" | "interrupted"
    out_dir: Path
    best: dict | None = None
    model: object = field(default=None, repr=False)


class Trainer:
    """Holds a run's model, data, optimiser and generator; :meth:`fit` trains it.

    ``callbacks`` are called as ``callback(trainer, row)`` after each epoch's files are written
    (``row`` is the epoch's history entry; :func:`print_epoch` prints it).
    """

    def __init__(self, config: TrainConfig, callbacks: tuple[Callable, ...] = ()):
        self.config = config.validate()
        self.callbacks = tuple(callbacks)
        self.out_dir = Path(config.out_dir)
        self.kernels, self.device = backend.run_placement(config.backend)
        with backend.use(self.kernels):  # fails here, early, if the family is unavailable
            pass
        if config.data_dir is not None and not Path(config.data_dir).is_dir():
            raise UsageError(f"--data-dir {config.data_dir}: no such directory")
        if config.resume and not (self.out_dir / "last.npz").exists():
            raise UsageError(f"--resume: no checkpoint to resume from at {self.out_dir / 'last.npz'}")
        self.dist = distributed.data_parallel(config)  # issue 14 (H9): None unless distributed
        if not self.is_root:  # issue 14: ranks > 0 neither lock, check nor write the run directory
            self.lock, self.notes = distributed.NoRunLock(), []
        else:
            self.lock = rundir.RunLock(self.out_dir)  # held while checking here, then during fit()
            self.notes = rundir.prepare(self.out_dir, resume=config.resume, overwrite=config.overwrite,
                                        lock=self.lock)
        try:
            self._setup(config)
            if self.is_root and config.overwrite:  # only now that the new run has passed every check
                self.notes += rundir.remove_earlier_run(self.out_dir)
        finally:
            self.lock.release()

    def _setup(self, config: TrainConfig) -> None:
        data = load_dataset(config.dataset, data_dir=config.data_dir, download=config.download,
                            **config.dataset_options)
        if config.subset or config.test_subset:
            self.notes += _subset_notes(config, data)
            data = data.subset(config.subset, config.test_subset, seed=config.seed)
        self.data = data
        self.normalization, self.train_transform, self.test_transform = build_transforms(config, data)
        self.model = build_model(config, data.num_classes, data.image_shape[0])
        if config.dtype != "float32":  # issue 14: --dtype float64
            self.model.astype(np.dtype(config.dtype))
        self.model = to_device(self.model, self.device)
        self.optimizer = SGD(self.model.parameters(), config.lr, config.momentum,
                             weight_decay=config.weight_decay, nesterov=config.nesterov,
                             no_decay_bn_bias=config.no_decay_bn_bias)
        self.schedule = make_schedule(config.schedule, config.lr, config.epochs,
                                      step_size=config.step_size, milestones=config.milestones,
                                      gamma=config.gamma, warmup_epochs=config.warmup_epochs)
        self.rng = np.random.default_rng(config.seed)
        self._take_position(resume.RunPosition())  # a new run: nothing done yet
        self._interrupt = GracefulInterrupt()
        if config.resume:
            self._restore()
        if self.dist is not None:  # issue 14 (H9): same config and data on every rank, rank 0's state
            self.dist.attach(self)

    def _stop_requested(self) -> bool:
        """Ctrl-C seen: on this process, or (issue 14) on any rank as agreed in the last allreduce."""
        return self._interrupt.requested if self.dist is None else self.dist.stop_agreed

    @property
    def is_root(self) -> bool:
        """Whether this process prints and writes files (rank 0, or the only process); issue 14."""
        return self.dist is None or self.dist.is_root

    def _restore(self) -> None:
        position, notes = resume.restore(self.out_dir / "last.npz", self.config, self.model,
                                         self.optimizer, self.rng)
        self.notes += notes
        self._take_position(position)
        if self.partial is not None and not self.is_root:  # the stored counts are all ranks': rank 0 carries them
            self.partial = dict(self.partial, loss_sum=0.0, top1=0, top5=0, seen=0)
        logged = self.out_dir / "metrics.jsonl"
        rows = len(logged.read_text().splitlines()) if logged.exists() else -1
        if rows != len(self.history):  # a kill between last.npz and the reports
            self._write_reports()

    def _take_position(self, position: resume.RunPosition) -> None:
        self.epoch, self.iteration, self.partial = position.epoch, position.iteration, position.partial
        self.history, self.best, self.elapsed = position.history, position.best, position.elapsed_s

    def save(self, name: str, epoch_start_rng_state: dict) -> Path:
        if not self.is_root:  # issue 14: only rank 0 writes checkpoints
            return self.out_dir / name
        meta = {"epoch": self.epoch, "iteration": self.iteration, "partial": self.partial,
                "history": self.history, "best": self.best, "elapsed_s": self.elapsed,
                "normalization": self.normalization, "classes": list(self.data.classes),
                "image_shape": list(self.data.image_shape)}
        with self._writing(self.out_dir / name):
            return save_checkpoint(self.out_dir / name, model_state=self.model.state_dict(),
                                   optim_state=self.optimizer.state_dict(),
                                   rng_state=epoch_start_rng_state,
                                   config=self.config.to_dict(), meta=meta)

    _writing = staticmethod(rundir.writing)

    def dropout_rng(self) -> np.random.Generator:
        """The generator of the current batch's dropout masks: a pure function of (seed, epoch,
        iteration), so a resumed run draws the masks the uninterrupted run drew."""
        shard = [self.dist.rank, self.dist.size] if self.dist and self.dist.size > 1 else []  # issue 14
        return np.random.default_rng([self.config.seed, self.epoch, self.iteration, *shard])

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train from the current epoch to ``config.epochs``; returns the history and status.

        The run directory stays locked until it returns (or raises); the checks of the
        constructor are repeated under the lock (another run may have started in between).
        """
        started = self.config.resume or self.epoch > 0 or self.iteration > 0
        notes = rundir.prepare(self.out_dir, resume=started, overwrite=False, lock=self.lock) \
            if self.is_root else []  # issue 14: ranks > 0 leave the run directory alone
        for note in notes:
            print(note, flush=True)
        try:
            with GracefulInterrupt() as self._interrupt, backend.use(self.kernels):
                return self._fit()
        finally:
            self.lock.release()

    def _fit(self) -> TrainResult:
        while self.epoch < self.config.epochs:
            if not self._train_epoch():
                return self._result("interrupted")
            if self._stop_requested():  # issue 14: distributed, the ranks' agreed request
                print(f"interrupted after epoch {self.epoch}: saved {self.out_dir / 'last.npz'}; "
                      "continue with --resume", flush=True)
                return self._result("interrupted")
        return self._result("completed")

    def _train_epoch(self) -> bool:
        """One epoch (or the rest of one); False when interrupted by SIGINT."""
        cfg, model = self.config, self.model
        start_state = self.rng.bit_generator.state
        batches = BatchIterator(self.data.x_train, self.data.y_train, cfg.batch_size, rng=self.rng,
                                shuffle=True, transform=self.train_transform,
                                sample_key=(cfg.seed, self.epoch),  # issue 14: per-image augmentation
                                shard=None if self.dist is None else (self.dist.rank, self.dist.size))
        n_iter, n_train = len(batches), len(self.data.y_train)
        p = self.partial or {"loss_sum": 0.0, "top1": 0, "top5": 0, "seen": 0, "time_s": 0.0}
        # on a GPU the loss and counts stay there and are read every GPU_READ_EVERY batches
        tally = EpochTally(p, every=1 if self.device == "cpu" or self.dist is not None else GPU_READ_EVERY)
        stream = iter(batches)
        for _ in range(self.iteration):  # replay the draws of batches done before a resume
            next(stream)
        model.train()
        t0 = time.perf_counter() - p["time_s"]
        bar = progress_bar(cfg.progress and self.is_root, n_iter, self.iteration, f"epoch {self.epoch + 1}/{cfg.epochs}")
        for xb, yb in stream:
            t = self.epoch + (self.iteration / n_iter if cfg.schedule_unit == "iteration" else 0)
            self.optimizer.lr = self.schedule(t)
            xb = to_device(xb, self.device)  # the labels stay on the host: the loss checks them there
            model.set_rng(self.dropout_rng())
            logits = model(xb)  # N,K
            loss, dlogits = softmax_cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
            if tally.every == 1:  # on the CPU (and distributed) the loss is read at once
                loss = float(loss)
                if not math.isfinite(loss) and self.dist is None:  # distributed: decided by all, below
                    bar.close()
                    self._diverged(f"loss became {loss} at epoch {self.epoch + 1}, batch "
                                   f"{self.iteration + 1} (lr {self.optimizer.lr:.4g})")
            if self.dist is not None:  # issue 14 (H9): an uneven shard's weight (1 when even)
                dlogits = self.dist.weigh(dlogits, len(yb), self.iteration, n_train, cfg.batch_size)
            model.zero_grad()
            model.backward(dlogits)
            if self.dist is not None:  # issue 14 (H9): the step's one allreduce, gradients + flags
                nonfinite, _ = self.dist.reduce_gradients(
                    model.parameters(), nonfinite=not math.isfinite(loss), stop=self._interrupt.requested)
                if nonfinite:
                    bar.close()
                    self._diverged(f"the loss became NaN or infinite on a rank at epoch {self.epoch + 1}, "
                                   f"batch {self.iteration + 1} (lr {self.optimizer.lr:.4g})")
            self.optimizer.step()
            tally.add(loss, logits, yb)
            self.iteration += 1
            if tally.due:
                self._read_tally(tally, bar)
            p["time_s"] = time.perf_counter() - t0
            if cfg.save_every and self.iteration % cfg.save_every == 0 and self.iteration < n_iter:
                self._save_mid_epoch(tally, bar, p, start_state)
                self.partial = None
            bar.update(1)
            if p["seen"]:  # as of the last read of the tally
                bar.set_postfix(loss=f"{p['loss_sum'] / p['seen']:.3f}",
                                acc=f"{p['top1'] / p['seen']:.3f}",
                                img_s=f"{p['seen'] / max(p['time_s'], 1e-9):.0f}")
            if self._stop_requested() and self.iteration < n_iter:
                path = self._save_mid_epoch(tally, bar, p, start_state)
                bar.close()
                print(f"\ninterrupted: saved {path} (epoch {self.epoch + 1}, batch "
                      f"{self.iteration}/{n_iter}); continue with --resume")
                return False
        self._read_tally(tally, bar)
        p["time_s"] = time.perf_counter() - t0  # after the last read: the GPU's work is done
        bar.close()
        self._end_epoch(p, n_iter)
        return True

    def _save_mid_epoch(self, tally: EpochTally, bar, p: dict, start_state: dict) -> Path:
        """``last.npz`` in the middle of an epoch: the pending tally read, the epoch so far in
        ``partial``; never weights that are not finite (the last good checkpoint stays)."""
        self._read_tally(tally, bar)
        self._check_weights_finite(f"epoch {self.epoch + 1}, before batch {self.iteration + 1}", bar)
        # distributed: every rank is here (saves and stops are agreed), and what rank 0 writes
        # holds every rank's part of the epoch
        self.partial = p if self.dist is None else self.dist.gather_epoch(self.model, p)
        return self.save("last.npz", start_state)

    def _read_tally(self, tally: EpochTally, bar) -> None:
        """Add the pending batches' losses and counts to the epoch's; stop if a loss was not finite."""
        pending = tally.pending
        bad = tally.flush()
        if bad is not None:
            i, loss = bad
            bar.close()
            self._diverged(f"loss became {loss} at epoch {self.epoch + 1}, batch "
                           f"{self.iteration - pending + i + 1} (lr {self.optimizer.lr:.4g})")

    def _end_epoch(self, p: dict, n_iter: int) -> None:
        if self.dist is not None:  # issue 14 (H9): the epoch's counts over all ranks, BN buffers averaged
            p = self.dist.gather_epoch(self.model, p)
        self._check_weights_finite(f"epoch {self.epoch + 1}")
        cfg = self.config
        test = evaluate(self.model, self.data.x_test, self.data.y_test, self.test_transform,
                        num_classes=self.data.num_classes, batch_size=cfg.eval_batch_size,
                        device=self.device)
        if not math.isfinite(test.loss):  # finite weights whose logits overflow: no usable model either
            self._diverged(f"the test loss became {test.loss} after epoch {self.epoch + 1}")
        self.elapsed += p["time_s"]
        self.epoch += 1
        row = epoch_row(self.epoch, self.optimizer.lr, p, test, self.elapsed)
        self.history.append(row)
        self.iteration, self.partial = 0, None
        improved = self.best is None or row["test_top1_error"] < self.best["test_top1_error"]
        if improved:
            self.best = {"epoch": self.epoch, "test_top1_error": row["test_top1_error"]}
        state = self.rng.bit_generator.state  # = the start of the next epoch
        last = self.save("last.npz", state)  # records self.best: a stale best.npz is repairable
        if improved and self.is_root:  # issue 14: only rank 0 writes
            with self._writing(self.out_dir / "best.npz"):
                rundir.copy_checkpoint(last, self.out_dir / "best.npz")
        self._write_reports()
        for callback in self.callbacks if self.is_root else ():  # issue 14: rank 0 reports
            callback(self, row)

    def _write_reports(self) -> None:
        if not self.is_root:  # issue 14: only rank 0 writes
            return
        with self._writing(self.out_dir / "metrics.jsonl"):
            MetricsLog(self.out_dir).write(self.history)
        if self.history:
            with self._writing(self.out_dir / "curves.png"):
                plot_curves(self.history, self.out_dir / "curves.png",
                            title=f"{self.config.model} on {self.config.dataset}")

    def _check_weights_finite(self, during: str, bar=None) -> None:
        bad = first_nonfinite(self.model)
        if bad is not None:
            if bar is not None:
                bar.close()
            self._diverged(f"{bad} became NaN or infinite during {during}")

    def _diverged(self, what: str) -> None:
        self._write_reports()
        raise diverged(what, self.out_dir)

    def _result(self, status: str) -> TrainResult:
        return TrainResult(self.history, status, self.out_dir, self.best, self.model)


def _subset_notes(config: TrainConfig, data) -> list[str]:
    """A sentence for each subset larger than its split: the whole split is used."""
    notes = []
    for flag, asked, split, part in (("--subset", config.subset, data.y_train, "training"),
                                     ("--test-subset", config.test_subset, data.y_test, "test")):
        if asked and asked > len(split):
            notes.append(f"note: {flag} {asked} is more than the {len(split)} images of {config.dataset}'s "
                         f"{part} split: all {len(split)} are used")
    return notes


def print_epoch(trainer: Trainer, row: dict) -> None:
    """A callback printing one line per epoch: losses, test top-1 / top-5 error, speed."""
    print(f"epoch {row['epoch']}/{trainer.config.epochs}: train loss {row['train_loss']:.4f}, "
          f"test loss {row['test_loss']:.4f}, test top-1 error {100 * row['test_top1_error']:.2f}%, "
          f"top-5 error {100 * row['test_top5_error']:.2f}%, {row['train_images_per_s']:.0f} img/s, "
          f"{row['elapsed_s']:.0f} s", flush=True)


def fit(config: TrainConfig, callbacks: tuple[Callable, ...] = ()) -> TrainResult:
    """Build a :class:`Trainer` for ``config`` and train it; see the module docstring."""
    return Trainer(config, callbacks).fit()
