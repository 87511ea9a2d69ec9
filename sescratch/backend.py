"""Where the arrays live, and which CPU kernels run the hot loops.

Two independent choices:

* **Device** follows the arrays, as in DeZero: ``xp = get_array_module(x)`` is :mod:`numpy`
  for NumPy arrays and :mod:`cupy` for CuPy arrays. Every op is written once against ``xp``.
  :func:`to_device` moves arrays (and modules, which implement ``.to(device)``) between them.
* **CPU kernel family** for NumPy arrays: ``"numba"`` (fused, parallel kernels from
  :mod:`sescratch.kernels.numba`; the default when Numba imports) or ``"numpy"`` (the readable
  reference code inside the op files). Choose it with :func:`use`, as a call or a context
  manager, or with the ``SESCRATCH_BACKEND`` environment variable.

Ops ask :func:`get_kernel` for a fast kernel by name; ``None`` means "run the NumPy reference".
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Callable

import numpy

CPU_FAMILIES = ("numba", "numpy")

try:  # CuPy is optional: without it everything runs on NumPy.
    import cupy as _cupy
except Exception:  # ImportError, or a CUDA-less machine raising at import
    _cupy = None


def _numba_importable() -> bool:
    try:
        import numba  # noqa: F401
    except Exception:
        return False
    return True


def _initial_family() -> str:
    name = os.environ.get("SESCRATCH_BACKEND", "").strip().lower()
    if name:
        if name not in CPU_FAMILIES:
            raise ValueError(
                f"SESCRATCH_BACKEND: expected one of {CPU_FAMILIES}, got {name!r}"
            )
        return name
    return "numba" if _numba_importable() else "numpy"


_cpu_family = _initial_family()


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_array_module(*arrays: Any) -> ModuleType:
    """Return :mod:`cupy` if any argument is a CuPy array, else :mod:`numpy`.

    Non-array arguments (None, Python scalars) are ignored, so ops can pass optional inputs.
    """
    if _cupy is not None:
        return _cupy.get_array_module(*[a for a in arrays if a is not None])
    return numpy


def cpu_family() -> str:
    """The CPU kernel family in force: ``"numba"`` or ``"numpy"``."""
    return _cpu_family


class _Use:
    """Returned by :func:`use`: the switch is already made; ``with`` restores the previous one."""

    def __init__(self, previous: str):
        self.previous = previous

    def __enter__(self) -> "_Use":
        return self

    def __exit__(self, *exc: object) -> None:
        global _cpu_family
        _cpu_family = self.previous


def use(name: str) -> _Use:
    """Select the CPU kernel family, ``"numba"`` or ``"numpy"``.

    Works as a plain call (``use("numpy")``) and as a context manager
    (``with use("numpy"): ...``), which restores the previous family on exit.
    """
    global _cpu_family
    if name not in CPU_FAMILIES:
        raise ValueError(f"backend.use: expected one of {CPU_FAMILIES}, got {name!r}")
    if name == "numba" and not _numba_importable():
        raise ValueError("backend.use: 'numba' requested but Numba cannot be imported")
    previous, _cpu_family = _cpu_family, name
    return _Use(previous)


def get_kernel(name: str, *arrays: Any) -> Callable | None:
    """The fast kernel ``name`` for these arrays, or ``None`` to run the NumPy reference.

    CuPy arrays always get the CuPy kernel (``sescratch.kernels.cupy``); NumPy arrays get the
    Numba kernel (``sescratch.kernels.numba``) when that family is selected. A family that does
    not (yet) provide ``name`` also returns ``None``.
    """
    xp = get_array_module(*arrays)
    if xp is not numpy:
        family = "cupy"
    elif _cpu_family == "numba":
        family = "numba"
    else:
        return None
    module = importlib.import_module(f"sescratch.kernels.{family}")
    return getattr(module, name, None)


def to_device(obj: Any, device: str) -> Any:
    """Move an array, a container of arrays, or a module (anything with ``.to(device)``).

    ``device`` is ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy). Tuples, lists and dicts are rebuilt
    with their items moved; other objects are returned unchanged.
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"to_device: expected device 'cpu' or 'gpu', got {device!r}")
    if device == "gpu" and not cupy_available():
        raise ValueError("to_device: device 'gpu' requested but CuPy with a GPU is not available")
    if hasattr(obj, "to") and callable(obj.to) and not isinstance(obj, numpy.ndarray):
        if _cupy is None or not isinstance(obj, _cupy.ndarray):
            return obj.to(device)
    if isinstance(obj, numpy.ndarray) or (_cupy is not None and isinstance(obj, _cupy.ndarray)):
        if device == "gpu":
            return _cupy.asarray(obj)
        return _cupy.asnumpy(obj) if _cupy is not None else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(item, device) for item in obj)
    if isinstance(obj, dict):
        return {key: to_device(value, device) for key, value in obj.items()}
    return obj
