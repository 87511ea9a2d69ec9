"""Turn finished cells into an experiment's table: JSON, Markdown and PNG.

Every row reports the *final-epoch* test top-1 error (not the best epoch's, which would select on
the test set) as mean ± sample standard deviation over its seeds, the seeds' own values, and
the parameters and multiply-accumulates (MACs) of one forward pass from
:func:`sescratch.summary.summary`. Beside them: the paper's ImageNet number for the same row.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sescratch.io import atomic_write_text
from sescratch.plotting import figure, save_figure

__all__ = ["build_report", "write_report", "markdown_table", "plot_report", "plot_curves"]


def build_report(name: str, title: str, rows, plan, results: dict, budget) -> dict:
    """Aggregate the cells of ``plan`` (``[(row, config), ...]``) found in ``results`` (by out_dir)."""
    table = []
    for row in rows:
        cells = [results.get(c.out_dir) for r, c in plan if r == row]
        done = [c for c in cells if c is not None and c["status"] == "completed"]
        errors = [100 * c["test_top1_error"] for c in done]
        first = next((c for c in cells if c is not None), None)
        table.append({
            "table": row.table, "label": row.label, "model": row.model, "options": row.options,
            "reduction": row.reduction if row.model.startswith("se_") else None,
            "params": first and first["params"], "se_params": first and first["se_params"],
            "macs": first and first["macs"], "se_macs": first and first["se_macs"],
            "seeds": [c["seed"] for c in done], "top1_errors": errors,
            "top5_errors": [100 * c["test_top5_error"] for c in done],
            "best_top1_errors": [100 * c["best"]["test_top1_error"] for c in done],
            "mean": float(np.mean(errors)) if errors else None,
            "std": float(np.std(errors, ddof=1)) if len(errors) > 1 else None,
            "n": len(errors), "planned": len(cells),
            "failed": [c["seed"] for c in cells if c is not None and c["status"] != "completed"],
            "train_seconds": [c["train_seconds"] for c in done],
            "curves": [[h["test_top1_error"] for h in c["history"]] for c in done],
            "paper": row.paper,
        })
    complete = all(r["n"] + len(r["failed"]) == r["planned"] for r in table)
    any_cell = next((c for c in results.values() if c is not None), {})
    finished = sorted(c["finished"] for c in results.values() if c is not None and "finished" in c)
    return {"experiment": name, "title": title, "budget": _jsonable(asdict(budget)),
            "train_images": any_cell.get("train_images"), "test_images": any_cell.get("test_images"),
            "rows": table, "complete": complete, "cells": sorted(Path(c.out_dir).name for _, c in plan),
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "host": host_info(),
            "cells_finished": [finished[0], finished[-1]] if finished else None}


def host_info() -> dict:
    """What the numbers were measured on."""
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.system()}


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=list))


def _fmt_error(r: dict) -> str:
    if r["mean"] is None:
        return "not run" if not r["failed"] else "diverged"
    spread = f" ± {r['std']:.2f}" if r["std"] is not None else ""
    return f"{r['mean']:.2f}{spread} (n={r['n']})"


def _fmt_count(v) -> str:
    return "—" if v is None else f"{v:,}"


def markdown_table(report: dict) -> str:
    """The experiment as a Markdown table (one line per row) with the budget underneath."""
    lines = [f"### {report['title']}", "",
             "| table | row | params | MACs | SE MACs | top-1 error % (mean ± std) | seeds' errors % "
             "| paper ImageNet top-1 % |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in report["rows"]:
        paper = r["paper"].get("top1")
        paper_text = "—" if paper is None else f"{paper:.2f}"
        details = [r["paper"][k] for k in ("model", "params") if r["paper"].get(k)]
        if details:
            paper_text += f" ({', '.join(details)})"
        seeds = ", ".join(f"{e:.2f}" for e in r["top1_errors"]) or "—"
        lines.append(f"| {r['table']} | {r['label']} | {_fmt_count(r['params'])} | {_fmt_count(r['macs'])} "
                     f"| {_fmt_count(r['se_macs'])} | {_fmt_error(r)} | {seeds} | {paper_text} |")
    b = report["budget"]
    images = (f"{report['train_images']} training / {report['test_images']} test images"
              if report.get("train_images") else
              f"{b['subset'] or 'all'} training / {b['test_subset'] or 'all'} test images")
    span = report.get("cells_finished")
    when = f"Report written {report['date']}" + (f" (cells finished {span[0]} to {span[1]})" if span else "")
    lines += ["", f"Budget: {b['dataset']}, {images}, {b['epochs']} epochs, batch {b['batch_size']}, "
              f"lr {b['lr']} ({b['schedule']}), weight decay {b['weight_decay']}, augment {b['augment']}, "
              f"width {b['width']}, seeds {', '.join(map(str, b['seeds']))}. Final-epoch test error. "
              f"{when} on {report['host']['cpus']} CPUs ({report['host']['processor']})."]
    lines += [f"Note: {note}." for note in report.get("notes", ())]
    if not report["complete"]:
        lines.append("**Incomplete**: some cells have not run yet (rerun the command to resume).")
    return "\n".join(lines) + "\n"


def plot_report(report: dict, path: str | os.PathLike) -> Path:
    """One panel per table: each row's mean top-1 error ± std over seeds and each seed's value.

    The grey band is ±1 binomial standard error of a single run's error on the test set,
    ``sqrt(p (1 - p) / n_test)``: differences inside it are within the noise of one evaluation.
    """
    tables = list(dict.fromkeys(r["table"] for r in report["rows"]))
    n_test = report.get("test_images")
    fig, axes = figure(1, len(tables), figsize=(3.2 * len(tables) + 1, 3.9 if len(tables) > 1 else 4.4), squeeze=False)
    for ax, table in zip(axes[0], tables):
        rows = [r for r in report["rows"] if r["table"] == table]
        for i, r in enumerate(rows):
            if r["mean"] is None:
                continue
            if n_test:
                p = r["mean"] / 100
                se = 100 * np.sqrt(p * (1 - p) / n_test)
                ax.plot([i, i], [r["mean"] - se, r["mean"] + se], color="0.8", lw=8, solid_capstyle="butt",
                        label="±1 s.e. of one run (test set)" if i == 0 else None)
            ax.errorbar(i, r["mean"], yerr=r["std"] or 0.0, fmt="o", color="#3b5b92", capsize=5,
                        label="mean ± std over seeds" if i == 0 else None)
            ax.plot([i] * len(r["top1_errors"]), r["top1_errors"], "k.", ms=4,
                    label="each seed" if i == 0 else None)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_xticks(np.arange(len(rows)), [r["label"] for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set(title=table, ylabel="test top-1 error (%)")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    columns = 3 if len(tables) > 1 else 1
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=7, frameon=False)
    fig.suptitle(report["title"], fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if columns == 3 else 0.15, 1, 1))
    return save_figure(fig, path, dpi=90)


def plot_curves(report: dict, path: str | os.PathLike) -> Path:
    """Test top-1 error per epoch, mean over seeds, one line per row (the paper's Fig. 4 at our scale)."""
    fig, ax = figure(figsize=(5.5, 3.8))
    for r in report["rows"]:
        if not r["curves"]:
            continue
        length = min(len(c) for c in r["curves"])
        curve = 100 * np.mean([c[:length] for c in r["curves"]], axis=0)
        ax.plot(np.arange(1, length + 1), curve, marker="o", label=f"{r['label']} (n={r['n']})",
                linestyle="--" if r["model"].startswith("se_") else "-")
    ax.set(xlabel="epoch", ylabel="test top-1 error (%)",
           title="mean test top-1 error per epoch (cf. the paper's Fig. 4)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def write_report(report: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``<name>.json``, ``<name>.md``, ``<name>.png`` (and ``<name>_curves.png``) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = report["experiment"]
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md", "png": out / f"{name}.png",
             "curves": out / f"{name}_curves.png"}
    atomic_write_text(paths["json"], json.dumps(report, indent=1))
    atomic_write_text(paths["md"], markdown_table(report))
    plot_report(report, paths["png"])
    plot_curves(report, paths["curves"])
    return paths
