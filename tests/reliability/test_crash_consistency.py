"""kill -9 at the worst moments: the run directory stays consistent and resuming is bit-exact.

Each kill uses the test-only hook ``SESCRATCH_TEST_KILL_AFTER=NAME:K`` (the process SIGKILLs
itself right after its K-th write of NAME), so the crash lands exactly between two writes.
"""
import pytest

from sescratch.train import load_checkpoint
from tests.reliability.conftest import KILLED, TINY, assert_consistent, assert_same_run, run_cli

pytestmark = pytest.mark.slow  # subprocesses


def test_kill_between_last_and_best_is_repaired_on_resume(tmp_path, straight_run):
    # issue 16, item 1: last.npz (already naming the new best epoch) is written, best.npz not yet
    out = tmp_path / "run"
    proc = run_cli("train", *TINY, "--out", out, kill_after="last.npz:1")
    assert proc.returncode == KILLED, proc.stderr
    last = load_checkpoint(out / "last.npz")
    assert last.epoch == 1 and last.meta["best"]["epoch"] == 1
    assert not (out / "best.npz").exists()  # the crash left the directory inconsistent
    evaluated = run_cli("eval", "--checkpoint", out / "best.npz", "--backend", "numpy")
    assert evaluated.returncode == 0, evaluated.stderr  # eval repairs best.npz first
    assert "repaired" in evaluated.stderr and load_checkpoint(out / "best.npz").epoch == 1
    (out / "best.npz").write_bytes(b"damaged")  # unreadable: repaired as well
    resumed = run_cli("train", "--out", out, "--resume", "--epochs", "1", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "repaired" in resumed.stderr and "best.npz" in resumed.stderr
    assert_consistent(out)


def test_kill_before_a_later_best_leaves_no_stale_best(tmp_path, straight_run):
    # a kill right after the epoch-3 last.npz: best.npz must never stay at an older, worse epoch
    out = tmp_path / "run"
    proc = run_cli("train", *TINY, "--out", out, kill_after="last.npz:3")
    assert proc.returncode == KILLED, proc.stderr
    resumed = run_cli("train", "--out", out, "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert_consistent(out)
    assert_same_run(out, straight_run)
    assert_same_run(out, straight_run, "best.npz")


def test_kill_between_checkpoint_and_metrics_rewrites_the_metrics(tmp_path, straight_run):
    out = tmp_path / "run"
    proc = run_cli("train", *TINY, "--out", out, kill_after="best.npz:2")
    assert proc.returncode == KILLED, proc.stderr
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) < load_checkpoint(out / "last.npz").epoch  # the reports lag behind
    resumed = run_cli("train", "--out", out, "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert_consistent(out)
    assert_same_run(out, straight_run)


@pytest.mark.parametrize("save_every, writes, position", [
    (1, 1, (0, 1)), (1, 3, (0, 3)), (1, 4, (1, 0)), (1, 6, (1, 2)), (2, 3, (1, 2))])
def test_save_every_bounds_the_loss_and_resumes_bit_exactly(tmp_path, straight_run, save_every,
                                                            writes, position):
    # item 10: --save-every N also writes last.npz every N of an epoch's 4 iterations (the 4th is
    # the epoch's end); kill -9 right after the K-th write: at most N steps lost, resume bit-exact
    out = tmp_path / "run"
    proc = run_cli("train", *TINY, "--out", out, "--save-every", save_every,
                   kill_after=f"last.npz:{writes}")
    assert proc.returncode == KILLED, proc.stderr
    ckpt = load_checkpoint(out / "last.npz")
    assert (ckpt.epoch, ckpt.meta["iteration"]) == position
    resumed = run_cli("train", "--out", out, "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {position[0]}" in resumed.stdout
    assert_same_run(out, straight_run)
    assert_consistent(out)


def test_temporaries_of_killed_writes_are_removed(tmp_path):
    # item 7: a kill during a write leaves .last.npz.XXXX.tmp; the next run removes it
    out = tmp_path / "run"
    assert run_cli("train", *TINY, "--epochs", "1", "--out", out).returncode == 0
    debris = [out / ".last.npz.abc123.tmp", out / ".metrics.jsonl.x.tmp", out / ".best.npz.q.tmp",
              out / ".curves.png.av2ja9ew.png"]  # a figure's, as sescratch before 2026-12-04 named them
    for path in debris:
        path.write_bytes(b"\0" * 50_000)
    (out / "keep.tmp").write_text("not ours")
    resumed = run_cli("train", "--out", out, "--resume", "--epochs", "2", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "removed 4 temporary file(s)" in resumed.stderr
    assert not any(p.exists() for p in debris) and (out / "keep.tmp").exists()
