"""A synthetic image dataset for fast tests: learnable, deterministic from a seed, any size.

Each class k has a smooth template: a random ``grid x grid`` pattern per channel, made
left-right symmetric (so horizontal flips keep the class) and enlarged to ``size x size`` by
nearest-neighbour repetition. An image is ``contrast * template[y] + (1 - contrast) * noise``,
scaled to uint8. With the default contrast a small network separates the classes in a few epochs.
"""
from __future__ import annotations

import numpy as np

from sescratch.data.dataset import Dataset


def make_synthetic(n_train: int = 512, n_test: int = 128, *, num_classes: int = 10,
                   channels: int = 1, size: int = 8, grid: int = 4, contrast: float = 0.6,
                   seed: int = 0) -> Dataset:
    """Build the dataset.

    Parameters
    ----------
    n_train, n_test : int
        Number of images in each split (labels cycle through the classes, then are shuffled).
    num_classes, channels, size : int
        K classes of C x size x size images.
    grid : int
        Resolution of the class templates before enlargement (coarser = easier).
    contrast : float in (0, 1]
        Weight of the template against uniform noise.
    seed : int
        Everything is drawn from ``np.random.default_rng(seed)``.

    Returns
    -------
    Dataset named ``"synthetic"``; x uint8 (N, C, size, size), y int64 (N,).
    """
    if not 0 < contrast <= 1:
        raise ValueError(f"make_synthetic: contrast must be in (0, 1], got {contrast}")
    if min(n_train, n_test, num_classes, channels, size, grid) < 1:
        raise ValueError("make_synthetic: sizes and counts must be positive")
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, size=(num_classes, channels, grid, grid))  # K,C,g,g
    coarse = 0.5 * (coarse + coarse[..., ::-1])  # K,C,g,g (left-right symmetric)
    index = np.arange(size) * grid // size  # size
    templates = coarse[:, :, index][:, :, :, index]  # K,C,size,size

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)  # N
        noise = rng.uniform(0.0, 1.0, size=(n, channels, size, size))  # N,C,size,size
        x = contrast * templates[y] + (1.0 - contrast) * noise  # N,C,size,size
        return np.round(x * 255.0).astype(np.uint8), y

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    classes = tuple(f"class_{k}" for k in range(num_classes))
    return Dataset("synthetic", x_train, y_train, x_test, y_test, classes, source="synthetic")
