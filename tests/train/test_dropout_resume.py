"""All randomness of a run is owned by the run: with dropout on, kill -9 + ``--resume`` is the
uninterrupted run, bit for bit (the masks come from a generator of (seed, epoch, iteration))."""
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sescratch.cli import main
from sescratch.train import Trainer, fit, load_checkpoint

from tests.helpers import assert_same_checkpoint

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--model", "se_resnet20", "--model-option", "width=4", "--model-option", "dropout=0.3",
        "--reduction", "2", "--dataset", "synthetic", "--subset", "96", "--test-subset", "40",
        "--epochs", "3", "--batch-size", "32", "--lr", "0.05", "--crop-padding", "1", "--no-progress"]

KILL_SCRIPT = """
import os, signal
from sescratch.cli import build_parser
from sescratch.train import fit
from sescratch.train.cli import config_from_args

config = config_from_args(build_parser().parse_args({argv!r}))
assert config.model_options["dropout"] == 0.3

def kill_after(trainer, row):
    if row["epoch"] == 1:
        os.kill(os.getpid(), signal.SIGKILL)

fit(config, callbacks=(kill_after,))
"""


@pytest.mark.slow  # a subprocess that imports and compiles everything
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_resume_after_sigkill_with_dropout_is_bit_exact(tmp_path, backend):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    argv = ["train", *ARGS, "--backend", backend, "--out", str(killed)]
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILL_SCRIPT.format(argv=argv))],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_checkpoint(killed / "last.npz").epoch == 1
    assert main(["train", "--out", str(killed), "--resume"]) == 0  # the stored config, dropout too
    assert main(["train", *ARGS, "--backend", backend, "--out", str(straight)]) == 0
    assert load_checkpoint(killed / "last.npz").config["model_options"]["dropout"] == 0.3
    assert_same_checkpoint(killed / "last.npz", straight / "last.npz")


def test_dropout_masks_depend_on_seed_epoch_and_iteration_only(tiny_config):
    config = tiny_config("masks", model_options={"width": 4, "dropout": 0.3}, epochs=1)
    trainer = Trainer(config)
    first = trainer.dropout_rng().random(4)
    np.testing.assert_array_equal(first, Trainer(config).dropout_rng().random(4))  # a pure function
    trainer.iteration += 1
    assert not np.array_equal(first, trainer.dropout_rng().random(4))
    trainer.iteration, trainer.epoch = 0, 1
    assert not np.array_equal(first, trainer.dropout_rng().random(4))


def test_dropout_changes_the_training(tiny_config):
    on = fit(tiny_config("on", model_options={"width": 4, "dropout": 0.3}, epochs=1))
    off = fit(tiny_config("off", model_options={"width": 4, "dropout": 0.0}, epochs=1))
    assert on.history[0]["train_loss"] != off.history[0]["train_loss"]  # the masks are used
    reseeded = fit(tiny_config("reseeded", model_options={"width": 4, "dropout": 0.3}, epochs=1))
    assert reseeded.history[0]["train_loss"] == on.history[0]["train_loss"]
