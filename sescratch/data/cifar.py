"""CIFAR-10 and CIFAR-100: the official archives, MD5-verified, safely extracted and unpickled.

Archives (https://www.cs.toronto.edu/~kriz/cifar.html) and what they hold once extracted:

* ``cifar-10-python.tar.gz`` -> ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5``,
  ``test_batch`` (pickled dicts: ``b"data"`` uint8 (10000, 3072), ``b"labels"`` list of int,
  ``b"filenames"``, ``b"batch_label"``) and ``batches.meta`` (``b"label_names"``).
* ``cifar-100-python.tar.gz`` -> ``cifar-100-python/``: ``train`` (50,000), ``test`` (10,000)
  with ``b"fine_labels"`` and ``b"coarse_labels"``, and ``meta`` (``b"fine_label_names"``,
  ``b"coarse_label_names"``).
* ``cifar-10-binary.tar.gz`` -> ``cifar-10-batches-bin/``: ``data_batch_1.bin`` ..
  ``data_batch_5.bin``, ``test_batch.bin`` (records of 1 label byte + 3072 pixel bytes) and
  ``batches.meta.txt`` (one class name per line).

Each 3072-byte image is 1024 red, then 1024 green, then 1024 blue values, rows first, so it
reshapes directly to (3, 32, 32). Pickles are read with :mod:`sescratch.data.unpickle`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sescratch.data import sources
from sescratch.data.archive import safe_extract
from sescratch.data.dataset import Dataset
from sescratch.data.unpickle import restricted_loads
from sescratch.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/"

CIFAR10_PYTHON = {
    "name": "cifar10", "archive": "cifar-10-python.tar.gz", "folder": "cifar-10-batches-py",
    "md5": "c58f30108f718f92721af3b95e74349a",
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",),
    "meta": "batches.meta", "format": "python", "num_classes": 10,
}
CIFAR100_PYTHON = {
    "name": "cifar100", "archive": "cifar-100-python.tar.gz", "folder": "cifar-100-python",
    "md5": "eb9058c3a382ffc7106e4002c42a8d85",
    "train": ("train",), "test": ("test",), "meta": "meta", "format": "python", "num_classes": 100,
}
CIFAR10_BINARY = {
    "name": "cifar10", "archive": "cifar-10-binary.tar.gz", "folder": "cifar-10-batches-bin",
    "md5": "c32a1d4ab5d03f1284b67883e8d87530",
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",),
    "meta": "batches.meta.txt", "format": "binary", "num_classes": 10,
}

RECORD_BYTES = 1 + 3 * 32 * 32


def _members(spec: dict) -> list[str]:
    return [*spec["train"], *spec["test"], spec["meta"]]


def _read_pickle(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    obj = restricted_loads(raw, source=str(path))
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _field(batch: dict, key: bytes, path: Path):
    if key not in batch:
        raise DataError(f"{path}: key {key!r} missing (has {sorted(batch)})")
    return batch[key]


def _labels(raw, key: bytes, path: Path) -> np.ndarray:
    """A flat list (or 1-D integer array) of ints -> int64 (N,); floats or nesting are refused."""
    if isinstance(raw, np.ndarray):
        if raw.ndim != 1 or raw.dtype.kind not in "iu":
            raise DataError(f"{path}: {key!r} must be 1-D integers, got {raw.dtype} {raw.shape}")
        return raw.astype(np.int64)
    if not isinstance(raw, (list, tuple)):
        raise DataError(f"{path}: {key!r} must be a list of ints, got {type(raw).__name__}")
    wrong = next((v for v in raw if isinstance(v, bool) or not isinstance(v, int)), None)
    if wrong is not None:
        raise DataError(f"{path}: {key!r} must hold ints only, found {type(wrong).__name__} "
                        f"{wrong!r:.40} (labels are never rounded)")
    return np.array(raw, dtype=np.int64)


def read_python_batch(path: Path, label_key: bytes, num_classes: int):
    """One pickled batch -> (x uint8 (N, 3, 32, 32), y int64 (N,))."""
    batch = _read_pickle(path)
    data = _field(batch, b"data", path)
    if not isinstance(data, np.ndarray):
        raise DataError(f"{path}: b'data' must be a uint8 array (N, 3072), got {type(data).__name__}")
    labels = _labels(_field(batch, label_key, path), label_key, path)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: b'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {labels.shape} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels outside 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def read_binary_batch(path: Path):
    """One binary batch -> (x uint8 (N, 3, 32, 32), y int64 (N,))."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if raw.size % RECORD_BYTES:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of {RECORD_BYTES}-byte records")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.size and labels.max() > 9:
        raise DataError(f"{path}: label {int(labels.max())} outside 0..9")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def read_extracted(folder: str | os.PathLike, spec: dict, label: str = "fine") -> Dataset:
    """Read an extracted CIFAR folder (``cifar-10-batches-py`` etc.) described by ``spec``."""
    folder = Path(folder)
    if spec["format"] == "binary":
        read = read_binary_batch
        meta_path = folder / spec["meta"]
        try:
            names = [line.strip() for line in meta_path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{meta_path}: cannot read the class names ({exc})") from None
        classes = tuple(n for n in names if n)
    else:
        key = b"labels" if spec["num_classes"] == 10 else f"{label}_labels".encode()
        if spec["num_classes"] == 100 and label not in ("fine", "coarse"):
            raise ValueError(f"cifar100: label must be 'fine' or 'coarse', got {label!r}")
        num = spec["num_classes"] if label == "fine" else 20

        def read(path):
            return read_python_batch(path, key, num)

        meta = _read_pickle(folder / spec["meta"])
        meta_key = b"label_names" if spec["num_classes"] == 10 else f"{label}_label_names".encode()
        names = _field(meta, meta_key, folder / spec["meta"])
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
            raise DataError(f"{folder / spec['meta']}: {meta_key!r} must be a list of class names, "
                            f"got {type(names).__name__}")
        classes = tuple(n.decode(errors="replace") if isinstance(n, bytes) else n for n in names)
    parts = {split: [read(folder / name) for name in spec[split]] for split in ("train", "test")}
    x_train = np.concatenate([x for x, _ in parts["train"]])
    y_train = np.concatenate([y for _, y in parts["train"]])
    x_test = np.concatenate([x for x, _ in parts["test"]])
    y_test = np.concatenate([y for _, y in parts["test"]])
    name = spec["name"] if label == "fine" else f"{spec['name']}-coarse"
    return Dataset(name, x_train, y_train, x_test, y_test, classes, source=str(folder))


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def locate(spec: dict, data_dir=None, download: bool = True) -> Path:
    """The extracted folder for ``spec``: found, extracted from a found archive, or downloaded."""
    places = sources.search_dirs(spec["name"], data_dir)
    wanted = [f"{spec['folder']}/{m}" for m in _members(spec)]
    found = sources.find_dir(wanted, places)
    if found is not None:
        return found / spec["folder"]
    archive_dir = sources.find_dir([spec["archive"]], places)
    if archive_dir is None:
        if not download:
            raise _not_found(spec, places, "Downloading was not allowed.")
        archive_dir = sources.download_target(spec["name"], data_dir)
        try:
            sources.download(URL + spec["archive"], archive_dir / spec["archive"], spec["md5"])
        except (DataError, OSError) as exc:
            raise _not_found(spec, places, f"Downloading failed: {exc}") from exc
    archive = archive_dir / spec["archive"]
    sources.verify_md5(archive, spec["md5"])
    dest = archive_dir if _writable(archive_dir) else sources.cache_dir() / spec["name"]
    safe_extract(archive, dest)
    folder = dest / spec["folder"]
    missing = [m for m in _members(spec) if not (folder / m).exists()]
    if missing:
        raise DataError(f"{archive}: extracted, but {folder} lacks {', '.join(missing)}")
    return folder


def _available(spec: dict, data_dir=None) -> bool:
    """True when the extracted folder or the archive of ``spec`` is somewhere in the search path."""
    places = sources.search_dirs(spec["name"], data_dir)
    wanted = [f"{spec['folder']}/{m}" for m in _members(spec)]
    return (sources.find_dir(wanted, places) is not None
            or sources.find_dir([spec["archive"]], places) is not None)


def _not_found(spec: dict, places, reason: str) -> DataError:
    return DataError(
        f"{spec['name']}: neither {spec['folder']}/ nor {spec['archive']} was found. Looked in:\n"
        f"{sources.describe_places(places)}\n{reason}\n"
        f"To get the data: download {URL}{spec['archive']} (MD5 {spec['md5']}) into a directory "
        f"and pass it with --data-dir DIR (or set $SESCRATCH_DATA)."
    )


def load_cifar10(data_dir=None, download: bool = True, format: str = "auto") -> Dataset:
    """CIFAR-10 (50,000 / 10,000, 3x32x32, 10 classes) from the python or the binary version.

    ``format="auto"`` uses whichever version is found locally (python first) and downloads the
    python version when neither is.
    """
    if format not in ("auto", "python", "binary"):
        raise ValueError(f"load_cifar10: format must be 'auto', 'python' or 'binary', got {format!r}")
    if format == "auto":
        format = "binary" if (not _available(CIFAR10_PYTHON, data_dir)
                              and _available(CIFAR10_BINARY, data_dir)) else "python"
    spec = CIFAR10_PYTHON if format == "python" else CIFAR10_BINARY
    return read_extracted(locate(spec, data_dir, download), spec)


def load_cifar100(data_dir=None, download: bool = True, label: str = "fine") -> Dataset:
    """CIFAR-100 (50,000 / 10,000, 3x32x32; 100 fine or 20 coarse classes)."""
    return read_extracted(locate(CIFAR100_PYTHON, data_dir, download), CIFAR100_PYTHON, label)
