"""Weight initialisation, as the paper trains (He et al. 2015) and as PyTorch defaults.

- Convolutions: He / kaiming-normal with ``fan_out = C_out * KH * KW`` and ReLU gain,
  ``w ~ N(0, 2 / fan_out)`` (the paper, §5: "He initialisation"; the SENet release and
  torchvision's ResNets use ``mode="fan_out"``).
- Batch norm: ``γ = 1``, ``β = 0``.
- Linear layers: PyTorch's default, ``w, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

Random numbers come from one module-level generator; :func:`manual_seed` makes models reproducible.
Inside ``with skip_init():`` the random initialisers return zeros instead: building SENet-154
(115M parameters) only to count them, summarise it or load weights into it then costs no time.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np

__all__ = ["manual_seed", "generator", "skip_init", "kaiming_normal", "uniform_fan_in", "ones", "zeros"]

_rng = np.random.default_rng(0)
_random_init = True


@contextmanager
def skip_init() -> Iterator[None]:
    """Within the block, random initialisers return zeros (for counting or loading weights)."""
    global _random_init
    previous, _random_init = _random_init, False
    try:
        yield
    finally:
        _random_init = previous


def manual_seed(seed: int) -> None:
    """Reset the generator every initialiser draws from."""
    global _rng
    _rng = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    return _rng


def kaiming_normal(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """He normal, ``mode="fan_out"``, ReLU gain: ``std = sqrt(2 / (shape[0] * prod(shape[2:])))``."""
    if not _random_init:
        return zeros(shape, dtype)
    fan_out = shape[0] * int(np.prod(shape[2:], dtype=np.int64))
    std = math.sqrt(2.0 / fan_out)
    return (_rng.standard_normal(shape, dtype=np.float64) * std).astype(dtype)


def uniform_fan_in(shape: tuple[int, ...], fan_in: int, dtype=np.float32) -> np.ndarray:
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: PyTorch's default for Linear weights and biases."""
    if not _random_init:
        return zeros(shape, dtype)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return _rng.uniform(-bound, bound, size=shape).astype(dtype)


def ones(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    return np.ones(shape, dtype=dtype)


def zeros(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """Also the "do not initialise" choice: ``np.zeros`` maps pages lazily, so huge models cost nothing."""
    return np.zeros(shape, dtype=dtype)
