"""Reader for the IDX format of MNIST and Fashion-MNIST (plain or gzip-compressed).

An IDX file is a header followed by the raw array, big-endian::

    bytes 0-1   0x00 0x00            (magic, always zero)
    byte  2     type code            0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                     0x0D float32, 0x0E float64
    byte  3     number of dimensions D
    4*D bytes   the sizes, each a big-endian uint32
    the rest    prod(sizes) values of the type, big-endian, C order

So ``train-images-idx3-ubyte`` starts ``00 00 08 03`` then 60000, 28, 28, and the labels file
``00 00 08 01`` then 60000. Every field is checked; a wrong file raises :class:`DataError`
naming the file and what was wrong.
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from sescratch.errors import DataError

IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx_bytes(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into an array of native byte order.

    Parameters
    ----------
    raw : bytes
        The whole file.
    source : str
        Name used in error messages.

    Returns
    -------
    array : np.ndarray
        Shape given by the header; dtype from the type code (native byte order).
    """
    if len(raw) < 4:
        raise DataError(f"{source}: not an IDX file (only {len(raw)} bytes, the header needs 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{source}: not an IDX file (magic starts {raw[0]:#04x} {raw[1]:#04x}, expected 0x00 0x00)")
    code, ndim = raw[2], raw[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"{c:#04x}" for c in IDX_TYPES)
        raise DataError(f"{source}: unknown IDX type code {code:#04x} (known: {known})")
    if ndim == 0:
        raise DataError(f"{source}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{source}: truncated IDX header ({len(raw)} bytes, expected {header_len})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_len
    if actual != expected:
        raise DataError(
            f"{source}: IDX header says shape {shape} of {dtype.name} ({expected} bytes of data), "
            f"but the file holds {actual} bytes after the header (truncated or corrupt)"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file; a name ending in ``.gz`` is decompressed first."""
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    return read_idx_bytes(raw, source=path)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when the name ends in ``.gz``).

    The inverse of :func:`read_idx`; tests use it to build files in the official format.
    """
    codes = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX type code")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = array.astype(IDX_TYPES[code], copy=False).tobytes()
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + body)
