"""Batch transforms: vectorised over the batch (no per-image Python loop), seeded by a Generator.

Every random transform takes an ``np.random.Generator`` and draws all its numbers for the batch
in one call, so a given generator state always produces the same batch. The order in
:class:`Transform` is: pad (28 -> 32, optional) -> random crop with padding -> horizontal flip
(all on uint8) -> scale to [0, 1] -> per-channel normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (N, C, H, W) images equally on all sides to ``size x size`` (e.g. 28 -> 32)."""
    _, _, H, W = x.shape
    if size < H or size < W:
        raise ValueError(f"pad_to: target {size} is smaller than the images ({H}x{W})")
    top, left = (size - H) // 2, (size - W) // 2
    widths = ((0, 0), (0, 0), (top, size - H - top), (left, size - W - left))
    return np.pad(x, widths)  # N,C,size,size


def random_crop(x: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad by ``padding`` on each side, then cut an H x W window at a random offset per image.

    Offsets ``(oy, ox)`` are drawn uniformly from ``{0, ..., 2*padding}`` (two integers per image).
    """
    N, C, H, W = x.shape
    if padding == 0:
        return x.copy()
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))  # N,C,H+2P,W+2P
    offsets = rng.integers(0, 2 * padding + 1, size=(2, N))  # 2,N
    windows = sliding_window_view(padded, (H, W), axis=(2, 3))  # N,C,2P+1,2P+1,H,W
    return windows[np.arange(N), :, offsets[0], offsets[1]]  # N,C,H,W


def random_hflip(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right with probability ``p`` (one uniform draw per image)."""
    flip = rng.random(x.shape[0]) < p  # N
    out = x.copy()
    out[flip] = x[flip, :, :, ::-1]
    return out


def normalize(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(x - mean[c]) / std[c]`` per channel; keeps the dtype of ``x``."""
    mean = np.asarray(mean, dtype=x.dtype).reshape(1, -1, 1, 1)  # 1,C,1,1
    std = np.asarray(std, dtype=x.dtype).reshape(1, -1, 1, 1)  # 1,C,1,1
    return (x - mean) / std  # N,C,H,W


@dataclass
class Transform:
    """uint8 (N, C, H, W) batch -> normalised float batch, optionally augmented.

    Parameters
    ----------
    mean, std : per-channel statistics of the [0, 1]-scaled training images.
    augment : apply random crop (``crop_padding``) and horizontal flip.
    pad_to : if set, zero-pad images to this size first (28 -> 32 for CIFAR-shaped nets).
    dtype : output dtype (float32 by default).
    """

    mean: Sequence[float]
    std: Sequence[float]
    augment: bool = False
    crop_padding: int = 4
    flip: bool = True
    pad_to: int | None = None
    dtype: type = np.float32

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if self.pad_to is not None:
            x = pad_to(x, self.pad_to)
        if self.augment:
            if rng is None:
                raise ValueError("Transform: augment=True needs an np.random.Generator")
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, rng)
            if self.flip:
                x = random_hflip(x, rng)
        scaled = x.astype(self.dtype) / self.dtype(255.0)  # N,C,H,W in [0, 1]
        return normalize(scaled, self.mean, self.std)
