"""The whole loop on CuPy: fit, Ctrl-C and resume bit-exactly, evaluate, ``sescratch eval``.

Skipped without CuPy and a GPU, like every CuPy test (``benchmarks/gpu_check.sh`` runs it on a
GPU machine and counts a skip there as a failure). A run on one GPU is deterministic: cuBLAS
and CuPy's reductions give the same bits for the same shapes on the same device, the max-pool
backward is a gather, dropout masks are drawn on the host; so an interrupted and resumed run
must end with exactly the checkpoint of a straight run. Against the CPU the numbers agree only
to rounding (another summation order), so that comparison has a tolerance.
"""
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from sescratch import backend
from sescratch.cli import main
from sescratch.train import Trainer, fit, load_checkpoint
from sescratch.train.evaluation import evaluate, load_for_evaluation
from tests.helpers import assert_same_checkpoint

pytestmark = pytest.mark.skipif(not backend.cupy_available(), reason="CuPy with a GPU is not available")

GPU_RUN = dict(backend="cupy", epochs=2, augment=True, model_options={"width": 4, "dropout": 0.3})


def _interrupted_at_batch(trainer, n):
    """Send SIGINT from inside the n-th call of the training transform (one call per batch)."""
    calls = {"n": 0}
    original = trainer.train_transform

    def transform_then_ctrl_c(x, rng):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return original(x, rng)

    trainer.train_transform = transform_then_ctrl_c


def test_fit_on_cupy_resumes_bit_exactly_and_evaluates(tiny_config, capsys):
    import cupy

    config = tiny_config("gpu", **GPU_RUN)
    trainer = Trainer(config)
    assert isinstance(trainer.model.parameters()[0].data, cupy.ndarray)
    _interrupted_at_batch(trainer, 5)  # epoch 2 (3 batches per epoch), its second batch
    assert trainer.fit().status == "interrupted"
    ckpt = load_checkpoint(Path(config.out_dir) / "last.npz")
    assert ckpt.epoch == 1 and ckpt.meta["iteration"] == 2

    resumed = fit(tiny_config("gpu", resume=True, **GPU_RUN))
    assert resumed.status == "completed" and [r["epoch"] for r in resumed.history] == [1, 2]
    straight = fit(tiny_config("gpu-straight", **GPU_RUN))
    assert_same_checkpoint(Path(config.out_dir) / "last.npz", Path(straight.out_dir) / "last.npz")

    row = resumed.history[-1]
    assert np.isfinite(row["train_loss"]) and 0 <= row["test_top1_error"] <= 1
    ev = load_for_evaluation(Path(config.out_dir) / "last.npz", backend="cupy")
    assert ev.device == "gpu"
    result = evaluate(ev.model, ev.data.x_test, ev.data.y_test, ev.transform,
                      num_classes=ev.data.num_classes, batch_size=config.eval_batch_size,
                      device=ev.device)
    assert result.top1_error == row["test_top1_error"]  # the trainer's evaluation, same batches
    assert result.loss == pytest.approx(row["test_loss"], rel=1e-12)

    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(Path(config.out_dir) / "last.npz"), "--backend", "cupy",
                 "--batch-size", str(config.eval_batch_size)]) == 0
    printed = capsys.readouterr().out
    assert f"top-1 error {100 * row['test_top1_error']:.2f}%" in printed, printed
    assert (Path(config.out_dir) / f"confusion_{config.dataset}.png").exists()


def test_a_gpu_run_matches_the_cpu_run_to_rounding(tiny_config):
    gpu = fit(tiny_config("on-gpu", backend="cupy", epochs=1))
    cpu = fit(tiny_config("on-cpu", backend="numpy", epochs=1))
    for key in ("train_loss", "test_loss"):
        assert gpu.history[0][key] == pytest.approx(cpu.history[0][key], rel=1e-3), key
    a, b = load_checkpoint(Path(gpu.out_dir) / "last.npz"), load_checkpoint(Path(cpu.out_dir) / "last.npz")
    for name, value in a.model_state.items():
        err = np.abs(value - b.model_state[name]).max() / max(np.abs(b.model_state[name]).max(), 1e-6)
        assert err < 1e-3, (name, err)
