"""One run per directory, checked before any work: the lock, a fresh run over an old one, bad --out."""
import errno
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from sescratch.cli import main
from sescratch.io import atomic_write_text
from sescratch.train import CheckpointWriteError, TrainConfig, fit, load_checkpoint
from sescratch.train import checkpoint as checkpoint_module
from sescratch.train.rundir import RunLock
from tests.reliability.conftest import KILLED, ROOT, TINY, run_cli

TINY_API = dict(model="se_resnet20", model_options={"width": 2}, reduction=2, dataset="synthetic",
                subset=64, test_subset=20, epochs=2, batch_size=16, backend="numpy", progress=False)


def test_a_second_run_into_a_locked_directory_is_refused_naming_the_pid(tmp_path):
    # item 3: this test process holds the lock; a `sescratch train` into the directory refuses
    out = tmp_path / "run"
    out.mkdir()
    lock = RunLock(out).acquire()
    try:
        proc = run_cli("train", *TINY, "--out", out)
    finally:
        lock.release()
    assert proc.returncode == 2
    assert f"in use by another run (PID {os.getpid()})" in proc.stderr
    assert "Traceback" not in proc.stderr and not (out / "last.npz").exists()


@pytest.mark.slow  # two subprocesses
def test_two_concurrent_runs_then_kill_9_and_resume(tmp_path):
    out = tmp_path / "run"
    args = [a if a != "3" else "200" for a in TINY]  # --epochs 200: still running when checked
    first = subprocess.Popen([sys.executable, "-m", "sescratch.cli", "train", *args, "--out", str(out)],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "last.npz").exists():  # the first run holds the lock and has written
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        second = run_cli("train", *TINY, "--out", out, "--overwrite")
        assert second.returncode == 2, second.stderr
        assert f"in use by another run (PID {first.pid})" in second.stderr
    finally:
        first.kill()  # kill -9: the lock file stays behind, naming a dead PID
        first.wait()
    assert first.returncode == KILLED
    assert (out / ".lock").read_text().strip() == str(first.pid)
    resumed = run_cli("train", "--out", out, "--resume", "--epochs", "2", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr  # the stale lock does not block --resume
    assert load_checkpoint(out / "last.npz").epoch == 2


def test_a_stale_lock_file_does_not_block(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("999999\n")  # left by a process that no longer exists
    result = fit(TrainConfig(**TINY_API, out_dir=str(out)))
    assert result.status == "completed"
    result = fit(TrainConfig(**{**TINY_API, "epochs": 3}, out_dir=str(out), resume=True))
    assert len(result.history) == 3


def test_concurrent_writers_never_collide_on_temporary_names(tmp_path):
    # item 3: 4 threads x 150 atomic writes of one file: every write succeeds, the file is whole
    target, errors = tmp_path / "metrics.jsonl", []

    def writer(k):
        for i in range(150):
            try:
                atomic_write_text(target, f"{k} {i}\n" * 50)
            except OSError as exc:  # pragma: no cover - what the issue saw
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = target.read_text().splitlines()
    assert len(lines) == 50 and len(set(lines)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


STRESS = """
import sys
from sescratch.io import atomic_write_text
for i in range(300):
    atomic_write_text(sys.argv[1], (sys.argv[2] + "\\n") * 200)
"""


def test_two_processes_writing_one_file_never_fail(tmp_path):
    # item 3: the two-process stress test (a fixed .tmp name made 1,284 of 3,000 fail)
    target = tmp_path / "metrics.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", STRESS, str(target), tag], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert set(target.read_text().splitlines()) in ({"a"}, {"b"})
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


def test_a_fresh_run_over_an_earlier_one_needs_overwrite(tmp_path, capsys):
    # item 6: a fresh run must not wipe an earlier run's files
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    capsys.readouterr()
    assert main(["train", *TINY, "--epochs", "1", "--lr", "0.2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds an earlier run" in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")} == before
    assert main(["train", *TINY, "--epochs", "1", "--lr", "0.2", "--out", str(out), "--overwrite"]) == 0
    assert load_checkpoint(out / "last.npz").config["lr"] == 0.2
    assert main(["train", "--out", str(out), "--resume", "--overwrite"]) == 2


def test_overwrite_keeps_the_earlier_run_until_the_new_one_passes_its_checks(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    capsys.readouterr()
    for bad in (["--pad-to", "4"], ["--dataset", "mnist", "--no-download", "--data-dir", str(tmp_path)]):
        assert main(["train", *TINY, "--epochs", "1", *bad, "--out", str(out), "--overwrite"]) in (1, 2)
        assert "error" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")} == before
    # a run begun with --overwrite resumes like any other (the flag said how it began)
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out), "--overwrite"]) == 0
    assert "removed the earlier run's last.npz" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert load_checkpoint(out / "last.npz").epoch == 2


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    # item 5
    path = tmp_path / "file"
    path.write_text("x")
    assert main(["train", *TINY, "--out", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"--out {path}: exists and is not a directory" in err and "Traceback" not in err


def test_unwritable_out_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    # item 5: a read-only --out fails at the start, not after an epoch (simulated: we run as root)
    import sescratch.train.rundir as rundir

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(rundir.tempfile, "mkstemp", read_only)
    loaded = []
    monkeypatch.setattr("sescratch.train.trainer.load_dataset", lambda *a, **k: loaded.append(1))
    assert main(["train", *TINY, "--out", str(tmp_path / "ro")]) == 2
    assert "cannot write there (Read-only file system)" in capsys.readouterr().err
    assert loaded == []  # refused before the data was even loaded


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only dirs")
def test_read_only_directory_for_real(tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert main(["train", *TINY, "--out", str(out)]) == 2
        assert "cannot write there" in capsys.readouterr().err
    finally:
        out.chmod(0o700)


def test_a_full_disk_while_saving_says_so_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    # item 5: the second epoch's last.npz hits ENOSPC
    out = tmp_path / "run"
    real_savez, calls = np.savez, []

    def savez(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module.np, "savez", savez)
    with pytest.raises(CheckpointWriteError, match="last.npz: the disk is full; the previous last.npz is kept"):
        fit(TrainConfig(**TINY_API, out_dir=str(out)))
    assert load_checkpoint(out / "last.npz").epoch == 1  # intact, resumable
    assert not list(out.glob(".*.tmp"))
    calls.clear()
    monkeypatch.setattr(checkpoint_module.np, "savez", savez)
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "the disk is full" in err and "Traceback" not in err


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_mid_epoch_save_never_writes_weights_that_are_not_finite(tmp_path, capsys):
    # epoch 2's learning rate (0.05 * 1e40) overflows float32: the first step makes the weights
    # infinite while the loss that step reported was finite; --save-every 1 then comes next
    out = tmp_path / "run"
    code = main(["train", *TINY, "--epochs", "2", "--schedule", "step", "--step-size", "1", "--gamma", "1e40",
                 "--save-every", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "conv1.weight became NaN or infinite during epoch 2, before batch 2" in err
    assert f"the last good checkpoint {out / 'last.npz'} (after epoch 1) is kept" in err
    assert load_checkpoint(out / "last.npz").epoch == 1  # finite, resumable
