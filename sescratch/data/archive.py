"""Extract a ``.tar.gz`` archive without letting it write outside the destination.

Every member is checked before anything is written: absolute names, ``..`` components and
drive letters are refused; symbolic and hard links must point inside the destination; device
files and FIFOs are refused. On Python versions that have it, tarfile's own ``"data"`` filter
is applied as a second guard.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

from sescratch.errors import DataError


def _inside(root: Path, target: Path) -> bool:
    try:
        target.relative_to(root)
    except ValueError:
        return False
    return True


def check_member(member: tarfile.TarInfo, root: Path, archive: str) -> None:
    """Raise :class:`DataError` when ``member`` would escape ``root`` or is not a plain entry."""
    name = member.name
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{archive}: refused member {name!r}: absolute path")
    if ".." in pure.parts:
        raise DataError(f"{archive}: refused member {name!r}: '..' in path (path traversal)")
    dest = (root / pure).resolve()
    if not _inside(root, dest):
        raise DataError(f"{archive}: refused member {name!r}: resolves outside {root}")
    if member.issym() or member.islnk():
        link = PurePosixPath(member.linkname.replace("\\", "/"))
        if link.is_absolute():
            raise DataError(f"{archive}: refused link {name!r} -> {member.linkname!r}: absolute target")
        base = dest.parent if member.issym() else root
        if not _inside(root, (base / link).resolve()):
            raise DataError(f"{archive}: refused link {name!r} -> {member.linkname!r}: points outside")
    elif not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: refused member {name!r}: not a regular file or directory")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract ``archive`` (any tar compression) into ``dest`` after checking every member."""
    archive, root = os.fspath(archive), Path(dest).resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member, root, archive)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4; members were checked above
                tar.extractall(root, members=members)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot extract ({exc})") from exc
    return root
