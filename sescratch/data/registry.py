"""Datasets by name: ``load_dataset("fashion-mnist-subset")`` and friends."""
from __future__ import annotations

from typing import Callable

from sescratch.data.cifar import load_cifar10, load_cifar100
from sescratch.data.dataset import Dataset
from sescratch.data.embedded import load_fashion_mnist_subset
from sescratch.data.mnist import load_fashion_mnist, load_mnist
from sescratch.data.synthetic import make_synthetic
from sescratch.errors import UsageError

DEFAULT_DATASET = "fashion-mnist-subset"


def _embedded(data_dir=None, download=True, **options) -> Dataset:
    return load_fashion_mnist_subset(**options)


def _synthetic(data_dir=None, download=True, **options) -> Dataset:
    return make_synthetic(**options)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "fashion-mnist-subset": _embedded,
    "fashion-mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "synthetic": _synthetic,
}


def list_datasets() -> list[str]:
    """The registered dataset names."""
    return list(DATASETS)


def load_dataset(name: str = DEFAULT_DATASET, *, data_dir=None, download: bool = True,
                 **options) -> Dataset:
    """Load a dataset by name.

    Parameters
    ----------
    name : one of :func:`list_datasets`
    data_dir : directory searched first for the files (see :mod:`sescratch.data.sources`)
    download : allow downloading from the official location when the files are not found
    **options : passed to the loader (e.g. ``n_train=``, ``size=`` for ``"synthetic"``,
        ``format="binary"`` for ``"cifar10"``, ``label="coarse"`` for ``"cifar100"``)
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise UsageError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}") from None
    return loader(data_dir=data_dir, download=download, **options)
