"""Datasets by name: ``load_dataset("fashion-mnist-subset")`` and friends."""
from __future__ import annotations

import inspect
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


# The functions whose keyword arguments are a dataset's options (the wrappers above pass theirs on).
_OPTIONS_OF: dict[str, Callable] = {"fashion-mnist-subset": load_fashion_mnist_subset, "synthetic": make_synthetic}
_NOT_OPTIONS = ("data_dir", "download")  # given by load_dataset's own arguments


def dataset_options(name: str) -> list[str]:
    """The option names the loader of dataset ``name`` accepts (``dataset_options`` keys)."""
    params = inspect.signature(_OPTIONS_OF.get(name, DATASETS[name])).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in _NOT_OPTIONS]


def check_dataset_options(name: str, options: dict) -> None:
    """Raise :class:`UsageError` naming an option that dataset ``name`` does not take."""
    valid = dataset_options(name)
    unknown = [key for key in options if key not in valid]
    if unknown:
        raise UsageError(f"dataset {name}: unknown dataset option{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; valid: {', '.join(valid) or 'none'}")


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
    check_dataset_options(name, options)
    return loader(data_dir=data_dir, download=download, **options)
