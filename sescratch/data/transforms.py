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


class SampleRandom:
    """Per-image random numbers that depend only on ``(key, index)``: a drop-in for the two
    ``np.random.Generator`` calls the random transforms make (``integers`` and ``random``).

    ``index`` holds the dataset indices of the batch's images and ``key`` e.g. ``(seed, epoch)``;
    the k-th call's numbers for image ``i`` are a hash (SplitMix64's finaliser, vectorised) of
    ``(key, index[i], k, row)``. So an image is augmented the same way whichever batch, shard or
    process draws it: what data-parallel training needs to equal one process (issue 14).
    The batch axis is the last axis of ``size``.
    """

    def __init__(self, key: Sequence[int], index: np.ndarray):
        self.index = np.asarray(index, dtype=np.uint64)  # N
        self.seed = _mix(np.array([0x5E5C7A7C], dtype=np.uint64))
        for k in key:
            self.seed = _mix(self.seed ^ np.uint64(int(k) & 0xFFFFFFFFFFFFFFFF))
        self.calls = 0

    def random(self, size) -> np.ndarray:
        """Floats in [0, 1), shape ``size`` (its last axis: the images)."""
        shape = (size,) if np.isscalar(size) else tuple(size)
        if shape[-1] != len(self.index):
            raise ValueError(f"SampleRandom: last axis of size {shape} must be the batch ({len(self.index)})")
        rows = np.arange(int(np.prod(shape[:-1])), dtype=np.uint64).reshape(shape[:-1] + (1,))
        call = _mix(self.seed ^ np.uint64(self.calls))
        self.calls += 1
        bits = _mix(_mix(call ^ self.index) ^ rows)  # *size
        return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53

    def integers(self, low: int, high: int, size) -> np.ndarray:
        """Integers in ``[low, high)``, shape ``size``."""
        return low + np.floor(self.random(size) * (high - low)).astype(np.int64)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic): a bijective 64-bit hash."""
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


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
