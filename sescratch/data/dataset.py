"""The in-memory dataset every loader returns: uint8 images in NCHW and int64 labels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    """A train/test pair of image arrays.

    Attributes
    ----------
    name : str
    x_train, x_test : np.ndarray, uint8, shape (N, C, H, W)
    y_train, y_test : np.ndarray, int64, shape (N,)
    classes : tuple of str, the class names (index = label)
    source : str, where the data came from (a directory, a file, or "synthetic")
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    source: str = ""
    _stats: tuple | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple:
        """(C, H, W) of one image."""
        return tuple(self.x_train.shape[1:])

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and standard deviation of the training images scaled to [0, 1].

        Computed once, in float64, one channel at a time (CIFAR-10's 50,000 images fit easily).
        """
        if self._stats is None:
            channels = self.x_train.shape[1]
            mean = np.empty(channels)
            std = np.empty(channels)
            for c in range(channels):
                plane = self.x_train[:, c].astype(np.float64) / 255.0
                mean[c], std[c] = plane.mean(), plane.std()
            self._stats = (mean, np.maximum(std, 1e-8))
        return self._stats

    def subset(self, train: int | None = None, test: int | None = None, seed: int = 0) -> "Dataset":
        """A stratified subset: about ``train`` training and ``test`` test images, classes balanced.

        Each class keeps ``n // num_classes`` images (the first ones after a seeded shuffle); the
        remainder is filled from the shuffled rest so the total is exactly ``n``. Original order is kept.
        """
        rng = np.random.default_rng(seed)

        def pick(y: np.ndarray, n: int | None) -> np.ndarray:
            if n is None or n >= len(y):
                return np.arange(len(y))
            order = rng.permutation(len(y))
            per_class = n // self.num_classes
            chosen = [order[y[order] == k][:per_class] for k in range(self.num_classes)]
            taken = np.concatenate(chosen)
            rest = np.setdiff1d(order, taken, assume_unique=True)
            rest = order[np.isin(order, rest)][: n - len(taken)]
            return np.sort(np.concatenate([taken, rest]))

        i_train, i_test = pick(self.y_train, train), pick(self.y_test, test)
        return Dataset(self.name, self.x_train[i_train], self.y_train[i_train],
                       self.x_test[i_test], self.y_test[i_test], self.classes,
                       source=self.source)
