"""sescratch.io: a file is replaced whole or left as it was, and no temporary file stays behind."""
import pytest

from sescratch.io import atomic_open, atomic_write_text


def test_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "metrics.jsonl"  # the directory is created
    atomic_write_text(path, "old\n")
    with atomic_open(path, "w", newline="") as f:
        f.write("new\n")
        assert path.read_text() == "old\n"  # not visible until the block ends
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.jsonl"]


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "last.npz"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_open(path, "wb") as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]


def test_only_write_modes(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_atomic_files_get_the_mode_open_would_give(tmp_path):
    import os
    import stat

    from sescratch.io import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "metrics.jsonl", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
