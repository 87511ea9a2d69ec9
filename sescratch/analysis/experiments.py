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

Experiments (the paper's tables, ImageNet numbers from its §6.4 and the TPAMI ablations):

============ ================================================================ ============
name         rows                                                             paper
============ ================================================================ ============
se-vs-plain  ResNet-d and SE-ResNet-d for each depth d                        Table 2
reduction    no SE, r = 2, 4, 8, 16, 32                                       Table 10
variants     squeeze avg/max; gate sigmoid/tanh/ReLU; placement standard/     Tables 11,
             PRE/POST/identity; SE after the 3x3 conv                         12, 14, 15
============ ================================================================ ============
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
from sescratch.io import atomic_write_text
from sescratch.train import TrainConfig, Trainer, TrainingDiverged

__all__ = ["Budget", "BUDGETS", "Row", "EXPERIMENTS", "VARIANT_TABLES", "experiment_rows",
           "cell_config", "cell_key", "run_cell", "run_experiment"]

# Fields of TrainConfig that do not change a run's numbers: left out of a cell's hash.
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


@dataclass(frozen=True)
class Row:
    """One configuration of a table: ``model`` with ``options`` (placement, squeeze, gate ...)."""

    table: str
    label: str
    model: str
    options: dict = field(default_factory=dict)
    reduction: int = 16
    paper: dict = field(default_factory=dict)  # the paper's ImageNet numbers for this row


# The paper's ImageNet top-1 error (%) and parameters for the rows (SE-ResNet-50, paper §6 and §7).
_SE50 = {"top1": 22.28, "params": "28.1M"}
VARIANT_TABLES = {
    "squeeze": [("avg", {"squeeze": "avg"}, _SE50), ("max", {"squeeze": "max"}, {"top1": 22.57})],
    "gate": [("sigmoid", {"gate": "sigmoid"}, _SE50), ("tanh", {"gate": "tanh"}, {"top1": 23.00}),
             ("ReLU", {"gate": "relu"}, {"top1": 23.47})],
    "placement": [("standard", {"placement": "standard"}, _SE50),
                  ("SE-PRE", {"placement": "pre"}, {"top1": 22.23}),
                  ("SE-POST", {"placement": "post"}, {"top1": 22.78}),
                  ("SE-Identity", {"placement": "identity"}, {"top1": 22.20})],
    "after_3x3": [("standard", {"placement": "standard"}, _SE50),
                  ("after the 3x3 conv", {"placement": "after_3x3"}, {"top1": 22.48, "params": "25.8M"})],
}
_REDUCTION_PAPER = {2: (22.29, "45.7M"), 4: (22.25, "35.7M"), 8: (22.26, "30.7M"),
                    16: (22.28, "28.1M"), 32: (22.72, "26.9M")}
_SE_VS_PLAIN_PAPER = {"plain": {"top1": 24.80, "model": "ResNet-50"},
                      "se": {"top1": 23.29, "model": "SE-ResNet-50"}}
_DEFAULT_OPTIONS = {"placement": "standard", "squeeze": "avg", "gate": "sigmoid"}


def _se_vs_plain(depths=(20, 56), **_) -> list[Row]:
    rows = []
    for d in depths:
        rows.append(Row(f"depth {d}", f"ResNet-{d}", f"resnet{d}", paper=_SE_VS_PLAIN_PAPER["plain"]))
        rows.append(Row(f"depth {d}", f"SE-ResNet-{d}", f"se_resnet{d}", dict(_DEFAULT_OPTIONS),
                        paper=_SE_VS_PLAIN_PAPER["se"]))
    return rows


def _reduction(depth=20, ratios=(2, 4, 8, 16, 32), **_) -> list[Row]:
    rows = [Row("reduction", "no SE", f"resnet{depth}", paper={"top1": 23.30, "params": "25.6M"})]
    for r in ratios:
        top1, params = _REDUCTION_PAPER.get(r, (None, None))
        paper = {"top1": top1, "params": params} if top1 is not None else {}
        rows.append(Row("reduction", f"r = {r}", f"se_resnet{depth}", dict(_DEFAULT_OPTIONS), r, paper))
    return rows


def _variants(depth=20, tables=tuple(VARIANT_TABLES), **_) -> list[Row]:
    rows = []
    for table in tables:
        if table not in VARIANT_TABLES:
            raise UsageError(f"unknown variant table {table!r}; valid: {', '.join(VARIANT_TABLES)}")
        for label, change, paper in VARIANT_TABLES[table]:
            rows.append(Row(table, label, f"se_resnet{depth}", {**_DEFAULT_OPTIONS, **change}, paper=paper))
    return rows


EXPERIMENTS: dict[str, tuple[str, Callable[..., list[Row]]]] = {
    "se-vs-plain": ("ResNet vs SE-ResNet under one recipe (paper Table 2)", _se_vs_plain),
    "reduction": ("Reduction ratio r (paper Table 10)", _reduction),
    "variants": ("Squeeze, gate and placement variants (paper Tables 11, 12, 14, 15)", _variants),
}


def experiment_rows(name: str, **choices) -> list[Row]:
    """The rows of experiment ``name``; ``choices``: ``depths``, ``depth``, ``ratios``, ``tables``."""
    if name not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    from sescratch.models import CIFAR_DEPTHS

    given = [("depths", d) for d in choices.get("depths") or ()]  # se-vs-plain
    given += [("depth", choices["depth"])] if choices.get("depth") is not None else []  # the others
    for key, d in given:
        if d not in CIFAR_DEPTHS:  # resnet18/50 exist, but as ImageNet models without a width
            raise UsageError(f"experiment {name}: --{key} {d} is not a CIFAR ResNet depth; "
                             f"valid: {', '.join(map(str, CIFAR_DEPTHS))}")
    return EXPERIMENTS[name][1](**choices)


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
        parts += [f"{k}_{v}" for k, v in sorted(row.options.items()) if _DEFAULT_OPTIONS.get(k) != v]
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
    plan = [(row, cell_config(row, seed, budget, cells_dir)) for row in rows for seed in budget.seeds]
    unique = {}  # one training per cell, listed under the first row that needs it
    for row, c in plan:
        unique.setdefault(c.out_dir, (row, c))
    for row, c in unique.values():  # every cell checked before the first one trains
        try:
            c.validate()
        except UsageError as exc:
            raise UsageError(f"experiment {name}, {row.table} / {row.label}: {exc}") from None
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
    report.update(interrupted=interrupted, command=command)
    if not dry_run:
        write_report(report, out)
    return report
