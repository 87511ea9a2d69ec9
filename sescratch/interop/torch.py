"""Convert sescratch models to ``torch.nn.Module`` and back, weights included.

``to_torch(model)`` walks the module tree and builds the PyTorch equivalent under the same
dotted names, so ``state_dict`` keys agree one to one; ``from_torch(module, name, **options)``
builds ``sescratch.models.create(name, ...)`` and loads the torch weights into it. PyTorch is only
an oracle here: it is imported inside these functions, never by the rest of the library.

SE FC weights stored as 1x1 convolutions ``(out, in, 1, 1)`` (the SENet release's layout) are
accepted by ``from_torch`` and reshaped to ``(out, in)``.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = ["to_torch", "from_torch"]


@functools.lru_cache(maxsize=None)
def _torch_classes():
    """Define the torch counterparts of the modules torch lacks (once, after importing torch)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    class GlobalAvgPool(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    class ZeroPadShortcut(nn.Module):
        def __init__(self, in_channels, out_channels, stride):
            super().__init__()
            self.stride, self.front = stride, (out_channels - in_channels) // 2
            self.back = out_channels - in_channels - self.front

        def forward(self, x):
            x = x[:, :, ::self.stride, ::self.stride]
            return F.pad(x, (0, 0, 0, 0, self.front, self.back))

    # hard sigmoid by its definition relu6(x + 3) / 6: F.hardsigmoid multiplies by a float32 1/6
    # even in float64 (relative error 3e-8), which would hide real differences at 1e-9
    gates = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
             "hard_sigmoid": lambda e: F.relu6(e + 3) / 6}

    class SEBlock(nn.Module):
        def __init__(self, channels, hidden, bias, squeeze, gate):
            super().__init__()
            self.squeeze, self.gate = squeeze, gate
            self.fc1 = nn.Linear(channels, hidden, bias=bias)
            self.fc2 = nn.Linear(hidden, channels, bias=bias)

        def forward(self, u):
            z = u.mean(dim=(2, 3)) if self.squeeze == "avg" else u.amax(dim=(2, 3))
            s = gates[self.gate](self.fc2(torch.relu(self.fc1(z))))
            return u * s[:, :, None, None]

    class ResidualBlock(nn.Module):
        """conv1..convK with BN and ReLU between; SE where ``placement`` says."""

        def __init__(self, children, n_convs, placement):
            super().__init__()
            for name, child in children.items():
                setattr(self, name, child)
            self.n_convs, self.placement = n_convs, placement

        def _se(self, where, x):
            return self.se_module(x) if self.placement == where else x

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            identity = self._se("identity", identity)
            h = self._se("pre", x)
            for i in range(1, self.n_convs + 1):
                h = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(h))
                if i < self.n_convs:
                    h = torch.relu(h)
                    if i == self.n_convs - 1:
                        h = self._se("after_3x3", h)
            h = self._se("standard", h)
            return self._se("post", torch.relu(h + identity))

    return {"GlobalAvgPool": GlobalAvgPool, "ZeroPadShortcut": ZeroPadShortcut, "SEBlock": SEBlock,
            "ResidualBlock": ResidualBlock}


def _convert(module):
    """The torch module equivalent to one sescratch module (weights not yet copied)."""
    from collections import OrderedDict

    from torch import nn

    from sescratch import nn as snn

    from sescratch.interop.torch_exemplars import convert as convert_exemplar

    exemplar = convert_exemplar(module, _convert)  # VGG, Inception, MobileNet, ShuffleNet parts
    if exemplar is not None:
        return exemplar
    T = _torch_classes()
    if isinstance(module, snn.Conv2d):
        return nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                         module.padding, groups=module.groups, bias=module.bias is not None)
    if isinstance(module, snn.BatchNorm2d):
        return nn.BatchNorm2d(module.num_features, eps=module.eps, momentum=module.momentum)
    if isinstance(module, snn.Linear):
        return nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    simple = {snn.ReLU: nn.ReLU, snn.Sigmoid: nn.Sigmoid, snn.Identity: nn.Identity,
              snn.GlobalAvgPool: T["GlobalAvgPool"]}
    if type(module) in simple:
        return simple[type(module)]()
    if isinstance(module, snn.Dropout):
        return nn.Dropout(module.p)
    if isinstance(module, snn.MaxPool2d):
        return nn.MaxPool2d(module.kernel_size, module.stride, module.padding,
                            ceil_mode=getattr(module, "ceil_mode", False))
    if isinstance(module, snn.ZeroPadShortcut):
        return T["ZeroPadShortcut"](module.in_channels, module.out_channels, module.stride)
    if isinstance(module, snn.SEBlock):
        return T["SEBlock"](module.channels, module.hidden, module.fc1.bias is not None, module.squeeze,
                            module.gate)
    if isinstance(module, (snn.BasicBlock, snn.Bottleneck)):
        children = OrderedDict((n, _convert(c)) for n, c in module.named_children())
        children.setdefault("downsample", None)
        n_convs = 2 if isinstance(module, snn.BasicBlock) else 3
        return T["ResidualBlock"](children, n_convs, module.placement)
    if isinstance(module, snn.Sequential):
        return nn.Sequential(OrderedDict((n, _convert(c)) for n, c in module.named_children()))
    raise ValueError(f"to_torch: no torch equivalent for {type(module).__name__}")


def to_torch(model):
    """A ``torch.nn.Module`` computing what ``model`` computes, with the same weights, dtype and mode."""
    import torch

    converted = _convert(model)
    state = model.state_dict()
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    converted = converted.to(dtype)
    converted.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    converted.train(model.training)
    return converted


def from_torch(module, name, **options):
    """Build ``sescratch.models.create(name, ...)`` and load the weights of the torch ``module``.

    ``num_classes`` and ``in_channels`` are read from the weights (``last_linear`` and the first
    conv); other ``options`` go to ``create``. The model takes the dtype of the torch weights.
    """
    from sescratch import models
    from sescratch.interop.loading import FIRST_CONVS, first_conv_channels

    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    in_channels = first_conv_channels(state)
    if "last_linear.weight" not in state or in_channels is None:
        raise ValueError(
            "from_torch: expected 'last_linear.weight' and a first conv (one of "
            f"{', '.join(FIRST_CONVS)}) in the torch state_dict (a module built by to_torch or with "
            f"the SENet release's names); got keys {sorted(state)[:6]} ..."
        )
    options.setdefault("num_classes", state["last_linear.weight"].shape[0])
    options.setdefault("in_channels", in_channels)
    model = models.create(name, init=False, **options)
    if state["last_linear.weight"].dtype == np.float64:
        model.astype(np.float64)
    ours = dict(model.named_parameters())
    for key, value in state.items():  # the release's SE FCs are 1x1 convolutions
        if key in ours and value.ndim == 4 and ours[key].data.ndim == 2 and value.shape[2:] == (1, 1):
            state[key] = value.reshape(value.shape[:2])
    model.load_state_dict(state)
    model.train(module.training)
    return model
