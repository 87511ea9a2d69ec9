"""The run directory (``--out``): one run at a time, writable, and its files agreeing after a crash.

A run directory holds ``last.npz``, ``best.npz``, ``metrics.jsonl``, ``metrics.csv`` and
``curves.png``. Before a run does any work, :func:`prepare` checks that the directory is a
writable directory, takes its lock and refuses to start a fresh run over an earlier one unless
asked to (``--resume`` continues it, ``--overwrite`` replaces it). Then it removes what crashed
writes left behind (:func:`clean_temporaries`) and repairs ``best.npz`` (:func:`repair_best`).

* The lock (:class:`RunLock`) is ``OUT/.lock``, locked with ``fcntl.flock`` and holding the
  owner's PID. The kernel drops the lock when the process dies, even by ``kill -9``, so a
  stale lock file never blocks ``--resume``; a live owner is named in the refusal.
* Writes are atomic (:func:`sescratch.io.atomic_open`: a uniquely named temporary file in the
  same directory, then ``os.replace``). A kill leaves the temporary behind; under the lock no
  other writer exists, so every ``.NAME.*.tmp`` of a run file is debris and is removed.
* ``best.npz`` is a copy of ``last.npz`` made right after ``last.npz`` is written at the end of
  an epoch that improved the test error, and ``last.npz`` records that epoch as the best. A
  kill between the two writes is therefore recognised (``last.npz`` is the best epoch, ``best.npz``
  is older or missing) and repaired by copying ``last.npz`` again. The metrics files, written
  last, are rewritten from ``last.npz``'s history on resume when they lag behind.
* A failed write (a full disk) raises :class:`CheckpointWriteError` (:func:`writing`), naming the
  file and keeping its previous version.

Without ``fcntl`` (Windows) there is no lock; everything else holds.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sescratch.errors import DataError, SescratchError, UsageError
from sescratch.io import atomic_open

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["RUN_FILES", "RunLock", "CheckpointWriteError", "prepare", "check_writable", "writing",
           "clean_temporaries", "repair_best", "repair_if_idle", "copy_checkpoint", "schedule_notes"]

RUN_FILES = ("last.npz", "best.npz", "metrics.jsonl", "metrics.csv", "curves.png")
LOCK_NAME = ".lock"
PROBE_PREFIX = ".write-probe."


class CheckpointWriteError(SescratchError):
    """Writing a run file failed (e.g. a full disk); the previous version of the file is kept."""


@contextmanager
def writing(path: Path):
    """Turn a failed write of ``path`` into :class:`CheckpointWriteError` saying why and what is kept
    (the writes are atomic: the previous file is intact)."""
    try:
        yield
    except OSError as exc:
        why = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or exc)
        kept = f"the previous {path.name} is kept" if path.exists() else f"no {path.name} was written"
        raise CheckpointWriteError(f"could not write {path}: {why}; {kept}. Free space (or choose "
                                   "another --out) and continue with --resume") from None


def schedule_notes(stored, config, epoch: int) -> list[str]:
    """A note when a resumed run's ``epochs`` changes a schedule that depends on it."""
    stretched = config.schedule == "cosine" or (config.schedule == "multistep" and not config.milestones)
    if stored.epochs == config.epochs or not stretched:
        return []
    return [f"note: --epochs {stored.epochs} -> {config.epochs}: the {config.schedule} schedule is "
            f"stretched over {config.epochs} epochs from epoch {epoch} on (neither the "
            f"{stored.epochs}- nor a fresh {config.epochs}-epoch run's learning rates)"]


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and prove it writable, or raise :class:`UsageError`."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=out_dir)
        try:
            os.write(fd, b"x")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: cannot write there ({exc.strerror or exc})") from None


class RunLock:
    """An exclusive lock on a run directory, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(f"--out {self.path.parent} is in use by another run (PID {owner}); "
                             "wait for it to end or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    def __del__(self):
        self.release()


def repair_if_idle(out_dir: str | os.PathLike) -> str | None:
    """:func:`repair_best` under the lock when no run holds it (``sescratch eval`` of a best.npz);
    None when nothing needed repairing, the run is active or the directory is read-only."""
    out_dir = Path(out_dir)
    if not (out_dir / "last.npz").exists():
        return None
    lock = RunLock(out_dir)
    try:
        lock.acquire()
    except (UsageError, OSError):
        return None
    try:
        return repair_best(out_dir)
    except OSError:
        return None
    finally:
        lock.release()


def clean_temporaries(out_dir: Path) -> tuple[int, int]:
    """Remove the temporary files crashed writes left in ``out_dir``; returns (files, bytes)."""
    count = size = 0
    patterns = [f".{name}.*" for name in RUN_FILES] + [f"{PROBE_PREFIX}*"]  # ".curves.png.x.png": older figures
    for pattern in patterns:
        for path in out_dir.glob(pattern):
            try:
                size += path.stat().st_size
                path.unlink()
                count += 1
            except OSError:
                pass
    return count, size


def copy_checkpoint(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` atomically (byte for byte)."""
    from sescratch.train.checkpoint import after_write

    with open(source, "rb") as src, atomic_open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    after_write(target)
    return target


def repair_best(out_dir: Path) -> str | None:
    """Make ``best.npz`` the epoch ``last.npz`` records as best, when a kill left it stale.

    Returns a sentence describing the repair, or None when nothing needed repairing.
    """
    from sescratch.train.checkpoint import read_meta

    last_path, best_path = out_dir / "last.npz", out_dir / "best.npz"
    if not last_path.exists():
        return None
    meta = read_meta(last_path)
    best = meta.get("best")
    if not isinstance(best, dict) or best.get("epoch") != meta["epoch"] or meta.get("partial") is not None:
        return None  # last.npz is not the best epoch's state: best.npz was written after it
    try:
        held = read_meta(best_path)["epoch"] if best_path.exists() else None
    except DataError:
        held = "unreadable"
    if held == best["epoch"]:
        return None
    copy_checkpoint(last_path, best_path)
    was = {None: "was missing", "unreadable": "was unreadable"}.get(held, f"held epoch {held}")
    return f"repaired {best_path}: it {was}, the run's best is epoch {best['epoch']} (from {last_path})"


def _earlier_run(out_dir: Path) -> list[str]:
    """The files of an earlier run (:data:`RUN_FILES`) present in ``out_dir``."""
    return [name for name in RUN_FILES if (out_dir / name).exists()]


def remove_earlier_run(out_dir: Path) -> list[str]:
    """``--overwrite``: delete the earlier run's files (:data:`RUN_FILES`); returns a note."""
    existing = _earlier_run(out_dir)
    for name in existing:
        (out_dir / name).unlink()
    return [f"--overwrite: removed the earlier run's {', '.join(existing)}"] if existing else []


def prepare(out_dir: Path, *, resume: bool, overwrite: bool, lock: RunLock) -> list[str]:
    """Everything a run checks and fixes in its directory before it starts; returns notes to print.

    Raises :class:`UsageError` for a directory that is a file, not writable, in use by another
    run, or holding an earlier run when neither ``resume`` nor ``overwrite`` is set. With
    ``overwrite`` the earlier run stays until :func:`remove_earlier_run`, called once everything
    else about the new run has been checked.
    """
    check_writable(out_dir)
    lock.acquire()
    try:
        notes = []
        existing = _earlier_run(out_dir)
        if existing and not resume and not overwrite:
            raise UsageError(f"--out {out_dir} holds an earlier run ({', '.join(existing)}); "
                             "continue it with --resume or replace it with --overwrite")
        count, size = clean_temporaries(out_dir)
        if count:
            notes.append(f"removed {count} temporary file(s) ({size / 1e6:.1f} MB) left by an "
                         f"interrupted write in {out_dir}")
        if resume:
            repaired = repair_best(out_dir)
            if repaired:
                notes.append(repaired)
        return notes
    except BaseException:
        lock.release()
        raise
