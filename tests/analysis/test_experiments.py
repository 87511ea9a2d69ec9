"""Experiments end to end with a tiny budget: files, aggregation, resuming, shared cells."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sescratch.analysis import experiments as ex
from sescratch.analysis import experiment_rows, run_experiment
from sescratch.errors import UsageError
from sescratch.train import TrainingDiverged

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def count_trainings(monkeypatch):
    """Count the Trainer.fit calls made through the experiments module."""
    calls = []

    class Counting(ex.Trainer):
        def fit(self):
            calls.append(self.config.out_dir)
            return super().fit()

    monkeypatch.setattr(ex, "Trainer", Counting)
    return calls


def test_se_vs_plain_writes_json_md_png_and_aggregates(tmp_path, tiny_budget, count_trainings):
    report = run_experiment("se-vs-plain", tiny_budget, tmp_path, depths=(20,), log=lambda s: None)
    assert len(count_trainings) == 4  # 2 models x 2 seeds
    for suffix in (".json", ".md", ".png", "_curves.png"):
        assert (tmp_path / f"se-vs-plain{suffix}").exists()
    assert (tmp_path / "se-vs-plain.png").read_bytes()[:8] == PNG
    stored = json.loads((tmp_path / "se-vs-plain.json").read_text())
    assert stored["complete"] and [r["label"] for r in stored["rows"]] == ["ResNet-20", "SE-ResNet-20"]
    plain, se = report["rows"]
    assert se["params"] > plain["params"] and se["se_macs"] > 0 == plain["se_macs"]
    for row in report["rows"]:
        assert row["n"] == 2 and row["seeds"] == [0, 1]
        assert row["mean"] == pytest.approx(np.mean(row["top1_errors"]))
        assert row["std"] == pytest.approx(np.std(row["top1_errors"], ddof=1))
    cells = sorted(p.name for p in (tmp_path / "cells").iterdir())
    assert len(cells) == 4 and all((tmp_path / "cells" / c / "result.json").exists() for c in cells)
    md = (tmp_path / "se-vs-plain.md").read_text()
    assert "| depth 20 | SE-ResNet-20 |" in md and "(n=2)" in md and "23.29" in md


def test_rerun_skips_finished_cells(tmp_path, tiny_budget, count_trainings):
    budget = replace(tiny_budget, seeds=(0,))
    run_experiment("se-vs-plain", budget, tmp_path, depths=(20,), log=lambda s: None)
    results = sorted((tmp_path / "cells").glob("*/result.json"))
    mtimes = [p.stat().st_mtime_ns for p in results]
    count_trainings.clear()
    lines = []
    report = run_experiment("se-vs-plain", budget, tmp_path, depths=(20,), log=lines.append)
    assert count_trainings == []
    assert [p.stat().st_mtime_ns for p in results] == mtimes
    assert all(": done (" in line for line in lines) and report["complete"]
    # a second seed trains only the new cells
    run_experiment("se-vs-plain", replace(budget, seeds=(0, 1)), tmp_path, depths=(20,), log=lambda s: None)
    assert len(count_trainings) == 2 and all("seed1" in p for p in count_trainings)


def test_cells_are_shared_between_experiments_and_tables(tmp_path, tiny_budget, count_trainings):
    budget = replace(tiny_budget, seeds=(0,))
    run_experiment("se-vs-plain", budget, tmp_path, depths=(20,), log=lambda s: None)
    count_trainings.clear()
    report = run_experiment("reduction", budget, tmp_path, ratios=(4, 16), log=lambda s: None)
    assert len(count_trainings) == 1 and "-r4-" in count_trainings[0]  # no SE and r=16 reused
    assert [r["label"] for r in report["rows"]] == ["no SE", "r = 4", "r = 16"]
    assert report["rows"][1]["params"] > report["rows"][2]["params"]  # smaller r, more parameters
    count_trainings.clear()
    report = run_experiment("variants", budget, tmp_path, tables=("squeeze", "after_3x3"), log=lambda s: None)
    trained = sorted(Path(p).name.rsplit("-", 2)[0] for p in count_trainings)
    assert trained == ["se_resnet20-r16-placement_after_3x3", "se_resnet20-r16-squeeze_max"]
    assert [r["table"] for r in report["rows"]] == ["squeeze", "squeeze", "after_3x3", "after_3x3"]
    assert report["rows"][0]["top1_errors"] == report["rows"][2]["top1_errors"]  # the same cell


def test_interrupted_cell_resumes_from_its_checkpoint(tmp_path, tiny_budget):
    budget = replace(tiny_budget, epochs=2, seeds=(0,))
    row = experiment_rows("se-vs-plain", depths=(20,))[1]
    config = ex.cell_config(row, 0, budget, tmp_path / "cells")

    class Killed(Exception):
        pass

    def killed_after_first_epoch(trainer, _row):  # callbacks run after last.npz is written
        raise Killed

    with pytest.raises(Killed):
        ex.Trainer(config, callbacks=(killed_after_first_epoch,)).fit()
    assert not (Path(config.out_dir) / "result.json").exists()
    lines = []
    result = ex.run_cell(row, config, log=lines.append)
    assert result["status"] == "completed" and len(result["history"]) == 2
    assert [line.split(":")[0].strip() for line in lines] == ["epoch 2/2"]  # only the second epoch ran


def test_diverged_cell_is_recorded_not_retried(tmp_path, tiny_budget, monkeypatch):
    def diverge(self):
        raise TrainingDiverged("training diverged: loss became nan")

    monkeypatch.setattr(ex.Trainer, "fit", diverge)
    budget = replace(tiny_budget, seeds=(0,))
    report = run_experiment("se-vs-plain", budget, tmp_path, depths=(20,), log=lambda s: None)
    assert all(r["failed"] == [0] and r["mean"] is None for r in report["rows"])
    assert "diverged" in (tmp_path / "se-vs-plain.md").read_text()
    monkeypatch.setattr(ex.Trainer, "fit", lambda self: pytest.fail("retrained a diverged cell"))
    run_experiment("se-vs-plain", budget, tmp_path, depths=(20,), log=lambda s: None)


def test_dry_run_trains_nothing(tmp_path, tiny_budget, count_trainings):
    lines = []
    report = run_experiment("reduction", tiny_budget, tmp_path, dry_run=True, log=lines.append)
    assert count_trainings == [] and not report["complete"]
    note, *cells = lines  # width 4: r = 16 and r = 32 are one network, trained once per seed
    assert note.startswith("note: r = 16 and r = 32 build the same network at width 4")
    assert len(cells) == 10 and all(line.endswith(")") and "to run" in line for line in cells)
    assert not (tmp_path / "reduction.json").exists()


def test_ratios_that_round_to_one_network_share_its_cells(tmp_path, tiny_budget, count_trainings):
    from sescratch.analysis.tables import same_networks, se_widths

    rows = experiment_rows("reduction", ratios=(8, 16, 32))
    assert se_widths(rows[0], 4) == () and se_widths(rows[2], 4) == se_widths(rows[3], 4) == (1,) * 9
    assert se_widths(rows[1], 4) == (1,) * 6 + (2,) * 3  # r = 8: stages of 4, 8, 16 channels
    assert [[r.label for r in g] for g in same_networks(rows, 4)] == [["r = 16", "r = 32"]]
    assert same_networks(rows, 16) == []  # 16, 32, 64 channels: 1, 2, 4 against 1, 1, 2 units
    budget = replace(tiny_budget, seeds=(0,))
    lines = []
    report = run_experiment("reduction", budget, tmp_path, ratios=(16, 32), log=lines.append)
    assert len(count_trainings) == 2 and not any("-r32-" in p for p in count_trainings)
    r16, r32 = report["rows"][1:]
    assert r32["label"] == "r = 32" and r32["reduction"] == 32 and r32["n"] == 1
    assert r32["top1_errors"] == r16["top1_errors"] and r32["params"] == r16["params"]
    assert report["notes"] == [lines[0][len("note: "):]]
    assert "Note: r = 16 and r = 32 build the same network at width 4" in (tmp_path / "reduction.md").read_text()


def test_every_cell_is_checked_before_any_trains(tmp_path, tiny_budget, count_trainings):
    with pytest.raises(UsageError, match="se-vs-plain: --depths 21 is not a CIFAR ResNet depth"):
        run_experiment("se-vs-plain", tiny_budget, tmp_path, depths=(20, 21), log=lambda line: None)
    with pytest.raises(UsageError, match="r = 0: invalid training configuration: reduction=0"):
        run_experiment("reduction", tiny_budget, tmp_path, ratios=(4, 0), dry_run=True, log=lambda line: None)
    with pytest.raises(UsageError, match=r"seed\(s\) 3 listed more than once in \[3, 1, 3\]"):
        run_experiment("reduction", replace(tiny_budget, seeds=(3, 1, 3)), tmp_path, log=lambda line: None)
    assert count_trainings == []


def test_rows_of_each_experiment():
    ratios = [f"r = {r}" for r in (2, 4, 8, 16, 32)]
    assert [r.label for r in experiment_rows("reduction")] == ["no SE"] + ratios
    models = ["resnet20", "se_resnet20", "resnet56", "se_resnet56"]
    assert [r.model for r in experiment_rows("se-vs-plain")] == models
    variants = experiment_rows("variants")
    assert [r.table for r in variants].count("placement") == 4
    assert {r.options["placement"] for r in variants} == {"standard", "pre", "post", "identity", "after_3x3"}
    with pytest.raises(UsageError, match="unknown variant table 'nope'"):
        experiment_rows("variants", tables=("nope",))
    with pytest.raises(UsageError, match="unknown experiment"):
        experiment_rows("table-99")


def test_cell_key_is_stable_and_depends_on_the_recipe(tiny_budget):
    row = experiment_rows("variants", tables=("gate",))[1]  # tanh
    a = ex.cell_config(row, 3, tiny_budget, "c")
    assert Path(a.out_dir).name.startswith("se_resnet20-r16-gate_tanh-seed3-")
    assert ex.cell_config(row, 3, tiny_budget, "c").out_dir == a.out_dir
    assert ex.cell_config(row, 3, replace(tiny_budget, backend="numba"), "c").out_dir == a.out_dir
    assert ex.cell_config(row, 3, replace(tiny_budget, epochs=2), "c").out_dir != a.out_dir
