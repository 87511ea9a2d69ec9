"""The trainer: history and files, checkpoints, bit-exact resume, Ctrl-C and divergence."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sescratch.errors import DataError, UsageError
from sescratch.train import Trainer, TrainingDiverged, fit, load_checkpoint, save_checkpoint
from tests.helpers import assert_same_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def test_fit_returns_history_and_writes_files(tiny_config):
    config = tiny_config(epochs=2)
    result = fit(config)
    assert result.status == "completed" and len(result.history) == 2
    row = result.history[-1]
    for key in ("epoch", "lr", "train_loss", "train_top1_error", "train_top5_error", "test_loss",
                "test_top1_error", "test_top5_error", "test_accuracy", "epoch_time_s",
                "train_images_per_s"):
        assert key in row
    assert 0 <= row["test_top5_error"] <= row["test_top1_error"] <= 1
    out = Path(config.out_dir)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,lr,train_loss") and len(csv_lines) == 3
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = load_checkpoint(out / "last.npz")
    assert ckpt.epoch == 2 and ckpt.config["model"] == "se_resnet20"
    assert set(ckpt.rng_state) >= {"bit_generator", "state"}
    assert (out / "best.npz").exists()
    assert result.best["epoch"] in (1, 2)


@pytest.mark.slow  # four epochs on 256 images
def test_learns_the_synthetic_task(tiny_config):
    config = tiny_config(epochs=4, lr=0.1, augment=False,
                         dataset_options={"n_train": 256, "n_test": 100, "size": 8, "grid": 2})
    result = fit(config)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["test_top1_error"] < 0.6


def test_checkpoint_holds_no_pickles_and_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    state = dict(model_state={"w": np.ones((2, 2), np.float32)}, optim_state={"lr": np.array(0.1)},
                 rng_state={"state": {"state": 2**100}}, config={"a": 1}, meta={"epoch": 1})
    save_checkpoint(path, **state)
    with np.load(path, allow_pickle=False) as archive:  # every entry loads without pickle
        assert all(archive[k].dtype != object for k in archive.files)
        assert json.loads(str(archive["rng_state"][()])) == {"state": {"state": 2**100}}
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, **{**state, "meta": {"epoch": 2}})
    assert path.read_bytes() == before  # the old checkpoint is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]  # no temporary left behind


def test_corrupt_or_missing_checkpoint_says_which_and_why(tmp_path):
    with pytest.raises(DataError, match="missing.npz: file not found"):
        load_checkpoint(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.npz: corrupt or not an .npz"):
        load_checkpoint(bad)
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    with pytest.raises(DataError, match="not a sescratch checkpoint"):
        load_checkpoint(tmp_path / "other.npz")


KILL_SCRIPT = """
import os, signal, sys
from sescratch.train import TrainConfig, fit

config = TrainConfig.from_dict({config})

def kill_after(trainer, row):
    if row["epoch"] == {k}:
        os.kill(os.getpid(), signal.SIGKILL)

fit(config, callbacks=(kill_after,))
"""


@pytest.mark.slow  # a subprocess that imports and compiles everything
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_resume_after_sigkill_is_bit_exact(tiny_config, backend):
    killed = tiny_config("killed", backend=backend)
    script = KILL_SCRIPT.format(config=repr(killed.to_dict()), k=1)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    out = Path(killed.out_dir)
    assert load_checkpoint(out / "last.npz").epoch == 1
    resumed = fit(tiny_config("killed", backend=backend, resume=True))
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    straight = fit(tiny_config("straight", backend=backend))
    assert_same_checkpoint(out / "last.npz", Path(straight.out_dir) / "last.npz")
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3  # no duplicated rows


@pytest.mark.parametrize("dropout", [pytest.param(0.0, marks=pytest.mark.slow), 0.3])
def test_ctrl_c_mid_epoch_saves_and_resumes_exactly(tiny_config, monkeypatch, dropout):
    model = {"model_options": {"width": 4, "dropout": dropout}}
    config = tiny_config("interrupted", augment=True, **model)
    trainer = Trainer(config)
    calls = {"n": 0}
    original = trainer.train_transform

    def transform_then_ctrl_c(x, rng):
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 2, second batch
            os.kill(os.getpid(), signal.SIGINT)
        return original(x, rng)

    trainer.train_transform = transform_then_ctrl_c
    result = trainer.fit()
    assert result.status == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    ckpt = load_checkpoint(Path(config.out_dir) / "last.npz")
    assert ckpt.epoch == 1 and ckpt.meta["iteration"] == 2
    resumed = fit(tiny_config("interrupted", augment=True, resume=True, **model))
    assert resumed.status == "completed" and len(resumed.history) == 3
    straight = fit(tiny_config("straight", augment=True, **model))
    assert_same_checkpoint(Path(config.out_dir) / "last.npz", Path(straight.out_dir) / "last.npz")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_config):
    # lr 0.05 for epoch 1, then 5e30: the loss becomes NaN/inf during epoch 2
    config = tiny_config("nan", schedule="step", step_size=1, gamma=1e32)
    with pytest.raises(TrainingDiverged, match=r"training diverged: loss became (nan|inf) at epoch 2"):
        fit(config)
    out = Path(config.out_dir)
    ckpt = load_checkpoint(out / "last.npz")
    assert ckpt.epoch == 1
    assert all(np.isfinite(v).all() for v in ckpt.model_state.values())
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_resume_checks_the_configuration(tiny_config):
    with pytest.raises(UsageError, match="no checkpoint to resume from"):
        Trainer(tiny_config("fresh", resume=True))
    fit(tiny_config("changed", epochs=1))
    with pytest.raises(UsageError, match="configuration differs.*lr: 0.05 -> 0.2"):
        Trainer(tiny_config("changed", epochs=2, lr=0.2, resume=True))


def test_bad_configuration_is_a_usage_error(tiny_config):
    with pytest.raises(UsageError, match="unknown model 'se_resnet21'; valid names: resnet20"):
        Trainer(tiny_config(model="se_resnet21"))
    with pytest.raises(UsageError, match=r"batch_size=0: expected an integer in \[1, "):
        Trainer(tiny_config(batch_size=0))


@pytest.mark.parametrize("unit", ["epoch", "iteration"])
def test_schedule_is_applied_per_epoch_or_per_iteration(tiny_config, unit):
    from sescratch.train import Cosine

    result = fit(tiny_config(unit, epochs=2, schedule="cosine", schedule_unit=unit))
    cosine, n_iter = Cosine(0.05, 2), 3  # 96 images in batches of 32
    last_t = [0, 1] if unit == "epoch" else [(n_iter - 1) / n_iter, 1 + (n_iter - 1) / n_iter]
    assert [row["lr"] for row in result.history] == [cosine(t) for t in last_t]
