"""Write pickles the way Python 2's cPickle wrote the official CIFAR batches (protocol 2).

Python 3 cannot produce those bytes itself (it pickles ``bytes`` through ``_codecs.encode`` at
protocol 2, and NumPy 2 names ``numpy._core``), so the opcodes are emitted by hand:

* a Python 2 ``str`` is ``SHORT_BINSTRING``/``BINSTRING`` (read back as ``bytes`` with
  ``encoding="bytes"``);
* an ndarray is ``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b')`` then ``BUILD``
  with ``(1, shape, dtype, False, raw_bytes)``, the dtype being ``numpy.dtype('u1', 0, 1)`` then
  ``BUILD`` with ``(3, '|', None, None, None, -1, -1, 0)`` — NumPy 1.x's ``__reduce__`` output.
"""
import struct

import numpy as np


def _string(b: bytes) -> bytes:
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b
    return b"T" + struct.pack("<I", len(b)) + b


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    return b"J" + struct.pack("<i", v)


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _dtype(dt: np.dtype) -> bytes:
    code = dt.str[1:].encode()  # 'u1'
    order = b"|" if dt.itemsize == 1 else b"<"
    return (_global("numpy", "dtype") + _string(code) + _int(0) + _int(1) + b"\x87R"
            + b"(" + _int(3) + _string(order) + b"NNN" + b"J" + struct.pack("<i", -1)
            + b"J" + struct.pack("<i", -1) + _int(0) + b"tb")


def _array(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    shape = b"(" + b"".join(_int(d) if d < 256 else b"J" + struct.pack("<i", d) for d in a.shape) + b"t"
    return (_global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
            + _int(0) + b"\x85" + _string(b"b") + b"\x87R"
            + b"(" + _int(1) + shape + _dtype(a.dtype) + b"\x89" + _string(a.tobytes()) + b"tb")


def _obj(obj) -> bytes:
    if isinstance(obj, dict):
        return b"}(" + b"".join(_obj(k) + _obj(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, list):
        return b"](" + b"".join(_obj(v) for v in obj) + b"e"
    if isinstance(obj, bytes):
        return _string(obj)
    if isinstance(obj, (int, np.integer)):
        return _int(int(obj))
    if isinstance(obj, np.ndarray):
        return _array(obj)
    raise TypeError(f"py2pickle: unsupported {type(obj).__name__}")


def dumps(obj) -> bytes:
    return b"\x80\x02" + _obj(obj) + b"."
