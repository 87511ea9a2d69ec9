"""Helpers of the reliability suite: a seconds-long CLI run, in-process or in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sescratch.train import load_checkpoint
from tests.helpers import assert_same_checkpoint

ROOT = Path(__file__).resolve().parents[2]
# SE-ResNet-20 of width 2 on 64 synthetic 8x8 images: 4 iterations of 16 per epoch.
TINY = ["--model", "se_resnet20", "--model-option", "width=2", "--reduction", "2",
        "--dataset", "synthetic", "--subset", "64", "--test-subset", "20", "--epochs", "3",
        "--batch-size", "16", "--lr", "0.05", "--backend", "numpy", "--no-progress"]
KILLED = -9


def run_cli(*args, kill_after=None, timeout=120):
    """``python -m sescratch.cli ARGS`` in a subprocess; ``kill_after="last.npz:2"`` SIGKILLs it
    right after its 2nd write of last.npz (the test-only hook of sescratch.train.checkpoint)."""
    env = {k: v for k, v in os.environ.items() if k != "SESCRATCH_TEST_KILL_AFTER"}
    if kill_after:
        env["SESCRATCH_TEST_KILL_AFTER"] = kill_after
    return subprocess.run([sys.executable, "-m", "sescratch.cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_same_run(a: Path, b: Path, name="last.npz"):
    """Two run directories hold bit-identical checkpoints ``name`` and the same history."""
    assert_same_checkpoint(a / name, b / name)


def assert_consistent(out: Path):
    """The files of a run directory agree: best.npz is the epoch last.npz names, metrics match."""
    last = load_checkpoint(out / "last.npz")
    best = last.meta["best"]
    assert load_checkpoint(out / "best.npz").epoch == best["epoch"]
    history = last.meta["history"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == len(history)
    assert not list(out.glob(".*.tmp"))


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory):
    """The uninterrupted 3-epoch run every crashed-and-resumed run must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("straight") / "run"
    proc = run_cli("train", *TINY, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out
