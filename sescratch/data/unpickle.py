"""A restricted unpickler for the CIFAR python batches: data, never code.

``pickle.load`` runs whatever callable a pickle names (``os.system`` via a ``REDUCE`` opcode is
the classic attack), so the CIFAR files are read with :class:`RestrictedUnpickler` instead.

What the official files contain
-------------------------------
Each batch (``data_batch_1``, ``test_batch``, ``train``, ``meta``, ...) is a Python 2 ``cPickle``
dict with ``str`` keys (read back as ``bytes`` with ``encoding="bytes"``), lists of ints, lists of
``str``, ints, and — under ``b"data"`` — a NumPy uint8 array (N, 3072). Plain containers, bytes,
str and numbers need no callable at all. The array does: NumPy pickles it as
``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")`` followed by ``__setstate__``
with the shape, a ``numpy.dtype("u1", 0, 1)`` and the raw bytes.

What :meth:`RestrictedUnpickler.find_class` admits — exactly three names, nothing else:

* ``numpy.core.multiarray._reconstruct`` (and its NumPy 2 spelling ``numpy._core.multiarray``)
  -> a wrapper that only builds a base-class ``ndarray``;
* ``numpy.ndarray`` -> an inert token, accepted only as the first argument of that wrapper
  (calling it through ``REDUCE`` fails: it is not callable);
* ``numpy.dtype`` -> a wrapper that only builds plain numeric dtypes (bool, signed/unsigned
  integers, floats): no object, void/structured or string dtypes, so no array can hold pointers.

Any other global (``os.system``, ``builtins.eval``, ``_codecs.encode``, ...) raises
:class:`DataError`. After loading, the whole object is walked once more and must consist only of
dict/list/tuple/bytes/str/int/float/bool/None and numeric NumPy arrays.

The walk is bounded by the file's size. A pickle can share one object many times by reference
(``BINGET``), so a 174-byte file can describe a list of 40 references to a list of 40 references
... 19 levels deep: 40^19 paths to walk naively. The walk visits each object once (a memo of
``id``), and each visit of a container entry costs at least one opcode byte of the file, so a
budget of :data:`NODES_PER_BYTE` entries per byte (plus a small constant) is never reached by a
genuine file; a file that exceeds it, or nests deeper than :data:`MAX_DEPTH`, is refused at once.
``_reconstruct`` only accepts the empty shape NumPy writes, so no file can allocate an array
larger than the bytes it holds.
"""
from __future__ import annotations

import io
import pickle

import numpy as np

from sescratch.errors import DataError

try:  # NumPy >= 2 keeps the implementation in numpy._core
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

SAFE_DTYPE_KINDS = "biuf"
MAX_DEPTH = 20
NODES_PER_BYTE = 2


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` inside a pickle; deliberately not callable."""

    __slots__ = ()


_NDARRAY = _NdarrayToken()


def _safe_reconstruct(subtype, shape, typecode):
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError(f"_reconstruct may only build numpy.ndarray, got {subtype!r}")
    if tuple(shape) not in ((0,), ()):  # NumPy pickles (0,); a real shape comes from __setstate__
        raise pickle.UnpicklingError(f"_reconstruct with shape {shape!r} refused (NumPy writes (0,))")
    return _np_reconstruct(np.ndarray, shape, typecode)


def _safe_dtype(spec, align=False, copy=False):
    if isinstance(spec, bytes):
        spec = spec.decode("ascii")
    if not isinstance(spec, str):
        raise pickle.UnpicklingError(f"numpy.dtype from {type(spec).__name__} refused")
    dtype = np.dtype(spec)
    if dtype.kind not in SAFE_DTYPE_KINDS or dtype.fields is not None:
        raise pickle.UnpicklingError(f"numpy.dtype {spec!r} refused (only numeric dtypes)")
    return np.dtype(spec, align=bool(align), copy=bool(copy))


ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _safe_dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed (only plain containers, bytes, str, "
                "numbers and numeric NumPy arrays may appear in a dataset file)"
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def _check_plain(obj, budget: int) -> None:
    """Walk ``obj`` once (shared objects once), refusing anything but plain data, within ``budget``."""
    seen: set[int] = set()
    stack = [(obj, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DataError(f"nesting deeper than {MAX_DEPTH} levels")
        if obj is None or isinstance(obj, (bool, int, float, bytes, str)):
            continue
        if isinstance(obj, np.ndarray):
            if type(obj) is not np.ndarray or obj.dtype.kind not in SAFE_DTYPE_KINDS:
                raise DataError(f"array of dtype {obj.dtype} / type {type(obj).__name__} refused")
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict) and type(obj) is dict:
            items = [x for pair in obj.items() for x in pair]
        elif type(obj) in (list, tuple):
            items = obj
        else:
            raise DataError(f"object of type {type(obj).__name__} refused")
        budget -= len(items)
        if budget < 0:
            raise DataError("more references than a file of this size can hold plainly "
                            "(a structure of shared references, refused)")
        stack.extend((item, depth + 1) for item in items)


def restricted_loads(data: bytes, source: str = "<bytes>"):
    """Unpickle ``data`` (``encoding="bytes"``) admitting only plain data and numeric arrays.

    Raises
    ------
    DataError
        Naming ``source`` and the refused global or object, for anything else — including a
        truncated or corrupt pickle.
    """
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
        _check_plain(obj, budget=NODES_PER_BYTE * len(data) + 1000)
    except DataError as exc:
        raise DataError(f"{source}: refused to load: {exc}") from None
    except pickle.UnpicklingError as exc:
        raise DataError(f"{source}: refused to load: {exc}") from None
    except Exception as exc:  # EOFError, ValueError, TypeError... from a corrupt pickle
        raise DataError(f"{source}: corrupt pickle ({type(exc).__name__}: {exc})") from None
    return obj
