"""Input validation shared by the ops: every message names the op, the argument, expected vs. actual.

Each check raises ``ValueError`` so that a wrong call fails at the op's door with a sentence,
never with a NumPy traceback from deep inside (or, worse, silent broadcasting).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def check_float_array(op: str, name: str, x, *, ndim: int | Sequence[int] | None = None) -> None:
    """``x`` must be an array of a floating dtype, with ``ndim`` dimensions when given."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise ValueError(f"{op}: argument '{name}' must be an array, got {type(x).__name__}")
    if np.dtype(x.dtype) not in (np.float32, np.float64):  # float16: no kernel computes in it
        raise ValueError(
            f"{op}: argument '{name}' must have a floating dtype (float32 or float64), got {x.dtype}"
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ValueError(
                f"{op}: argument '{name}' must be {want}-D, got {x.ndim}-D array of shape {tuple(x.shape)}"
            )


def check_shape(op: str, name: str, x, expected: Sequence[int | None], meaning: str = "") -> None:
    """``x.shape`` must equal ``expected`` (``None`` entries match any size)."""
    shape = tuple(x.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected))
    if not ok:
        items = ["*" if e is None else str(e) for e in expected]
        want = "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        extra = f" ({meaning})" if meaning else ""
        raise ValueError(f"{op}: argument '{name}' expected shape {want}{extra}, got {shape}")


def check_same_dtype(op: str, **arrays) -> None:
    """All given arrays (None skipped) share one dtype."""
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"'{n}' {d}" for n, d in dtypes.items())
        raise ValueError(f"{op}: arguments must share one dtype, got {listed}")


def check_writable_gradient(op: str, name: str, a) -> None:
    """``a`` is a gradient to add another into in place: C-contiguous and writeable."""
    if not a.flags.c_contiguous or not getattr(a.flags, "writeable", True):  # CuPy: always writeable
        raise ValueError(f"{op}: argument '{name}' must be a C-contiguous, writeable array (a fresh gradient)")


def is_int(value) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(op: str, name: str, value) -> None:
    """``value`` must be an int >= 1 (a size: channels, features, groups)."""
    if not (is_int(value) and value >= 1):
        raise ValueError(f"{op}: argument '{name}' must be a positive int, got {value!r}")


def pair(op: str, name: str, value, *, minimum: int) -> tuple[int, int]:
    """Normalise an int or an (h, w) pair of ints, each ``>= minimum``."""
    if is_int(value):
        pair_ = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        pair_ = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{op}: argument '{name}' must be an int or a pair of ints, got {value!r}")
    if min(pair_) < minimum:
        raise ValueError(f"{op}: argument '{name}' must be >= {minimum}, got {value!r}")
    return pair_


def check_planes_nonempty(op: str, name: str, x) -> None:
    """Channels, height and width of ``x`` at least 1 (an empty plane has no mean and no maximum);
    an empty batch is allowed (a rank's shard of synchronised batch norm may hold no image)."""
    if 0 in tuple(x.shape[1:]):
        raise ValueError(f"{op}: argument '{name}' has an empty plane or no channel (shape {tuple(x.shape)}); "
                         "expected at least one channel and pixel")


def check_nonempty(op: str, name: str, x) -> None:
    """Every dimension of ``x`` (batch, channels, height, width) must be at least 1."""
    if 0 in tuple(x.shape):
        raise ValueError(f"{op}: argument '{name}' is empty (shape {tuple(x.shape)}); expected "
                         "at least one image, channel and pixel in every dimension")
