"""Dropout (Srivastava et al. 2014): the one layer that draws random numbers while it runs.

Its generator belongs to the run, not to the weight initialisation: ``model.set_rng(rng)``
(:meth:`sescratch.nn.Module.set_rng`) hands the trainer's generator to every ``Dropout`` of a
model, and a checkpoint that stores that generator's state resumes with the same masks.
"""
from __future__ import annotations

import numbers

from sescratch.backend import get_array_module
from sescratch.nn.module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` in training and scale the rest by ``1/(1-p)``; identity in eval.

    The mask is drawn on the host from the generator given by :meth:`Module.set_rng` (NumPy's
    ``rng.random``), then moved to the input's device: CPU and GPU runs draw identical masks.
    In training with ``p > 0`` and no generator set, ``forward`` raises ``RuntimeError``; in eval
    mode or with ``p == 0`` it returns ``x`` itself and needs no generator.
    """

    draws_random = True

    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be a number in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = None

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        if self.rng is None:
            raise RuntimeError(
                f"Dropout(p={self.p}) in training mode has no generator: call "
                "model.set_rng(np.random.default_rng(seed)) before the forward (or model.eval())"
            )
        keep = self.rng.random(x.shape) >= self.p  # same shape as x, on the host
        mask = (keep / (1.0 - self.p)).astype(x.dtype)
        self._mask = get_array_module(x).asarray(mask)  # to x's device
        return x * self._mask

    def backward(self, dy):
        return dy if self._mask is None else dy * self._mask

    def trace(self, shape, name, records=None):
        return tuple(shape)

    def extra_repr(self):
        return f"p={self.p}"
