"""Layers: thin modules around the ops of :mod:`sescratch.ops`, plus :class:`Sequential`
(:class:`~sescratch.nn.BatchNorm2d` lives in :mod:`sescratch.nn.batchnorm`).

Each layer keeps the cache of its last forward and hands it to the op's backward; parameter
gradients are *added* into ``Parameter.grad``. Shapes: ``N, C, H, W`` as in the ops.
A module instance remembers one forward, so a layer used twice in a network must be two instances.
"""
from __future__ import annotations

from collections import OrderedDict

from sescratch import ops
from sescratch.ops._checks import check_positive_int, pair
from sescratch.ops.window import conv_output_size
from sescratch.nn import init
from sescratch.nn.batchnorm import BatchNorm2d  # noqa: F401  (its home since the fused forwards; imported from here too)
from sescratch.nn.module import Module, Parameter, Record, ShapeError, check_channels

__all__ = [
    "Conv2d",
    "Linear",
    "ReLU",
    "ReLU6",
    "Sigmoid",
    "GlobalAvgPool",
    "MaxPool2d",
    "Identity",
    "Sequential",
]


def _pair(v, layer: str, name: str, minimum: int = 1) -> tuple[int, int]:
    """``(v, v)`` or ``(v[0], v[1])``, ints >= ``minimum``, checked as the ops check them (a
    silent ``int(2.9)`` would build another layer than asked for)."""
    return pair(layer, name, v, minimum=minimum)


def _trace_window(layer: str, kind: str, shape, kernel, stride, padding, ceil_mode=False):
    """Output (OH, OW) of a sliding window; the input must cover the kernel and the stride."""
    _, H, W = shape
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    if H + 2 * PH < KH or W + 2 * PW < KW:
        raise ShapeError(
            f"layer '{layer}' ({kind}, kernel {KH}x{KW}, padding {PH}x{PW}) expects a spatial size "
            f"of at least {max(KH - 2 * PH, 1)}x{max(KW - 2 * PW, 1)}, got {H}x{W}"
        )
    if (SH > 1 and H < SH) or (SW > 1 and W < SW):
        raise ShapeError(
            f"layer '{layer}' ({kind}, stride {SH}x{SW}) expects a spatial size of at least "
            f"{SH}x{SW} to downsample, got {H}x{W}"
        )
    return (conv_output_size(H, KH, SH, PH, ceil_mode=ceil_mode),
            conv_output_size(W, KW, SW, PW, ceil_mode=ceil_mode))


class Conv2d(Module):
    """2-D cross-correlation, weight ``(C_out, C_in // groups, KH, KW)``, He-normal (fan_out) init."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, bias=True):
        super().__init__()
        for name, size in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            check_positive_int("Conv2d", name, size)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "Conv2d", "kernel_size")
        self.stride, self.padding = _pair(stride, "Conv2d", "stride"), _pair(padding, "Conv2d", "padding", 0)
        KH, KW = self.kernel_size
        self.weight = Parameter(init.kaiming_normal((out_channels, in_channels // groups, KH, KW)))
        self.bias = Parameter(init.zeros((out_channels,))) if bias else None

    def forward(self, x):
        b = self.bias.data if self.bias is not None else None
        y, self._cache = ops.conv2d_forward(
            x, self.weight.data, b, stride=self.stride, padding=self.padding, groups=self.groups
        )
        return y

    def backward(self, dy):
        dx, dw, db = ops.conv2d_backward(dy, self._take("_cache"))
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def trace(self, shape, name, records=None):
        check_channels(name, "Conv2d", shape, self.in_channels)
        OH, OW = _trace_window(name, "Conv2d", shape, self.kernel_size, self.stride, self.padding)
        out = (self.out_channels, OH, OW)
        if records is not None:
            KH, KW = self.kernel_size
            macs = self.out_channels * OH * OW * (self.in_channels // self.groups) * KH * KW
            records.append(Record(name, "Conv2d", out, self.num_parameters(), macs, part="conv"))
        return out

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
                f"bias={self.bias is not None}")


class Linear(Module):
    """``y = x w^T + b`` with ``w`` of shape ``(out, in)``; PyTorch's uniform(±1/sqrt(in)) init."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        check_positive_int("Linear", "in_features", in_features)
        check_positive_int("Linear", "out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init.uniform_fan_in((out_features, in_features), in_features))
        self.bias = Parameter(init.uniform_fan_in((out_features,), in_features)) if bias else None

    def forward(self, x):
        b = self.bias.data if self.bias is not None else None
        y, self._cache = ops.linear_forward(x, self.weight.data, b)
        return y

    def backward(self, dy):
        dx, dw, db = ops.linear_backward(dy, self._take("_cache"))
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def trace(self, shape, name, records=None, group="backbone"):
        if tuple(shape) != (self.in_features,):
            raise ShapeError(f"layer '{name}' (Linear) expects input (N, {self.in_features}), got (N, "
                             + ", ".join(str(s) for s in shape) + ")")
        out = (self.out_features,)
        if records is not None:
            macs = self.in_features * self.out_features
            records.append(Record(name, "Linear", out, self.num_parameters(), macs, group, "fc"))
        return out

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class _Elementwise(Module):
    _forward = _backward = None
    kind = ""

    def forward(self, x):
        y, self._cache = type(self)._forward(x)
        return y

    def backward(self, dy):
        return type(self)._backward(dy, self._cache)

    def trace(self, shape, name, records=None):
        return tuple(shape)  # free in MACs; not listed in the summary


class ReLU(_Elementwise):
    """``max(x, 0)``."""

    _forward, _backward = staticmethod(ops.relu_forward), staticmethod(ops.relu_backward)


class ReLU6(_Elementwise):
    """``min(max(x, 0), 6)`` (the clipped ReLU of the MobileNet ports)."""

    _forward, _backward = staticmethod(ops.relu6_forward), staticmethod(ops.relu6_backward)


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``."""

    _forward, _backward = staticmethod(ops.sigmoid_forward), staticmethod(ops.sigmoid_backward)


class Identity(Module):
    def forward(self, x):
        return x

    def backward(self, dy):
        return dy

    def trace(self, shape, name, records=None):
        return tuple(shape)


class GlobalAvgPool(Module):
    """``(N, C, H, W) -> (N, C)``: the mean over each channel's plane (the squeeze, Eq. 2)."""

    def forward(self, x):
        z, self._cache = ops.global_avg_pool_forward(x)
        return z

    def backward(self, dz):
        return ops.global_avg_pool_backward(dz, self._cache)

    def trace(self, shape, name, records=None):
        if len(shape) != 3:
            raise ShapeError(f"layer '{name}' (GlobalAvgPool) expects (N, C, H, W), got (N, {shape})")
        C, H, W = shape
        if records is not None:
            records.append(Record(name, "GlobalAvgPool", (C,), 0, C * H * W, part="pool"))
        return (C,)


class MaxPool2d(Module):
    """Max over ``kernel_size`` windows (stride defaults to the kernel size), padding with -inf;
    ``ceil_mode`` rounds the output size up (PyTorch's rule, :func:`sescratch.ops.max_pool2d_forward`)."""

    def __init__(self, kernel_size, stride=None, padding=0, *, ceil_mode=False):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "MaxPool2d", "kernel_size")
        self.stride = _pair(stride, "MaxPool2d", "stride") if stride is not None else self.kernel_size
        self.padding = _pair(padding, "MaxPool2d", "padding", 0)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x):
        y, self._cache = ops.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                                ceil_mode=self.ceil_mode)
        return y

    def backward(self, dy):
        return ops.max_pool2d_backward(dy, self._cache)

    def trace(self, shape, name, records=None):
        OH, OW = _trace_window(name, "MaxPool2d", shape, self.kernel_size, self.stride, self.padding,
                               self.ceil_mode)
        out = (shape[0], OH, OW)
        if records is not None:
            records.append(Record(name, "MaxPool2d", out, 0, 0, part="pool"))
        return out

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                + (", ceil_mode=True" if self.ceil_mode else ""))


class Sequential(Module):
    """Children run in order; ``backward`` walks them in reverse. Names ``"0", "1", ...`` or given."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, module in items:
            setattr(self, name, module)

    def __getitem__(self, index: int) -> Module:
        return list(self.children())[index]

    def __len__(self) -> int:
        return len(list(self.children()))

    def __iter__(self):
        return iter(list(self.children()))

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x

    def backward(self, dy):
        for module in reversed(list(self.children())):
            dy = module.backward(dy)
        return dy

    def trace(self, shape, name, records=None):
        for child_name, module in self.named_children():
            shape = module.trace(shape, f"{name}.{child_name}" if name else child_name, records)
        return shape
