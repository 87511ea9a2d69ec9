"""The paper's comparisons as sweeps of training runs ("cells") that resume where they stopped.

An experiment is a list of :class:`Row` (a model configuration, e.g. "SE-ResNet-20, r = 8")
trained once per seed under one :class:`Budget` (the recipe shared by every row). One
``(row, seed)`` pair is a *cell*: a full :class:`sescratch.train.Trainer` run in
``OUT/cells/<key>/`` whose key is the model, label, seed and a hash of the whole training
configuration. A finished cell leaves ``result.json`` beside its checkpoints; a rerun reads that
file instead of training again, and an interrupted cell continues from its ``last.npz``.
Rows of different experiments with the same configuration (SE-ResNet-20 at r = 16 with the
standard placement appears in all three) share their cells.

    from sescratch.analysis import Budget, run_experiment
    report = run_experiment("se-vs-plain", Budget(epochs=5, seeds=(0, 1, 2)), "runs/experiments")

The experiments and their rows (the paper's tables, ImageNet numbers from its §6.4 and the TPAMI
ablations) are listed in :mod:`sescratch.analysis.tables`. Where a small ``width`` rounds two
reduction ratios to the same SE widths, the run says so and the report carries the note.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from sescratch.errors import UsageError
from sescratch.analysis.tables import (DEFAULT_OPTIONS, EXPERIMENTS, VARIANT_TABLES, Row, experiment_rows,
                                       same_networks, se_widths)
from sescratch.io import atomic_write_text
from sescratch.train import TrainConfig, Trainer, TrainingDiverged

__all__ = ["Budget", "BUDGETS", "Row", "EXPERIMENTS", "VARIANT_TABLES", "experiment_rows",
           "cell_config", "cell_key", "run_cell", "run_experiment"]

# Fields that cannot change a cell's result (where it runs, how it reports, how often it saves);
# every other field of TrainConfig is part of the cell's hash.
NOT_HASHED = ("out_dir", "resume", "progress", "data_dir", "download", "eval_batch_size", "backend",
              "overwrite", "save_every", "comm_timeout", "distributed", "sync_bn")


@dataclass(frozen=True)
class Budget:
    """The recipe every row of an experiment is trained with, and how much of it to spend.

    ``subset`` / ``test_subset`` are stratified image counts (``None``: the whole split);
    ``seeds`` the seeds of each row (initialisation, data order, augmentation and the subset's
    draw); ``width`` the channels of the first stage (16 = the CIFAR ResNets of He et al.).
    The remaining fields go unchanged into :class:`sescratch.train.TrainConfig`.
    """

    dataset: str = "fashion-mnist-subset"
    dataset_options: dict = field(default_factory=dict)
    data_dir: str | None = None
    download: bool = True
    epochs: int = 5
    subset: int | None = 2000
    test_subset: int | None = None
    seeds: tuple = (0, 1, 2)
    width: int = 16
    batch_size: int = 64
    lr: float = 0.1
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: bool = True
    pad_to: int | None = None
    backend: str = "numba"
    progress: bool = False


# Named budgets for --budget; "small" is the one docs/results.md was measured with.
BUDGETS = {
    "smoke": Budget(epochs=1, subset=500, test_subset=200, seeds=(0,), width=8),
    "small": Budget(),
    "medium": Budget(epochs=15, subset=None, seeds=(0, 1, 2)),
    "full": Budget(epochs=30, subset=None, seeds=(0, 1, 2, 3, 4)),
}


def cell_config(row: Row, seed: int, budget: Budget, cells_dir: str | os.PathLike = "cells") -> TrainConfig:
    """The :class:`TrainConfig` of one cell (its ``out_dir`` is ``cells_dir/<key>``).

    Only ``model``, ``reduction`` and ``model_options`` depend on the row: every row of every
    experiment is trained with the same recipe.
    """
    b = asdict(budget)
    config = TrainConfig(
        model=row.model, reduction=row.reduction, model_options={"width": budget.width, **row.options},
        dataset=b["dataset"], dataset_options=dict(b["dataset_options"]), data_dir=b["data_dir"],
        download=b["download"], subset=b["subset"], test_subset=b["test_subset"], augment=b["augment"],
        pad_to=b["pad_to"], epochs=b["epochs"], batch_size=b["batch_size"], lr=b["lr"],
        weight_decay=b["weight_decay"], schedule=b["schedule"], backend=b["backend"], seed=int(seed),
        progress=b["progress"])
    return replace(config, out_dir=str(Path(cells_dir) / cell_key(row, config)))


def config_hash(config: TrainConfig) -> str:
    """SHA-256 (first 10 hex digits) of the configuration fields that change a run's numbers."""
    relevant = {k: v for k, v in config.to_dict().items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:10]


def cell_key(row: Row, config: TrainConfig) -> str:
    """``<model>[-r<r>][-<option>_<value>...]-seed<k>-<hash>``: readable, stable, shared by equal rows.

    Only the options that differ from the defaults are spelled out, so the same configuration
    reached from two tables (e.g. "avg" squeeze and "standard" placement) is one cell.
    """
    parts = [row.model]
    if row.model.startswith("se_"):
        parts.append(f"r{config.reduction}")
        parts += [f"{k}_{v}" for k, v in sorted(row.options.items()) if DEFAULT_OPTIONS.get(k) != v]
    return "-".join(parts + [f"seed{config.seed}", config_hash(config)])


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))


def _finished(path: Path, digest: str) -> dict | None:
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return result if result.get("config_hash") == digest else None


def run_cell(row: Row, config: TrainConfig, log: Callable[[str], None] = print) -> dict:
    """Train one cell (or continue it from ``last.npz``); returns and stores its ``result.json``.

    A finished cell (``result.json`` with the same configuration hash) is returned as stored,
    with ``"skipped": True``. A diverged run is recorded with ``status="diverged"`` and not retried.
    """
    out = Path(config.out_dir)
    digest = config_hash(config)
    done = _finished(out / "result.json", digest)
    if done is not None:
        return {**done, "skipped": True}
    resume = (out / "last.npz").exists()
    trainer = Trainer(replace(config, resume=resume), callbacks=(_epoch_logger(log),))
    result = {"key": out.name, "config_hash": digest, "table": row.table, "label": row.label,
              "model": row.model, "seed": config.seed, "config": config.to_dict(),
              **_cost(trainer)}
    try:
        fit = trainer.fit()
    except TrainingDiverged as exc:
        result.update(status="diverged", error=str(exc), history=trainer.history)
    else:
        if fit.status != "completed":  # Ctrl-C: the trainer saved last.npz; stop the sweep
            raise KeyboardInterrupt
        last = fit.history[-1]
        result.update(status="completed", history=fit.history, best=fit.best,
                      test_top1_error=last["test_top1_error"], test_top5_error=last["test_top5_error"],
                      train_seconds=last["elapsed_s"])
    result["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "result.json", result)
    return {**result, "skipped": False}


def _cost(trainer: Trainer) -> dict:
    """Parameters, multiply-accumulates for one image (:func:`sescratch.summary.summary`), image counts."""
    from sescratch.summary import summary

    C, H, W = trainer.data.image_shape
    size = trainer.config.pad_to
    s = summary(trainer.model, (C, size or H, size or W))
    return {"params": s.params, "se_params": s.se_params, "macs": s.backbone_macs + s.se_macs,
            "se_macs": s.se_macs, "input_shape": list(s.input_shape),
            "train_images": len(trainer.data.y_train), "test_images": len(trainer.data.y_test)}


def _epoch_logger(log):
    def callback(trainer, row):
        log(f"    epoch {row['epoch']}/{trainer.config.epochs}: train loss {row['train_loss']:.4f}, "
            f"test top-1 error {100 * row['test_top1_error']:.2f}% ({row['epoch_time_s']:.0f} s)")
    return callback


def _key(row: Row) -> tuple[str, str]:
    """A row's name within its experiment (Row holds a dict: not hashable itself)."""
    return row.table, row.label


def _same_network_note(group: list[Row], width: int) -> str:
    labels = " and ".join(r.label for r in group)
    units = sorted(set(se_widths(group[0], width)))
    units_text = " or ".join(map(str, units)) + (" hidden unit" if units == [1] else " hidden units")
    return (f"{labels} build the same network at width {width} (every SE block's C/r rounds to "
            f"{units_text}), so one cell per seed, {group[0].label}'s, "
            "stands for all of them; a larger width tells them apart")


def run_experiment(name: str, budget: Budget, out_dir: str | os.PathLike, *, dry_run: bool = False,
                   log: Callable[[str], None] = print, command: str | None = None, **choices) -> dict:
    """Run (or resume) every cell of experiment ``name``, then write its JSON, Markdown and PNG.

    Returns the report of :func:`sescratch.analysis.report.build_report`. With ``dry_run`` nothing
    is trained: the cells are listed with their state and the report holds the finished ones.
    """
    from sescratch.analysis.report import build_report, write_report

    rows = experiment_rows(name, **choices)
    repeated = sorted({s for s in budget.seeds if list(budget.seeds).count(s) > 1})
    if repeated:  # each seed is one replicate: a repeated one would count one training twice
        raise UsageError(f"experiment {name}: seed(s) {', '.join(map(str, repeated))} listed more than once "
                         f"in {list(budget.seeds)}")
    out = Path(out_dir)
    cells_dir = out / "cells"
    configs = {}  # ((table, label), seed) -> the cell's config, every one checked before any trains
    for row, seed in ((row, seed) for row in rows for seed in budget.seeds):
        configs[_key(row), seed] = config = cell_config(row, seed, budget, cells_dir)
        try:
            config.validate()
        except UsageError as exc:
            raise UsageError(f"experiment {name}, {row.table} / {row.label}: {exc}") from None
    groups = same_networks(rows, budget.width)
    trained_as = {_key(r): _key(g[0]) for g in groups for r in g}  # one cell for rows of one network
    plan = [(row, configs[trained_as.get(_key(row), _key(row)), seed]) for row in rows for seed in budget.seeds]
    unique = {}  # one training per cell, listed under the first row that needs it
    for row, c in plan:
        unique.setdefault(c.out_dir, (row, c))
    notes = [_same_network_note(group, budget.width) for group in groups]
    for note in notes:
        log(f"note: {note}")
    results, interrupted = {}, False
    for i, (path, (row, config)) in enumerate(unique.items(), start=1):
        tag = f"[{i}/{len(unique)}] {row.table} / {row.label} / seed {config.seed}"
        done = _finished(Path(path) / "result.json", config_hash(config))
        if done is not None or dry_run:
            partial = (Path(path) / "last.npz").exists()
            state = "done" if done is not None else "to resume" if partial else "to run"
            log(f"{tag}: {state} ({Path(path).name})")
            if done is not None:
                results[path] = {**done, "skipped": True}
            continue
        log(f"{tag}: training {Path(path).name}")
        try:
            results[path] = run_cell(row, config, log)
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: finished cells are kept; run the same command again to resume")
            break
        r = results[path]
        if r["status"] == "completed":
            log(f"{tag}: test top-1 error {100 * r['test_top1_error']:.2f}% ({r['train_seconds']:.0f} s)")
        else:
            log(f"{tag}: {r['status']}: {r.get('error', '')}")
    report = build_report(name, EXPERIMENTS[name][0], rows, plan, results, budget)
    report.update(interrupted=interrupted, command=command, notes=notes)
    if not dry_run:
        write_report(report, out)
    return report
