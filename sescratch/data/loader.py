"""Mini-batches over in-memory arrays, shuffled with an ``np.random.Generator``."""
from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np

from sescratch.data.transforms import SampleRandom


class BatchIterator:
    """Iterate over ``(x_batch, y_batch)`` pairs.

    Each ``iter()`` draws one permutation from ``rng`` (when ``shuffle``), then for every batch
    calls ``transform(x_uint8, rng)``; so the stream of batches is a function of the generator's
    state at the start of the epoch alone — the property bit-exact resuming relies on.

    Parameters
    ----------
    x : np.ndarray (N, C, H, W), usually uint8
    y : np.ndarray (N,)
    batch_size : int
    rng : np.random.Generator, required when shuffling or when the transform is random
    shuffle : bool
    transform : callable ``(x, rng) -> array`` or None (then ``x`` slices are returned as is)
    drop_last : bool, drop a final incomplete batch
    sample_key : tuple of ints or None, e.g. ``(seed, epoch)``: the transform then draws from a
        :class:`~sescratch.data.transforms.SampleRandom` of ``(sample_key, dataset indices)``,
        so each image's augmentation depends on the key and its index alone (not on ``rng``)
    shard : ``(rank, size)`` or None: yield only block ``rank`` of ``size`` contiguous blocks of
        every batch (data-parallel training; ``len()`` still counts the global batches)
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *,
                 rng: np.random.Generator | None = None, shuffle: bool = False,
                 transform: Callable | None = None, drop_last: bool = False,
                 sample_key: tuple | None = None, shard: tuple[int, int] | None = None):
        if len(x) != len(y):
            raise ValueError(f"BatchIterator: {len(x)} images but {len(y)} labels")
        if batch_size < 1:
            raise ValueError(f"BatchIterator: batch_size must be >= 1, got {batch_size}")
        if shuffle and rng is None:
            raise ValueError("BatchIterator: shuffle=True needs an np.random.Generator")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng, self.shuffle, self.transform, self.drop_last = rng, shuffle, transform, drop_last
        self.sample_key, self.shard = sample_key, shard

    def __len__(self) -> int:
        n = len(self.x) / self.batch_size
        return math.floor(n) if self.drop_last else math.ceil(n)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        for b in range(len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.shard is not None:  # this rank's contiguous block of the global batch
                rank, size = self.shard
                index = index[len(index) * rank // size:len(index) * (rank + 1) // size]
            xb, yb = self.x[index], self.y[index]
            if self.transform is not None:
                draws = self.rng if self.sample_key is None else SampleRandom(self.sample_key, index)
                xb = self.transform(xb, draws)
            yield xb, yb
