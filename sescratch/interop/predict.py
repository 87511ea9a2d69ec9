"""Classify images with ImageNet weights: each family's preprocessing, top-k class names.

Preprocessing (the SENet release's evaluation, as torchvision's ``Resize(256)`` +
``CenterCrop(224)`` + ``ToTensor`` + ``Normalize`` on a Pillow image)::

    RGB -> resize so the shorter side is ``resize`` (bilinear) -> centre crop ``crop x crop``
        -> x / 255 -> (x - mean) / std per channel      (3, crop, crop) float32

``crop=224`` with ``resize=256`` is the standard setting; SENet-154's second one is ``crop=320``
(``resize`` then defaults to ``crop * 256 / 224``, i.e. 366). The other released weights the
loader reads want their own (:func:`preprocessing_for`, the settings of Cadene's
``pretrainedmodels``, which published them): BN-Inception BGR pixels in 0..255 less the
per-channel means (104, 117, 128), Inception-ResNet-v2 a 299 crop (shorter side 341) scaled to
[-1, 1]. The 1000 ILSVRC-2012 classes are package data (``sescratch/data/imagenet_classes.txt``:
WordNet id, then the synonyms, in the order of the class indices). Images are read with Pillow
(the ``images`` extra).

A training checkpoint records its own input pipeline instead:
:mod:`sescratch.interop.run_input` reads it (the image resized whole to the run's size).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from sescratch.errors import DataError
from sescratch.interop.run_input import RunPreprocessing, run_preprocessing

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing", "preprocessing_for", "imagenet_classes",
           "load_image", "preprocess", "load_images", "image_files", "load_image_folder", "predict",
           "default_resize", "RunPreprocessing", "run_preprocessing", "prepare"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """What a family's weights were trained on: ``crop`` (and ``resize``, the shorter side before
    it; None: :func:`default_resize`), pixels in 0..``value_range`` (1: divided by 255), then
    ``(x - mean) / std`` per channel, in ``channels`` order ("RGB" or "BGR")."""

    crop: int = 224
    resize: int | None = None
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    value_range: int = 1
    channels: str = "RGB"

    def sizes(self, crop: int | None = None, resize: int | None = None) -> tuple[int, int]:
        """``(crop, resize)``: the ones asked for, else these settings' (the shorter side of a
        crop other than theirs is :func:`default_resize`'s)."""
        if resize is None and crop in (None, self.crop):
            resize = self.resize
        crop = self.crop if crop is None else crop
        return crop, default_resize(crop) if resize is None else resize

    def describe(self, crop: int | None = None, resize: int | None = None) -> str:
        crop, resize = self.sizes(crop, resize)
        return (f"{self.channels}, values 0..{self.value_range}, mean {list(self.mean)}, std {list(self.std)}, "
                f"shorter side {resize}, centre crop {crop}")


# pretrainedmodels 0.7.4: bninception.py and inceptionresnetv2.py ``pretrained_settings``, the
# shorter side ``floor(crop / 0.875)`` (``utils.TransformImage``); everything else is the SENet
# release's (and torchvision's) setting
_FAMILY_PREPROCESSING = {
    "bn_inception": Preprocessing(224, 256, (104.0, 117.0, 128.0), (1.0, 1.0, 1.0), 255, "BGR"),
    "inception_resnet_v2": Preprocessing(299, 341, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def preprocessing_for(name: str) -> Preprocessing:
    """The preprocessing the released weights of model ``name``'s family expect (an SE variant
    takes its base network's; models without released weights the SENet release's)."""
    base = name[len("se_"):] if name.startswith("se_") else name
    return _FAMILY_PREPROCESSING.get(base, Preprocessing())


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
            return _to_rgb(image, path)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"image {path}: not a readable image ({exc})") from None


def _to_rgb(image, path):
    """An 8-bit RGB image. Pillow's own conversion clips 16-bit greyscale (``I;16``, ``I``) to
    0..255, so those are scaled from 0..65535 first; floating-point images (``F``) have no
    standard range and are refused."""
    from PIL import Image

    if image.mode == "F":
        raise DataError(f"image {path}: floating-point pixels (mode F) have no standard range; "
                        "save it as an 8- or 16-bit image")
    if image.mode.startswith("I"):  # 16-bit PNG / TIFF greyscale (32-bit integer images read as 16-bit)
        values = np.asarray(image, dtype=np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise DataError(f"image {path}: integer pixels outside 0..65535 (mode {image.mode})")
        image = Image.fromarray(np.round(values / 257.0).astype(np.uint8), "L")
    return image.convert("RGB")


def preprocess(image, crop: int | None = None, resize: int | None = None, *,
               settings: Preprocessing | None = None) -> np.ndarray:
    """``(3, crop, crop)`` float32: shorter side to ``resize``, centre crop, then the value range,
    channel order and normalisation of ``settings`` (default: the SENet release's, ImageNet
    mean/std). ``crop`` / ``resize`` default to the settings' (``resize``: :func:`default_resize`
    of a crop other than theirs)."""
    from PIL import Image

    settings = settings or Preprocessing()
    crop, resize = settings.sizes(crop, resize)
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
    x = np.asarray(image, dtype=np.float32) / np.float32(255 / settings.value_range)  # crop,crop,3 RGB
    if settings.channels == "BGR":
        x = x[:, :, ::-1]
    x = (x - np.array(settings.mean, np.float32)) / np.array(settings.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))  # 3,crop,crop


def read_images(paths) -> list:
    """Every image of ``paths`` read (RGB ``PIL.Image``s); each path checked before any is read."""
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"image file(s) not found: {', '.join(missing)}")
    return [load_image(p) for p in paths]


def prepare(image, crop: int | None = None, resize: int | None = None, *,
            settings: Preprocessing | RunPreprocessing | None = None) -> np.ndarray:
    """One image as the weights expect it: :func:`preprocess` with a family's ``settings``, or a
    training run's pipeline (a :class:`RunPreprocessing`, which fixes its own size: ``crop`` and
    ``resize`` must then be None)."""
    if not isinstance(settings, RunPreprocessing):
        return preprocess(image, crop, resize, settings=settings)
    if crop is not None or resize is not None:
        _, H, W = settings.image_shape
        raise ValueError(f"prepare: crop/resize apply to the ImageNet preprocessing; a training run's images "
                         f"are resized whole to its {H}x{W}, got crop={crop}, resize={resize}")
    return settings(image)


def load_images(paths, crop: int | None = None, resize: int | None = None, *,
                settings: Preprocessing | RunPreprocessing | None = None) -> np.ndarray:
    """``(N, C, H, W)`` float32 from image files (every path checked before any work): ``(N, 3, crop,
    crop)`` with a family's settings, the run's shape with a :class:`RunPreprocessing`."""
    return np.stack([prepare(image, crop, resize, settings=settings) for image in read_images(paths)])


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (by suffix), sorted; :class:`DataError` when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder}: not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"image folder {folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_image_folder(folder: str | os.PathLike, crop: int | None = None, resize: int | None = None, *,
                      settings: Preprocessing | RunPreprocessing | None = None):
    """``(x (N, C, H, W) float32, labels (N,), class names, paths)`` from an image folder (the
    images prepared as :func:`load_images` prepares them).

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
    return load_images(paths, crop, resize, settings=settings), labels, [c for c, _ in groups], paths


def predict(model, x: np.ndarray, *, top: int = 5, class_names=None, batch_size: int = 8,
            device: str = "cpu") -> list[list[dict]]:
    """Top-``top`` classes per image of ``x`` (N, C, H, W): ``[[{"index", "class", "wnid", "probability"}]]``.

    ``class_names`` (one per output; a training run's ``classes``) defaults to the ImageNet names
    when the model has 1000 outputs, else ``"class <i>"``. Softmax in float64; eval mode
    (restored afterwards). ``device``: where the model is (``"gpu"``: batches are moved there).
    """
    from sescratch.backend import to_device, to_numpy

    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"predict: top must be an integer >= 1, got {top!r}")

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
    elif len(class_names) != K:
        raise ValueError(f"predict: class_names has {len(class_names)} names, the model {K} outputs")
    top = min(int(top), K)
    results = []
    for p in probs:
        order = np.argsort(-p, kind="stable")[:top]
        results.append([{"index": int(i), "class": class_names[i], "wnid": wnids[i], "probability": float(p[i])}
                        for i in order])
    return results
