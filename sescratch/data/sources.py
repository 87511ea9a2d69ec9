"""Where dataset files are looked for, and how they are downloaded and verified.

Search order (the first directory holding every needed file wins):

1. ``data_dir`` — the ``--data-dir`` option, or the ``data_dir=`` argument;
2. ``$SESCRATCH_DATA``;
3. the per-user cache, :func:`cache_dir` (``$XDG_CACHE_HOME/sescratch`` or ``~/.cache/sescratch``
   on Linux, ``~/Library/Caches/sescratch`` on macOS, ``%LOCALAPPDATA%\\sescratch\\Cache`` on
   Windows);
4. system directories a package installs into (Debian's ``dataset-fashion-mnist`` puts the
   Fashion-MNIST files in ``/usr/share/datasets/fashion-mnist``).

Each directory is tried as is and with the dataset's name appended (``DIR/fashion-mnist``).
When nothing is found and downloading is allowed, the files are fetched from the official URL into
a folder named after the dataset in ``data_dir`` (when given) or in the cache (MNIST and
Fashion-MNIST use the same four file names: side by side in one folder, one would be read as
the other), through a temporary file that is renamed only after its MD5 matches the published
checksum. Files found locally are not MD5-checked (Debian re-compresses the ``.gz`` files, so
their checksums differ from the published ones); their contents are validated by the readers
instead (:mod:`sescratch.data.mnist` also refuses Fashion-MNIST's labels read as MNIST's).
"""
from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from pathlib import Path
from typing import Sequence

from sescratch.errors import DataError
from sescratch.io import atomic_open

DOWNLOAD_TIMEOUT_S = 30


def cache_dir() -> Path:
    """The per-user cache directory for sescratch (not created here)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "sescratch" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "sescratch"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sescratch"


def search_dirs(name: str, data_dir: str | os.PathLike | None = None,
                system_dirs: Sequence[str] = ()) -> list[tuple[str, Path]]:
    """The directories to look in, in order, each with a label saying where it came from."""
    places: list[tuple[str, Path]] = []
    if data_dir is not None:
        places.append(("--data-dir", Path(data_dir)))
    env = os.environ.get("SESCRATCH_DATA")
    if env:
        places.append(("$SESCRATCH_DATA", Path(env)))
    places.append(("user cache", cache_dir()))
    places.extend(("system", Path(d)) for d in system_dirs)
    expanded: list[tuple[str, Path]] = []
    for label, path in places:
        expanded.append((label, path))
        expanded.append((label, path / name))
    return expanded


def find_dir(filenames: Sequence[str], places: list[tuple[str, Path]]) -> Path | None:
    """The first directory in ``places`` that holds every one of ``filenames``."""
    for _, path in places:
        if all((path / f).exists() for f in filenames):
            return path
    return None


def describe_places(places: list[tuple[str, Path]], env_set: bool | None = None) -> str:
    """Numbered lines naming each searched directory (for not-found messages)."""
    lines = [f"  {i}. {path}  ({label})" for i, (label, path) in enumerate(places, 1)]
    if env_set is None:
        env_set = bool(os.environ.get("SESCRATCH_DATA"))
    if not env_set:
        lines.append("  ($SESCRATCH_DATA is not set)")
    return "\n".join(lines)


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex MD5 digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`DataError` when the file's MD5 is not ``expected``."""
    actual = md5sum(path)
    if actual != expected.lower():
        raise DataError(
            f"{path}: MD5 mismatch (expected {expected}, got {actual}); "
            "the file is corrupt or not the official one — delete it and download it again"
        )


def download(url: str, dest: str | os.PathLike, md5: str) -> Path:
    """Fetch ``url`` to ``dest`` atomically, keeping it only when its MD5 is ``md5``.

    The bytes go to a temporary file in the destination directory (:func:`sescratch.io.atomic_open`),
    which replaces ``dest`` only once its checksum is right, so an interrupted or corrupt download
    never leaves a file under the final name. Network failures and checksum mismatches raise :class:`DataError`.
    """
    dest = Path(dest)
    digest = hashlib.md5()
    with atomic_open(dest, "wb", suffix=".part") as out:
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                for block in iter(lambda: response.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
        except OSError as exc:  # URLError, timeouts and HTTP errors are OSErrors
            raise DataError(f"download of {url} failed: {exc}") from exc
        actual = digest.hexdigest()
        if actual != md5.lower():
            raise DataError(
                f"download of {url}: MD5 mismatch (expected {md5}, got {actual}); file discarded"
            )
    return dest


def download_target(name: str, data_dir: str | os.PathLike | None) -> Path:
    """Where downloads go: ``data_dir/name`` when ``data_dir`` is given, else ``cache_dir()/name``."""
    return (Path(data_dir) if data_dir is not None else cache_dir()) / name
