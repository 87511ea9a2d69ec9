"""The embedded default dataset: a stratified Fashion-MNIST subset shipped inside the package.

``embedded/fashion_mnist_subset.npz`` holds 600 training and 100 test images per class (6,000 /
1,000 uint8 images of 28x28) drawn from the official files by ``build_embedded.py`` with a fixed
seed. Fashion-MNIST is (c) 2017 Zalando SE, MIT licence: see ``embedded/LICENSE.txt``.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from sescratch.data.dataset import Dataset
from sescratch.data.mnist import FASHION_MNIST
from sescratch.errors import DataError

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
SUBSET_FILE = EMBEDDED_DIR / "fashion_mnist_subset.npz"
KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_fashion_mnist_subset(path: str | Path = SUBSET_FILE) -> Dataset:
    """Load the embedded subset: x uint8 (N, 1, 28, 28), y int64 (N,), 10 classes."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in KEYS if k not in archive.files]
            if missing:
                raise DataError(f"{path}: corrupt embedded dataset, missing arrays {missing}")
            arrays = {k: archive[k] for k in KEYS}
    except FileNotFoundError as exc:
        raise DataError(f"{path}: the embedded dataset is missing from the installation "
                        "(rebuild it with `python -m sescratch.data.build_embedded`)") from exc
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: corrupt embedded dataset ({exc})") from exc
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != x.shape[:1]:
            raise DataError(f"{path}: corrupt embedded dataset ({split} arrays {x.shape}, {y.shape})")
    return Dataset("fashion-mnist-subset",
                   arrays["x_train"][:, None], arrays["y_train"].astype(np.int64),
                   arrays["x_test"][:, None], arrays["y_test"].astype(np.int64),
                   FASHION_MNIST["classes"], source=str(path))
