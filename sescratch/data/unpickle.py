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


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` inside a pickle; deliberately not callable."""

    __slots__ = ()


_NDARRAY = _NdarrayToken()


def _safe_reconstruct(subtype, shape, typecode):
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError(f"_reconstruct may only build numpy.ndarray, got {subtype!r}")
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


def _check_plain(obj, depth: int = 0) -> None:
    if depth > 20:
        raise DataError("nesting deeper than 20 levels")
    if obj is None or isinstance(obj, (bool, int, float, bytes, str)):
        return
    if isinstance(obj, np.ndarray):
        if type(obj) is not np.ndarray or obj.dtype.kind not in SAFE_DTYPE_KINDS:
            raise DataError(f"array of dtype {obj.dtype} / type {type(obj).__name__} refused")
        return
    if isinstance(obj, dict) and type(obj) is dict:
        for key, value in obj.items():
            _check_plain(key, depth + 1)
            _check_plain(value, depth + 1)
        return
    if type(obj) in (list, tuple):
        for item in obj:
            _check_plain(item, depth + 1)
        return
    raise DataError(f"object of type {type(obj).__name__} refused")


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
        _check_plain(obj)
    except DataError as exc:
        raise DataError(f"{source}: refused to load: {exc}") from None
    except pickle.UnpicklingError as exc:
        raise DataError(f"{source}: refused to load: {exc}") from None
    except Exception as exc:  # EOFError, ValueError, TypeError... from a corrupt pickle
        raise DataError(f"{source}: corrupt pickle ({type(exc).__name__}: {exc})") from None
    return obj
