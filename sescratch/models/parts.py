"""Pieces shared by the non-ResNet exemplars: the network shell, a conv-BN-ReLU unit, parallel
branches joined by a concatenation (an Inception module), and a flatten for VGG's classifier.

Every backward is composed by hand from the op backwards: where one input feeds several
branches, the gradients of the branches are *summed* (the fan-out rule), and the gradient of a
concatenation is its split (:func:`sescratch.ops.concat_backward`).
"""
from __future__ import annotations

from sescratch import ops
from sescratch.models.resnet import ResNet
from sescratch.nn.layers import BatchNorm2d, Conv2d, ReLU, Sequential
from sescratch.nn.module import Module, ShapeError
from sescratch.nn.se import SEBlock

__all__ = ["Network", "Branches", "Flatten", "conv_bn", "make_se"]


def conv_bn(in_channels, out_channels, kernel_size, stride=1, padding=0, *, groups=1, bias=False,
            eps=1e-5, relu=True) -> Sequential:
    """``conv -> bn [-> relu]`` named ``conv``, ``bn``, ``relu`` (Cadene's ``BasicConv2d``)."""
    parts = {"conv": Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias),
             "bn": BatchNorm2d(out_channels, eps=eps)}
    if relu:
        parts["relu"] = ReLU()
    return Sequential(parts)


def make_se(channels: int, se: dict | None) -> SEBlock | None:
    """An :class:`SEBlock` on ``channels`` with the options ``se`` (``None``: no SE)."""
    return None if se is None else SEBlock(channels, **se)


class Network(ResNet):
    """A named ``Sequential`` model (see :class:`~sescratch.models.resnet.ResNet`) whose SE blocks
    are found by path, and that may accept a single input size only.

    Parameters
    ----------
    name, layers, in_channels
        As :class:`~sescratch.models.resnet.ResNet`.
    se_paths : dict, optional
        ``{"SE_3_1": "inception_3a.se_module", ...}``: the analysis label of each SE block (the
        paper's ``SE_stage_block``) and its dotted name. Without it, blocks are found as in a
        ResNet (``layerK.i.se_module``).
    input_size : (H, W), optional
        The only spatial size the model takes (VGG's classifier reads a fixed 7x7 grid);
        ``fixed_reason`` says why, in the error message.
    """

    def __init__(self, name, layers, in_channels, *, se_paths=None, input_size=None, fixed_reason=""):
        super().__init__(name, layers, in_channels)
        self.se_paths = dict(se_paths or {})
        self.input_size = None if input_size is None else tuple(input_size)
        self.fixed_reason = fixed_reason

    def output_shape(self, input_shape) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if self.input_size is not None and len(shape) == 4 and shape[2:] != self.input_size:
            H, W = self.input_size
            raise ValueError(
                f"{self.model_name}: expected input of shape (N, {self.in_channels}, {H}, {W}); the model "
                f"takes {H}x{W} images only ({self.fixed_reason}), got {shape}"
            )
        return super().output_shape(shape)

    def se_blocks(self) -> dict[str, SEBlock]:
        if not self.se_paths:
            return super().se_blocks()
        found = {}
        for label, path in self.se_paths.items():
            module = self
            for part in path.split("."):
                module = getattr(module, part)
            found[label] = module
        return found


class Flatten(Module):
    """``(N, C, H, W) -> (N, C*H*W)`` in C order (PyTorch's ``x.view(N, -1)``); backward reshapes back."""

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)  # N,C*H*W

    def backward(self, dy):
        return dy.reshape(self._shape)  # N,C,H,W

    def trace(self, shape, name, records=None):
        size = 1
        for s in shape:
            size *= int(s)
        return (size,)


class Branches(Module):
    """Parallel branches on one input, concatenated along the channels; optionally SE on the result.

    ``y = concat(b_1(x), ..., b_B(x))`` then ``y = se_module(y)``: the SE-Inception module of the
    paper's Fig. 2 (SE on the output of the whole module). Children: the branches under the given
    names (``branch0``, ``branch1``, ... as Cadene's ports), then ``se_module`` when ``se_module`` is
    given.

    Backward, line for line against the forward, bottom up: the SE block's backward, the split of
    the concatenation, each branch's backward, and the **sum** of the branches' input gradients
    (x fans out to every branch).
    """

    def __init__(self, branches: dict, se_module: Module | None = None):
        super().__init__()
        self._set_branches(branches)
        self.se_module = se_module

    def _set_branches(self, branches: dict) -> None:
        if not branches:
            raise ValueError(f"{type(self).__name__}: expected at least one branch")
        self.branch_names = list(branches)
        for name, branch in branches.items():
            setattr(self, name, branch)

    def branches(self) -> list[Module]:
        return [getattr(self, n) for n in self.branch_names]

    def _concat_forward(self, x):
        ys = [branch(x) for branch in self.branches()]  # N,C_b,OH,OW each
        y, self._concat = ops.concat_forward(ys, axis=1)  # N,sum C_b,OH,OW
        return y

    def _concat_backward(self, dy):
        dys = ops.concat_backward(dy, self._concat)  # N,C_b,OH,OW each
        dx = None
        for branch, dy_b in zip(self.branches(), dys):
            dx_b = branch.backward(dy_b)  # N,C,H,W
            dx = dx_b if dx is None else dx + dx_b  # fan-out: x feeds every branch
        return dx

    def forward(self, x):
        y = self._concat_forward(x)
        return y if self.se_module is None else self.se_module(y)

    def backward(self, dy):
        if self.se_module is not None:
            dy = self.se_module.backward(dy)
        return self._concat_backward(dy)

    def _trace_branches(self, shape, name, records):
        outs = []
        for branch_name in self.branch_names:
            prefix = f"{name}.{branch_name}" if name else branch_name
            outs.append(tuple(getattr(self, branch_name).trace(shape, prefix, records)))
        if len({o[1:] for o in outs}) != 1:
            sizes = ", ".join(f"{n} {o[1]}x{o[2]}" for n, o in zip(self.branch_names, outs))
            raise ShapeError(f"layer '{name}' (Branches) needs branch outputs of one spatial size to "
                             f"concatenate, got {sizes} for input {'x'.join(map(str, shape))}")
        return (sum(o[0] for o in outs),) + outs[0][1:]

    def trace(self, shape, name, records=None):
        out = self._trace_branches(shape, name, records)
        if self.se_module is not None:
            out = self.se_module.trace(out, f"{name}.se_module" if name else "se_module", records)
        return out

    def extra_repr(self):
        return f"branches={self.branch_names}"
