"""Classify images with ImageNet weights: the release's preprocessing, top-k class names.

Preprocessing (the SENet release's evaluation, as torchvision's ``Resize(256)`` +
``CenterCrop(224)`` + ``ToTensor`` + ``Normalize`` on a Pillow image)::

    RGB -> resize so the shorter side is ``resize`` (bilinear) -> centre crop ``crop x crop``
        -> x / 255 -> (x - mean) / std per channel      (3, crop, crop) float32

``crop=224`` with ``resize=256`` is the standard setting; SENet-154's second one is ``crop=320``
(``resize`` then defaults to ``crop * 256 / 224``, i.e. 366). The 1000 ILSVRC-2012 classes are
package data (``sescratch/data/imagenet_classes.txt``: WordNet id, then the synonyms, in the
order of the class indices). Images are read with Pillow (the ``images`` extra).
"""
from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

import numpy as np

from sescratch.errors import DataError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "imagenet_classes", "load_image", "preprocess",
           "load_images", "image_files", "load_image_folder", "predict", "default_resize"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


@functools.lru_cache(maxsize=None)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """``((wnid, names), ...)`` for the 1000 classes, index order (``("n01440764", "tench, Tinca tinca")``)."""
    text = resources.files("sescratch.data").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    rows = tuple(tuple(line.split(" ", 1)) for line in text.splitlines() if line.strip())
    if len(rows) != 1000:
        raise DataError(f"imagenet_classes.txt: expected 1000 classes, found {len(rows)}")
    return rows


def default_resize(crop: int) -> int:
    """The shorter side before cropping: 256 for a 224 crop, in the same ratio otherwise."""
    return int(round(crop * 256 / 224))


def load_image(path: str | os.PathLike):
    """The image at ``path`` as an RGB ``PIL.Image``; :class:`DataError` if missing or unreadable."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError("reading images needs Pillow: pip install 'sescratch[images]'") from None
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path}: file not found")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"image {path}: not a readable image ({exc})") from None


def preprocess(image, crop: int = 224, resize: int | None = None) -> np.ndarray:
    """``(3, crop, crop)`` float32: shorter side to ``resize``, centre crop, ImageNet normalisation."""
    from PIL import Image

    resize = default_resize(crop) if resize is None else resize
    if resize < crop:
        raise ValueError(f"preprocess: resize ({resize}) must be >= crop ({crop})")
    w, h = image.size
    if w <= h:
        size = (resize, int(resize * h / w))
    else:
        size = (int(resize * w / h), resize)
    image = image.resize(size, Image.BILINEAR)
    w, h = image.size
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    image = image.crop((left, top, left + crop, top + crop))
    x = np.asarray(image, dtype=np.float32) / 255.0  # crop,crop,3
    x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))  # 3,crop,crop


def load_images(paths, crop: int = 224, resize: int | None = None) -> np.ndarray:
    """``(N, 3, crop, crop)`` float32 from image files (every path checked before any work)."""
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"image file(s) not found: {', '.join(missing)}")
    return np.stack([preprocess(load_image(p), crop, resize) for p in paths])


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (by suffix), sorted; :class:`DataError` when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder}: not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"image folder {folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_image_folder(folder: str | os.PathLike, crop: int = 224, resize: int | None = None):
    """``(x (N, 3, crop, crop) float32, labels (N,), class names, paths)`` from an image folder.

    Sub-folders are classes (``DIR/goldfish/*.jpg``, ``DIR/pug/*.png`` ...; sorted names, the
    class index is the position); a folder holding images directly is one class named after it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder}: not a directory")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    groups = [(c, image_files(folder / c)) for c in classes] if classes else [(folder.name, image_files(folder))]
    paths = [p for _, files in groups for p in files]
    labels = np.concatenate([np.full(len(files), k, dtype=np.int64) for k, (_, files) in enumerate(groups)])
    return load_images(paths, crop, resize), labels, [c for c, _ in groups], paths


def predict(model, x: np.ndarray, *, top: int = 5, class_names=None, batch_size: int = 8,
            device: str = "cpu") -> list[list[dict]]:
    """Top-``top`` classes per image of ``x`` (N, 3, H, W): ``[[{"index", "class", "wnid", "probability"}]]``.

    ``class_names`` defaults to the ImageNet names when the model has 1000 outputs, else
    ``"class <i>"``. Softmax in float64; eval mode (restored afterwards). ``device``: where the
    model is (``"gpu"``: batches are moved there).
    """
    from sescratch.backend import to_device, to_numpy

    was_training = model.training
    model.eval()
    try:
        logits = np.concatenate([
            to_numpy(model(to_device(x[i:i + batch_size].astype(model.dtype), device))).astype(np.float64)
            for i in range(0, len(x), batch_size)])  # N,K
    finally:
        model.train(was_training)
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # N,K
    K = probs.shape[1]
    wnids = [None] * K
    if class_names is None and K == 1000:
        rows = imagenet_classes()
        wnids, class_names = [r[0] for r in rows], [r[1] for r in rows]
    elif class_names is None:
        class_names = [f"class {i}" for i in range(K)]
    top = max(1, min(int(top), K))
    results = []
    for p in probs:
        order = np.argsort(-p, kind="stable")[:top]
        results.append([{"index": int(i), "class": class_names[i], "wnid": wnids[i], "probability": float(p[i])}
                        for i in order])
    return results
