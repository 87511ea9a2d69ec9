"""Datasets, transforms and mini-batches.

``load_dataset(name)`` returns a :class:`Dataset` of uint8 NCHW images and int64 labels.
Names: ``"fashion-mnist-subset"`` (embedded in the package, the default), ``"fashion-mnist"``,
``"mnist"``, ``"cifar10"``, ``"cifar100"`` and ``"synthetic"``. Files are looked for in
``data_dir``, ``$SESCRATCH_DATA``, the user cache and system directories, and downloaded
(MD5-verified) when missing; see :mod:`sescratch.data.sources`.
"""
from sescratch.data.dataset import Dataset
from sescratch.data.loader import BatchIterator
from sescratch.data.registry import DATASETS, DEFAULT_DATASET, list_datasets, load_dataset
from sescratch.data.synthetic import make_synthetic
from sescratch.data.transforms import Transform, normalize, pad_to, random_crop, random_hflip

__all__ = [
    "Dataset",
    "BatchIterator",
    "DATASETS",
    "DEFAULT_DATASET",
    "list_datasets",
    "load_dataset",
    "make_synthetic",
    "Transform",
    "normalize",
    "pad_to",
    "random_crop",
    "random_hflip",
]
