"""Average pooling over windows: Inception's pooling branch and its 3x3 stride-1 pools.

(:class:`~sescratch.nn.layers.MaxPool2d` and :class:`~sescratch.nn.layers.GlobalAvgPool` sit
with the other layers.) Shapes ``N, C, H, W`` as in the ops.
"""
from __future__ import annotations

from sescratch import ops
from sescratch.nn.layers import _pair, _trace_window
from sescratch.nn.module import Module, Record, ShapeError

__all__ = ["AvgPool2d"]


class AvgPool2d(Module):
    """Mean over ``kernel_size`` windows (stride defaults to the kernel size), zero padding.

    ``ceil_mode`` rounds the output size up and ``count_include_pad`` chooses the divisor
    (the window's cells with or without its padding), both with PyTorch's semantics
    (:func:`sescratch.ops.avg_pool2d_forward`). In the summary an average pool costs one
    addition per input element of each window (``C OH OW KH KW``), as the squeeze does.
    """

    def __init__(self, kernel_size, stride=None, padding=0, *, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "AvgPool2d", "kernel_size")
        self.stride = _pair(stride, "AvgPool2d", "stride") if stride is not None else self.kernel_size
        self.padding = _pair(padding, "AvgPool2d", "padding", 0)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)

    def forward(self, x):
        y, self._cache = ops.avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                                ceil_mode=self.ceil_mode,
                                                count_include_pad=self.count_include_pad)
        return y

    def backward(self, dy):
        return ops.avg_pool2d_backward(dy, self._cache)

    def trace(self, shape, name, records=None):
        if len(shape) != 3:
            raise ShapeError(f"layer '{name}' (AvgPool2d) expects (N, C, H, W), got (N, {shape})")
        OH, OW = _trace_window(name, "AvgPool2d", shape, self.kernel_size, self.stride, self.padding,
                               self.ceil_mode)
        out = (shape[0], OH, OW)
        if records is not None:
            macs = shape[0] * OH * OW * self.kernel_size[0] * self.kernel_size[1]
            records.append(Record(name, "AvgPool2d", out, 0, macs, part="pool"))
        return out

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                + (", ceil_mode=True" if self.ceil_mode else "")
                + ("" if self.count_include_pad else ", count_include_pad=False"))
