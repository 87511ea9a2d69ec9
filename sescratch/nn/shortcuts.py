"""The shortcut path of a residual block: identity, option "B" (1x1 conv + BN) or option "A" (zero-pad)."""
from __future__ import annotations

from sescratch.backend import get_array_module
from sescratch.nn.layers import BatchNorm2d, Conv2d, Sequential
from sescratch.nn.module import Module

__all__ = ["ZeroPadShortcut", "make_shortcut"]


class ZeroPadShortcut(Module):
    """Option A shortcut (He et al. 2016, CIFAR): subsample by ``stride``, zero-pad the new channels.

    ``y[:, p:p+C_in] = x[:, :, ::S, ::S]`` with ``p = (C_out - C_in) // 2`` zero channels before
    and the rest after; no parameters. Backward: ``dx[:, :, ::S, ::S] = dy[:, p:p+C_in]``, zero elsewhere.
    """

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pad_front = (out_channels - in_channels) // 2

    def forward(self, x):
        xp = get_array_module(x)
        S, p, C = self.stride, self.pad_front, self.in_channels
        sub = x[:, :, ::S, ::S]  # N,C_in,OH,OW
        y = xp.zeros((x.shape[0], self.out_channels) + sub.shape[2:], dtype=x.dtype)  # N,C_out,OH,OW
        y[:, p:p + C] = sub
        self._x_shape = x.shape
        return y

    def backward(self, dy):
        xp = get_array_module(dy)
        S, p, C = self.stride, self.pad_front, self.in_channels
        dx = xp.zeros(self._x_shape, dtype=dy.dtype)  # N,C_in,H,W
        dx[:, :, ::S, ::S] = dy[:, p:p + C]
        return dx

    def trace(self, shape, name, records=None):
        C, H, W = shape
        S = self.stride
        return (self.out_channels, (H - 1) // S + 1, (W - 1) // S + 1)

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def make_shortcut(in_channels, out_channels, stride, *, kind="B", kernel_size=1):
    """``None`` (identity) when shapes agree; else option "B" (conv + BN) or "A" (zero-pad)."""
    if stride == 1 and in_channels == out_channels:
        return None
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    if kind != "B":
        raise ValueError(f"make_shortcut: kind must be 'A' or 'B', got {kind!r}")
    return Sequential(
        Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=False),
        BatchNorm2d(out_channels),
    )
