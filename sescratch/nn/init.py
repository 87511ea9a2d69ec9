"""Weight initialisation, as the paper trains (He et al. 2015) and as PyTorch defaults.

- Convolutions: He / kaiming-normal with ``fan_out = C_out * KH * KW`` and ReLU gain,
  ``w ~ N(0, 2 / fan_out)`` (the paper, §5: "He initialisation"; the SENet release and
  torchvision's ResNets use ``mode="fan_out"``).
- Batch norm: ``γ = 1``, ``β = 0``.
- Linear layers: PyTorch's default, ``w, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

Random numbers come from the *current* generator. :func:`sescratch.models.create` builds every
model inside ``with use_generator(np.random.default_rng(seed)):``, so a model's weights depend on
its seed only, never on what was built before. Layers constructed directly (``nn.Conv2d(...)``
outside ``create``) draw from a module-level default generator that :func:`manual_seed` resets.
Dropout masks never come from here: they come from the run's generator (:meth:`Module.set_rng`).
Inside ``with skip_init():`` the random initialisers return zeros instead: building SENet-154
(115M parameters) only to count them, summarise it or load weights into it then costs no time.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np

__all__ = ["manual_seed", "use_generator", "skip_init", "kaiming_normal", "uniform_fan_in", "ones", "zeros"]

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
    """Reset the default generator (the one layers built outside :func:`use_generator` draw from)."""
    global _rng
    _rng = np.random.default_rng(seed)


@contextmanager
def use_generator(rng: np.random.Generator) -> Iterator[None]:
    """Within the block, every initialiser draws from ``rng``; the previous generator comes back after."""
    global _rng
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"use_generator: expected a numpy.random.Generator, got {type(rng).__name__}")
    previous, _rng = _rng, rng
    try:
        yield
    finally:
        _rng = previous


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
