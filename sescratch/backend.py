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

Op modules declare the kernels they use with :func:`declare_kernels` (an unknown name is an error
when the op module is imported) and ask for one by name in their dispatch section; ``None``
means "run the reference code". Each family's table is ``sescratch.kernels.<family>.KERNELS``.

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

from sescratch.kernels import DECLARED

__all__ = [
    "CPU_FAMILIES",
    "cpu_family",
    "cupy_available",
    "declare_kernels",
    "family_kernels",
    "get_array_module",
    "get_kernel",
    "run_placement",
    "to_device",
    "to_numpy",
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
_tables: dict[str, dict[str, Callable]] = {}  # family -> its KERNELS table (the dict itself)


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


def run_placement(name: str) -> tuple[str, str]:
    """A run's ``--backend`` as ``(CPU kernel family, device)``.

    ``"numba"`` -> ``("numba", "cpu")``, ``"numpy"`` -> ``("numpy", "cpu")``, ``"cupy"`` ->
    ``("numpy", "gpu")`` (on the GPU the arrays choose the CuPy kernels; the CPU family is unused).
    """
    placements = {"numba": ("numba", "cpu"), "numpy": ("numpy", "cpu"), "cupy": ("numpy", "gpu")}
    if name not in placements:
        raise ValueError(f"run_placement: expected one of {tuple(placements)}, got {name!r}")
    return placements[name]


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


def _family_for(arrays) -> str | None:
    """The kernel family these arrays run on: ``"cupy"``, ``"numba"`` or ``None`` (the reference)."""
    if get_array_module(*arrays) is not numpy:
        return "cupy"
    return "numba" if _cpu_family == "numba" else None


def family_kernels(family: str) -> dict[str, Callable]:
    """The table ``{name: kernel}`` of a family (``"numba"`` or ``"cupy"``); imports the family."""
    table = _tables.get(family)
    if table is None:
        if family not in ("numba", "cupy"):
            raise ValueError(f"family_kernels: expected 'numba' or 'cupy', got {family!r}")
        table = _tables[family] = importlib.import_module(f"sescratch.kernels.{family}").KERNELS
    return table


def get_kernel(name: str, *arrays: Any) -> Callable | None:
    """The fast kernel ``name`` for these arrays, or ``None`` to run the reference code.

    CuPy arrays always get the CuPy kernel; NumPy arrays get the Numba kernel when that family is
    selected and ``None`` under ``"numpy"``. ``name`` must be one of
    :data:`sescratch.kernels.DECLARED` (``ValueError`` otherwise), and every family provides
    every declared name (``tests/kernels`` checks the tables), so there is no silent fallback.
    """
    if name not in DECLARED:
        raise ValueError(f"get_kernel: unknown kernel {name!r}; declared kernels: {', '.join(DECLARED)}")
    family = _family_for(arrays)
    return None if family is None else family_kernels(family)[name]


class KernelTable:
    """The kernels one op module dispatches to; made by :func:`declare_kernels`."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names

    def get(self, name: str, *arrays: Any) -> Callable | None:
        """As :func:`get_kernel`, for a name this module declared (``ValueError`` otherwise)."""
        if name not in self.names:
            raise ValueError(f"kernel {name!r} was not declared here; declared: {', '.join(self.names)}")
        return get_kernel(name, *arrays)

    def __repr__(self) -> str:
        return f"declare_kernels{self.names!r}"


def declare_kernels(*names: str) -> KernelTable:
    """Declare the kernels an op module may call; an unknown name fails at the module's import.

    ``_KERNELS = declare_kernels("conv2d_forward", "conv2d_backward")`` at the bottom of an op
    file, then ``kernel = _KERNELS.get("conv2d_forward", x)`` in its dispatch section.
    """
    unknown = [name for name in names if name not in DECLARED]
    if unknown:
        raise ValueError(
            f"declare_kernels: unknown kernel name(s) {', '.join(map(repr, unknown))}; "
            f"declared in sescratch.kernels.DECLARED: {', '.join(DECLARED)}"
        )
    return KernelTable(tuple(names))


def to_numpy(a: Any) -> numpy.ndarray | None:
    """``a`` as a NumPy array on the host; ``None`` stays ``None``.

    A NumPy array is returned as it is (no copy), a CuPy array is copied to the host
    (``cupy.asnumpy``), and anything else array-like (Python scalars, lists, NumPy scalars) goes
    through :func:`numpy.asarray`. Use it wherever a result leaves the op layer for printing,
    comparing or saving; use :func:`to_device` to move whole containers or modules.
    """
    if a is None:
        return None
    if isinstance(a, numpy.ndarray):
        return a
    cupy = _loaded_cupy()
    if cupy is not None and isinstance(a, cupy.ndarray):
        return cupy.asnumpy(a)
    return numpy.asarray(a)


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
            "(install the extra that matches the CUDA driver, 'cuda12' (cupy-cuda12x) or 'cuda13' "
            "(cupy-cuda13x), on a machine with an NVIDIA GPU)"
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
