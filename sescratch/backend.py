"""Where the arrays live, and which CPU kernels run the hot loops.

Two independent choices:

* **Device** follows the arrays, as in DeZero: ``xp = get_array_module(x)`` is :mod:`numpy`
  for NumPy arrays and :mod:`cupy` for CuPy arrays. Every op is written once against ``xp``.
  :func:`to_device` moves arrays, containers of arrays (tuples, NamedTuples, lists, dicts) and
  modules (anything with ``.to(device)``) between them.
* **CPU kernel family** for NumPy arrays: ``"numba"`` (fused, parallel kernels from
  :mod:`sescratch.kernels.numba`; the default when Numba imports) or ``"numpy"`` (the readable
  reference code inside the op files). Choose it with :func:`use`, as a call or a context
  manager, or with the ``SESCRATCH_BACKEND`` environment variable.

Ops ask :func:`get_kernel` for a fast kernel by name; ``None`` means "run the NumPy reference".

CuPy is never imported when this module is: a CuPy array can only exist once something else has
imported :mod:`cupy`, so :func:`get_array_module` looks it up in ``sys.modules``, and
:func:`cupy_available` / :func:`to_device` import it on demand. ``import sescratch`` stays fast
and works on machines where importing CuPy would fail.
"""
from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any, Callable

import numpy

__all__ = [
    "CPU_FAMILIES",
    "cpu_family",
    "cupy_available",
    "get_array_module",
    "get_kernel",
    "to_device",
    "use",
]

CPU_FAMILIES = ("numba", "numpy")
DEVICES = ("cpu", "gpu")


def _numba_importable() -> bool:
    try:
        import numba  # noqa: F401
    except Exception:
        return False
    return True


def _initial_family() -> str:
    name = os.environ.get("SESCRATCH_BACKEND", "").strip().lower()
    if not name:
        return "numba" if _numba_importable() else "numpy"
    if name not in CPU_FAMILIES:
        raise ValueError(f"SESCRATCH_BACKEND: expected one of {CPU_FAMILIES}, got {name!r}")
    if name == "numba" and not _numba_importable():
        raise ValueError("SESCRATCH_BACKEND: 'numba' requested but Numba cannot be imported")
    return name


_cpu_family = _initial_family()
_kernel_cache: dict[tuple[str, str], Callable | None] = {}


def _import_cupy() -> ModuleType | None:
    """CuPy, imported on demand; ``None`` when it is not installed or fails to import."""
    try:
        import cupy
    except Exception:  # ImportError, or a CUDA-less machine raising at import
        return None
    return cupy


def _loaded_cupy() -> ModuleType | None:
    """CuPy if something has already imported it (only then can CuPy arrays exist)."""
    cupy = sys.modules.get("cupy")
    return cupy if cupy is not None and hasattr(cupy, "ndarray") else None


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    cupy = _import_cupy()
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_array_module(*arrays: Any) -> ModuleType:
    """Return :mod:`cupy` if any argument is a CuPy array, else :mod:`numpy`.

    Non-array arguments (None, Python scalars) are ignored, so ops can pass optional inputs.
    """
    cupy = _loaded_cupy()
    if cupy is not None and any(isinstance(a, cupy.ndarray) for a in arrays):
        return cupy
    return numpy


def cpu_family() -> str:
    """The CPU kernel family in force: ``"numba"`` or ``"numpy"``."""
    return _cpu_family


class _Use:
    """Returned by :func:`use`: the switch is already made; ``with`` restores the previous one."""

    def __init__(self, previous: str, chosen: str):
        self.previous = previous
        self.chosen = chosen

    def __enter__(self) -> "_Use":
        return self

    def __exit__(self, *exc: object) -> None:
        global _cpu_family
        _cpu_family = self.previous

    def __repr__(self) -> str:
        return f"use({self.chosen!r})"


def use(name: str) -> _Use:
    """Select the CPU kernel family, ``"numba"`` or ``"numpy"``.

    Works as a plain call (``use("numpy")``) and as a context manager
    (``with use("numpy"): ...``), which restores the previous family on exit, also when the
    block raises. Contexts nest.
    """
    global _cpu_family
    if name not in CPU_FAMILIES:
        raise ValueError(f"backend.use: expected one of {CPU_FAMILIES}, got {name!r}")
    if name == "numba" and not _numba_importable():
        raise ValueError("backend.use: 'numba' requested but Numba cannot be imported")
    previous, _cpu_family = _cpu_family, name
    return _Use(previous, name)


def get_kernel(name: str, *arrays: Any) -> Callable | None:
    """The fast kernel ``name`` for these arrays, or ``None`` to run the NumPy reference.

    CuPy arrays always get the CuPy kernel (``sescratch.kernels.cupy``); NumPy arrays get the
    Numba kernel (``sescratch.kernels.numba``) when that family is selected. A family that does
    not (yet) provide ``name`` also returns ``None``.
    """
    if get_array_module(*arrays) is not numpy:
        family = "cupy"
    elif _cpu_family == "numba":
        family = "numba"
    else:
        return None
    key = (family, name)
    if key not in _kernel_cache:
        module = importlib.import_module(f"sescratch.kernels.{family}")
        _kernel_cache[key] = getattr(module, name, None)
    return _kernel_cache[key]


def _is_namedtuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and hasattr(type(obj), "_fields")


def to_device(obj: Any, device: str) -> Any:
    """Move an array, a container of arrays, or a module to ``device``.

    ``device`` is ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy). Arrays already on ``device`` are
    returned as they are (no copy). Tuples, NamedTuples (op caches), lists and dicts are rebuilt
    with their items moved; objects with a ``.to(device)`` method (modules) are asked to move
    themselves and their return value is returned; anything else (None, numbers, strings) is
    returned unchanged.

    Raises
    ------
    ValueError
        ``device`` is not ``"cpu"``/``"gpu"``, or ``"gpu"`` is asked for without CuPy and a GPU.
    """
    if device not in DEVICES:
        raise ValueError(f"to_device: expected device 'cpu' or 'gpu', got {device!r}")
    if device == "gpu" and not cupy_available():
        raise ValueError(
            "to_device: device 'gpu' requested but CuPy with a GPU is not available "
            "(install the 'cuda' extra, cupy-cuda12x, on a machine with an NVIDIA GPU)"
        )
    return _move(obj, device)


def _move(obj: Any, device: str) -> Any:
    cupy = _loaded_cupy() if device == "cpu" else _import_cupy()
    if isinstance(obj, numpy.ndarray):
        return cupy.asarray(obj) if device == "gpu" else obj
    if cupy is not None and isinstance(obj, cupy.ndarray):
        return cupy.asnumpy(obj) if device == "cpu" else obj
    if _is_namedtuple(obj):
        return type(obj)(*(_move(item, device) for item in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(item, device) for item in obj)
    if isinstance(obj, dict):
        moved = {key: _move(value, device) for key, value in obj.items()}
        return moved if type(obj) is dict else type(obj)(moved)
    to = getattr(obj, "to", None)
    if callable(to) and not isinstance(obj, type):
        return to(device)
    return obj
