"""Bridges to other frameworks. :mod:`sescratch.interop.torch`: ``to_torch`` / ``from_torch``.

PyTorch is optional (the ``torch`` extra) and imported only when these functions run.
"""
from sescratch.interop.torch import from_torch, to_torch

__all__ = ["to_torch", "from_torch"]
