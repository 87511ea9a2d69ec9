"""Faults under ``mpirun -n 2``: a killed rank, a hung rank, a NaN on one rank; never a hang."""
import time

import pytest

from sescratch.train import load_checkpoint
from tests.distributed.mpirun import TINY, max_relative_difference, needs_mpi, train, weights

pytestmark = [needs_mpi, pytest.mark.slow]


def faulty(fault: str, out, *args: str):
    """A 2-rank run with a test-only fault (sescratch.train.distributed.FAULT_ENV); (result, seconds)."""
    import os

    os.environ["SESCRATCH_TEST_FAULT"] = fault
    try:
        start = time.monotonic()
        done = train(2, *TINY, "--out", str(out), "--comm-timeout", "5", *args, check=False, timeout=180)
        return done, time.monotonic() - start
    finally:
        del os.environ["SESCRATCH_TEST_FAULT"]


def test_killed_rank_ends_the_job_and_the_run_resumes_exactly(tmp_path):
    out, straight = tmp_path / "killed", tmp_path / "straight"
    # rank 1 kills itself (SIGKILL) in its 6th step: epoch 2, batch 2; rank 0 saves every step
    done, _ = faulty("kill:1:6", out, "--epochs", "2", "--sync-bn", "--save-every", "1")
    assert done.returncode != 0
    assert "signal 9" in done.stdout + done.stderr
    ckpt = load_checkpoint(out / "last.npz")  # intact: written atomically by rank 0 alone
    assert (ckpt.epoch, ckpt.meta["iteration"]) in ((1, 0), (1, 1))
    resumed = train(2, *TINY, "--epochs", "2", "--out", str(out), "--resume")
    assert "resuming after epoch 1" in resumed.stdout
    train(0, *TINY, "--epochs", "2", "--out", str(straight))
    assert max_relative_difference(weights(out / "last.npz"), weights(straight / "last.npz")) <= 1e-9


def test_hung_rank_times_out_and_aborts_the_job(tmp_path):
    done, seconds = faulty("hang:1:2", tmp_path / "hung", "--epochs", "1")
    assert done.returncode != 0
    assert "rank 0/2: allreduce #2" in done.stderr and "did not complete within 5 s" in done.stderr
    assert seconds < 90  # 5 s of timeout plus start-up, never a hang


def test_nan_on_one_rank_stops_every_rank(tmp_path):
    done, _ = faulty("nan:1:6", tmp_path / "nan", "--epochs", "2")
    assert done.returncode != 0
    # every rank stops at the same step; the first to report ends the job (MPI_Abort)
    assert "training diverged: the loss became NaN or infinite on a rank at epoch 2, batch 2" in done.stderr
    assert load_checkpoint(tmp_path / "nan" / "last.npz").epoch == 1  # the last good one is kept


def test_mismatched_configurations_are_refused_at_start(tmp_path):
    """Rank 1 runs with another --lr (an MPMD command line): both ranks refuse to start."""
    import subprocess

    from tests.distributed.mpirun import CLI, env

    args = TINY + ["--epochs", "1", "--out", str(tmp_path / "mismatch"), "--distributed"]
    command = (["mpirun", "--oversubscribe", "-n", "1"] + CLI + args + [":", "-n", "1"] + CLI + args
               + ["--lr", "0.07"])
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env())
    assert done.returncode != 0
    assert "ranks [1] have a configuration or training data different from rank 0's" in done.stderr


def test_sigint_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    done, _ = faulty("int:1:6", tmp_path / "int", "--epochs", "2")
    assert done.returncode != 0  # 130 from every rank
    assert "interrupted: saved" in done.stdout and "(epoch 2, batch 2/4)" in done.stdout
    ckpt = load_checkpoint(tmp_path / "int" / "last.npz")
    assert (ckpt.epoch, ckpt.meta["iteration"]) == (1, 2)


def test_an_error_on_one_rank_ends_the_job_at_once(tmp_path):
    """Rank 0 refuses an --out holding an earlier run: rank 1 must not wait for --comm-timeout."""
    out = tmp_path / "taken"
    train(0, *TINY, "--epochs", "1", "--out", str(out))
    start = time.monotonic()
    done = train(2, *TINY, "--epochs", "1", "--out", str(out), check=False, timeout=120)
    assert done.returncode != 0 and "error on rank 0/2: --out" in done.stderr
    assert time.monotonic() - start < 60  # the default --comm-timeout is 600 s


@pytest.mark.parametrize("sync_bn", [True, False])
def test_a_resume_in_mid_epoch_reports_and_keeps_what_every_rank_did(tmp_path, sync_bn):
    """Stopped in epoch 2 and resumed on 2 ranks: epoch 2's train figures count every image once
    (the checkpoint holds all ranks' counts, not rank 0's) and, without sync BN, the running
    statistics hold every rank's batches (averaged before the mid-epoch save)."""
    extra = ["--sync-bn"] if sync_bn else []
    out, straight = tmp_path / "stopped", tmp_path / "straight"
    done, _ = faulty("int:1:6", out, "--epochs", "2", *extra)
    assert done.returncode != 0 and load_checkpoint(out / "last.npz").meta["partial"]["seen"] == 50
    train(2, *TINY, "--epochs", "2", "--out", str(out), "--resume")
    train(2, *TINY, "--epochs", "2", "--out", str(straight), *extra)
    resumed, uninterrupted = (load_checkpoint(d / "last.npz").meta["history"][-1] for d in (out, straight))
    for key in ("train_loss", "train_top1_error", "train_top5_error", "test_loss", "test_top1_error"):
        assert resumed[key] == pytest.approx(uninterrupted[key], rel=1e-9, abs=1e-12), key
    assert max_relative_difference(weights(out / "last.npz"), weights(straight / "last.npz")) <= 1e-9


def test_ranks_given_different_weights_start_from_rank_0s(tmp_path):
    """--weights naming another file on rank 1 (an MPMD command line, or one path holding other
    files on two machines): every rank starts from rank 0's weights."""
    import subprocess

    from tests.distributed.mpirun import CLI, env

    first, second = tmp_path / "first", tmp_path / "second"
    train(0, *TINY, "--epochs", "1", "--out", str(first))
    train(0, *TINY, "--epochs", "1", "--out", str(second), "--lr", "0.2")
    runs = {}
    for name, other in (("same", first), ("mixed", second)):
        args = TINY + ["--epochs", "1", "--out", str(tmp_path / name), "--distributed", "--sync-bn"]
        command = (["mpirun", "--oversubscribe", "-n", "1"] + CLI + args + ["--weights", str(first / "last.npz"),
                   ":", "-n", "1"] + CLI + args + ["--weights", str(other / "last.npz")])
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env())
        assert done.returncode == 0, done.stderr
        runs[name] = weights(tmp_path / name / "last.npz")
    assert max_relative_difference(runs["same"], runs["mixed"]) == 0.0


def test_a_shard_too_small_for_per_rank_batch_norm_is_refused_at_start(tmp_path):
    """Without sync BN, 103 images in batches of 50 leave a rank 1 image of the last batch, and
    SE-VGG's last BN layers normalise 1x1 maps: refused before any training, not at the epoch's
    last batch; with --sync-bn the same run trains."""
    args = [*TINY, "--subset", "103", "--batch-size", "50", "--model", "se_vgg16_bn_cifar", "--epochs", "1"]
    done = train(2, *args, "--out", str(tmp_path / "per-rank"), check=False, timeout=180)
    assert done.returncode != 0
    assert ("without --sync-bn: each rank normalises its own share of a batch, and --batch-size 50 over "
            "103 images leaves a rank 1 image(s) of a batch") in done.stderr
    assert not (tmp_path / "per-rank" / "last.npz").exists()
    train(2, *args, "--out", str(tmp_path / "synced"), "--sync-bn")


def test_notes_on_stderr_come_from_rank_0_only(tmp_path):
    """A resumed cosine run given more --epochs: the schedule's note once, not once per rank."""
    out = tmp_path / "cosine"
    train(2, *TINY, "--schedule", "cosine", "--epochs", "1", "--out", str(out))
    resumed = train(2, *TINY, "--schedule", "cosine", "--epochs", "2", "--out", str(out), "--resume")
    assert resumed.stderr.count("the cosine schedule is stretched") == 1, resumed.stderr


def test_distributed_outside_mpirun_says_it_trains_alone(tmp_path):
    alone = train(0, *TINY, "--epochs", "1", "--out", str(tmp_path / "alone"), "--distributed")
    assert "note: --distributed outside mpirun: one process trains the whole batch" in alone.stderr
    one_rank = train(1, *TINY, "--epochs", "1", "--out", str(tmp_path / "one-rank"))  # mpirun -n 1
    assert "outside mpirun" not in one_rank.stderr
