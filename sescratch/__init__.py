"""sescratch: Squeeze-and-Excitation networks from scratch.

Every layer is written by hand, forward and backward, with the derivation beside it.
NumPy is the readable reference; Numba makes the CPU fast; CuPy runs the same code on a GPU.

``import sescratch`` loads nothing else; import what you use, e.g. ``from sescratch import models``
or ``from sescratch.train import TrainConfig, fit``.
"""
__version__ = "0.1.0"
