"""MNIST and Fashion-MNIST from the official IDX ``.gz`` files.

Files are found or downloaded as described in :mod:`sescratch.data.sources`; the MD5 checksums
are the published ones (Fashion-MNIST: the dataset's README; MNIST: the files torchvision
verifies). Loaded files are validated: IDX magic and type, 3-d images of 28x28, 1-d labels of
the same count, labels in 0..9, and the official counts (60,000 train, 10,000 test).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from sescratch.data import sources
from sescratch.data.dataset import Dataset
from sescratch.data.idx import read_idx
from sescratch.errors import DataError

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

FASHION_MNIST = {
    "name": "fashion-mnist",
    "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "md5": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "system_dirs": ("/usr/share/datasets/fashion-mnist",),
    "classes": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "how_to_get": "install Debian's package (`sudo apt-get install dataset-fashion-mnist`), or",
    # MD5 of the decompressed label data (after the 8-byte IDX header), which re-compression
    # (Debian's package) leaves as it is: how MNIST tells Fashion-MNIST's files from its own
    "label_md5": {"train": "3236f6424fc25388b2834cb19942cf7e", "test": "8dea97a4e78c1bd1b5a6e8efbb870b6e"},
}

MNIST = {
    "name": "mnist",
    "url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "md5": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "system_dirs": (),
    "classes": tuple(str(d) for d in range(10)),
    "how_to_get": "",
}

OFFICIAL_COUNTS = {"train": 60000, "test": 10000}


def read_split(directory: str | os.PathLike, prefix: str, *, expected_count: int | None = None):
    """Read ``{prefix}-images-idx3-ubyte.gz`` and ``{prefix}-labels-idx1-ubyte.gz`` and check them.

    Returns
    -------
    x : np.ndarray, uint8, shape (N, 1, 28, 28)
    y : np.ndarray, int64, shape (N,)
    """
    directory = Path(directory)
    images_path = directory / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = directory / f"{prefix}-labels-idx1-ubyte.gz"
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: expected uint8 images of shape (N, 28, 28), "
                        f"got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{labels_path}: expected 1-d uint8 labels, got {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images "
                        f"in {images_path.name}")
    if expected_count is not None and images.shape[0] != expected_count:
        raise DataError(f"{images_path}: {images.shape[0]} images, the official file has {expected_count}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: label {int(labels.max())} out of range 0..9")
    return images[:, None, :, :], labels.astype(np.int64)


def _not_found(spec: dict, places, reason: str) -> DataError:
    how = spec["how_to_get"]
    how = (how + " ") if how else ""
    files = ", ".join(FILES)
    return DataError(
        f"{spec['name']}: the files {files} were not found. Looked in:\n"
        f"{sources.describe_places(places)}\n"
        f"{reason}\n"
        f"To get the data: {how}download the four files from {spec['url']} into a directory "
        f"and pass it with --data-dir DIR (or set $SESCRATCH_DATA)."
    )


def locate(spec: dict, data_dir=None, download: bool = True) -> Path:
    """The directory holding the four files, downloading them when allowed and needed."""
    places = sources.search_dirs(spec["name"], data_dir, spec["system_dirs"])
    found = sources.find_dir(FILES, places)
    if found is not None:
        return found
    if not download:
        raise _not_found(spec, places, "Downloading was not allowed.")
    target = sources.download_target(spec["name"], data_dir)
    try:
        for filename in FILES:
            if not (target / filename).exists():
                sources.download(spec["url"] + filename, target / filename, spec["md5"][filename])
    except (DataError, OSError) as exc:
        raise _not_found(spec, places, f"Downloading failed: {exc}") from exc
    return target


def load_idx_dataset(spec: dict, data_dir=None, download: bool = True,
                     check_counts: bool = True) -> Dataset:
    """Load MNIST or Fashion-MNIST (``spec`` is :data:`MNIST` or :data:`FASHION_MNIST`)."""
    directory = locate(spec, data_dir, download)
    counts = OFFICIAL_COUNTS if check_counts else {"train": None, "test": None}
    x_train, y_train = read_split(directory, "train", expected_count=counts["train"])
    x_test, y_test = read_split(directory, "t10k", expected_count=counts["test"])
    if spec["name"] == MNIST["name"] and _label_md5(y_train, y_test) == FASHION_MNIST["label_md5"]:
        raise DataError(f"{spec['name']}: {directory} holds Fashion-MNIST's files, not MNIST's (both use "
                        f"the same file names): keep each dataset in a folder of its own, such as "
                        f"{directory / spec['name']}")
    return Dataset(spec["name"], x_train, y_train, x_test, y_test, spec["classes"],
                   source=str(directory))


def _label_md5(y_train, y_test) -> dict:
    """MD5 of each split's labels as the IDX file stores them (uint8, header excluded)."""
    return {split: hashlib.md5(y.astype(np.uint8).tobytes()).hexdigest()
            for split, y in (("train", y_train), ("test", y_test))}


def load_fashion_mnist(data_dir=None, download: bool = True) -> Dataset:
    """The full Fashion-MNIST (60,000 train / 10,000 test, 1x28x28, 10 classes)."""
    return load_idx_dataset(FASHION_MNIST, data_dir, download)


def load_mnist(data_dir=None, download: bool = True) -> Dataset:
    """MNIST handwritten digits (60,000 train / 10,000 test, 1x28x28, 10 classes)."""
    return load_idx_dataset(MNIST, data_dir, download)
