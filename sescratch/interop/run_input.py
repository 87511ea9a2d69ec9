"""The input pipeline of a training checkpoint, for ``sescratch predict`` and ``export``.

A training checkpoint (``last.npz`` / ``best.npz`` of ``sescratch train``) records its input
pipeline (meta ``image_shape``, ``normalization``, ``classes``), and :func:`run_preprocessing`
reads it: the image is converted to the run's channels (greyscale for 1, RGB for 3), **resized
whole** to the run's H x W (bilinear; the aspect ratio is not kept), scaled to [0, 1],
zero-padded to ``pad_to`` and normalised with the run's mean/std, exactly as the run's test
transform (:class:`sescratch.data.Transform`) prepares a test image, and the classes are the
run's. A whole-image resize, not a centre crop: the images of Fashion-MNIST and CIFAR show the
whole object filling the frame at that size, and a crop would cut off part of it; an image of
another aspect ratio is stretched (crop or pad it first to keep its proportions).
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sescratch.errors import DataError

__all__ = ["RunPreprocessing", "run_preprocessing"]


@dataclass(frozen=True)
class RunPreprocessing:
    """A training run's input pipeline, read from its checkpoint (:func:`run_preprocessing`).

    ``image_shape`` (C, H, W) of its images, the per-channel ``mean`` / ``std`` of its [0, 1]
    training images, ``pad_to`` (zero padding to ``pad_to x pad_to`` first, or None), its
    ``classes``, its ``dtype``, and the ``model`` it trained. Called on a ``PIL.Image`` it returns
    the (C, H', W') array the run's test transform makes of that picture (see the module
    docstring: converted to C channels, resized whole to H x W).
    """

    image_shape: tuple
    mean: tuple
    std: tuple
    pad_to: int | None
    classes: tuple
    dtype: str = "float32"
    model: str | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """What the network sees: (C, H, W), or (C, pad_to, pad_to) for a padded run."""
        C, H, W = self.image_shape
        return (C, H, W) if self.pad_to is None else (C, self.pad_to, self.pad_to)

    @property
    def mode(self) -> str:
        """The Pillow mode of the run's images: ``"L"`` for 1 channel, ``"RGB"`` for 3."""
        channels = self.image_shape[0]
        if channels not in (1, 3):
            raise DataError(f"the training run's images have {channels} channels; image files give 1 "
                            "(greyscale) or 3 (RGB)")
        return "L" if channels == 1 else "RGB"

    def describe(self) -> str:
        _, H, W = self.image_shape
        pad = f", zero-padded to {self.pad_to}x{self.pad_to}" if self.pad_to is not None else ""
        mode = {"L": "greyscale", "RGB": "RGB"}[self.mode]
        return (f"{mode}, whole image resized to {H}x{W} (bilinear, aspect ratio not kept){pad}, values 0..1, "
                f"mean {_rounded(self.mean)}, std {_rounded(self.std)} (the training run's)")

    def __call__(self, image) -> np.ndarray:
        from PIL import Image

        from sescratch.data import Transform

        _, H, W = self.image_shape
        image = image.convert(self.mode)
        if image.size != (W, H):
            image = image.resize((W, H), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)  # H,W (L) or H,W,3 (RGB)
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # C,H,W
        transform = Transform(self.mean, self.std, pad_to=self.pad_to, dtype=np.dtype(self.dtype).type)
        return transform(pixels[None])[0]  # C,H',W': the run's test transform of a 1-image batch


def _rounded(values) -> list:
    return [round(float(v), 4) for v in values]


def run_preprocessing(path: str | os.PathLike) -> RunPreprocessing | None:
    """The input pipeline of a training checkpoint at ``path`` (an ``.npz`` holding ``meta`` beside
    ``model/`` entries, as :func:`sescratch.train.save_checkpoint` writes it); None for any other
    weights file, and for one that cannot be read (reading its weights says why).

    Raises :class:`DataError` for a checkpoint whose meta lacks what rebuilding the pipeline needs.
    """
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = archive.files
            if "meta" not in names or not any(n.startswith("model/") for n in names):
                return None
            meta = json.loads(str(archive["meta"][()]))
            config = json.loads(str(archive["config"][()])) if "config" in names else {}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    return _pipeline_of(path, meta if isinstance(meta, dict) else {}, config if isinstance(config, dict) else {})


def _pipeline_of(path, meta: dict, config: dict) -> RunPreprocessing:
    """The checked :class:`RunPreprocessing` of a checkpoint's meta and configuration: a pipeline
    rebuilt from a malformed entry would silently prepare images another way than the run did."""

    def bad(what):
        return DataError(f"training checkpoint {path}: {what}, so its input pipeline cannot be rebuilt")

    shape, norm, classes = meta.get("image_shape"), meta.get("normalization"), meta.get("classes")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v >= 1 for v in shape)):
        raise bad(f"meta 'image_shape' must be [C, H, W] of positive integers, got {shape!r:.60}")
    if not (isinstance(norm, dict) and all(isinstance(norm.get(k), list) and len(norm[k]) == shape[0]
                                           for k in ("mean", "std"))):
        raise bad(f"meta 'normalization' must hold a mean and a std of {shape[0]} values, got {norm!r:.80}")
    pad_to = norm.get("pad_to")
    if pad_to is not None and not (isinstance(pad_to, int) and pad_to >= max(shape[1:])):
        raise bad(f"meta 'normalization' pad_to must be null or an integer >= {max(shape[1:])}, got {pad_to!r}")
    if not (isinstance(classes, list) and classes):
        raise bad(f"meta 'classes' must be a non-empty list of names, got {classes!r:.60}")
    dtype = config.get("dtype") if config.get("dtype") in ("float32", "float64") else "float32"
    model = config.get("model") if isinstance(config.get("model"), str) else None
    return RunPreprocessing(tuple(shape), tuple(map(float, norm["mean"])), tuple(map(float, norm["std"])),
                            pad_to, tuple(map(str, classes)), dtype, model)
