"""Bridges to other frameworks and their files.

- :mod:`~sescratch.interop.weights`: ``read_weights`` / ``save_weights`` (.npz, .safetensors, .pth/.pt);
- :mod:`~sescratch.interop.naming`: which zoo wrote a ``state_dict`` and its keys in our names;
- :mod:`~sescratch.interop.loading`: ``load_pretrained(name, path)`` (behind ``create(name, weights=PATH)``);
- :mod:`~sescratch.interop.predict`: the release's preprocessing (or a training run's) and ImageNet class names;
- :mod:`~sescratch.interop.onnx_export`: ``export_onnx``, every model family (the ``onnx`` extra);
- :mod:`~sescratch.interop.torch`: ``to_torch`` / ``from_torch``.

PyTorch, safetensors, onnx and Pillow are optional and imported only when a function needs them.
"""
from sescratch.interop.loading import LoadReport, load_pretrained
from sescratch.interop.torch import from_torch, to_torch
from sescratch.interop.weights import WeightsError, read_weights, save_weights

__all__ = ["to_torch", "from_torch", "read_weights", "save_weights", "load_pretrained", "LoadReport",
           "WeightsError"]
