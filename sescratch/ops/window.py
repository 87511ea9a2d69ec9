"""The output size of a sliding window (convolution and pooling alike), written once.

Also the guard every windowed op calls before it allocates: a padding (or an input) so large
that the padded input or the output would not fit in memory is refused with a sentence naming
the op, never with a ``MemoryError`` (or a machine swapping) deep inside NumPy.
"""
from __future__ import annotations

from math import prod
from typing import Sequence

__all__ = ["conv_output_size", "kernel_strides", "MAX_ELEMENTS", "check_allocation"]

MAX_ELEMENTS = 2**31  # the largest array a windowed op allocates (8 GiB in float32)


def conv_output_size(size: int, kernel: int, stride: int, padding: int, *, ceil_mode: bool = False) -> int:
    """How many windows fit along one axis.

    ``floor((size + 2 * padding - kernel) / stride) + 1`` (``ceil`` with ``ceil_mode``).
    ``size`` is the input height or width, ``padding`` the zeros added on *each* border. Used by
    :mod:`sescratch.ops.conv`, :mod:`sescratch.ops.pool`, :mod:`sescratch.ops.avg_pool`, their
    kernels and the layers' shape traces. A result below 1 means the window does not fit in the padded input.

    ``ceil_mode`` is PyTorch's pooling rule: round up, so that a last, partial window covers the
    leftover rows, but drop that window when it would start in the right padding (every window
    must start inside the input or the left padding).
    """
    span = size + 2 * padding - kernel
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1  # ceil division
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def kernel_strides(stride: tuple[int, int], OH: int, OW: int) -> tuple[int, int]:
    """The strides a conv kernel is given: 1 along an axis with a single output, whose only window
    starts at 0 whatever the stride. A stride beyond the image (2**32, which the ops accept) then
    costs nothing: it never reaches a flat layout rounded up to a multiple of it (Numba's
    depthwise kernel) or an ``int32`` kernel argument (the CuPy kernels)."""
    return (1 if OH == 1 else stride[0]), (1 if OW == 1 else stride[1])


def check_allocation(op: str, name: str, value, shapes: dict[str, Sequence[int]]) -> None:
    """Refuse, before allocating, arrays of more than :data:`MAX_ELEMENTS` elements.

    ``shapes`` maps what would be allocated ("the padded input", "y") to its shape;
    ``name``/``value`` is the argument blamed (usually ``padding``).
    """
    for what, shape in shapes.items():
        elements = prod(int(s) for s in shape)
        if elements > MAX_ELEMENTS:
            raise ValueError(
                f"{op}: argument '{name}' {value!r} makes {what} of shape {tuple(shape)} "
                f"({elements:,} elements); expected at most {MAX_ELEMENTS:,} elements "
                f"(a padding of at most a few rows)"
            )
