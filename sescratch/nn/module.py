"""``Parameter`` and ``Module``: the only "engine" sescratch has.

A module owns parameters (and buffers, such as batch norm's running statistics), runs
``forward(x)`` while keeping what its backward needs, and ``backward(dy) -> dx`` returns the
gradient with respect to its input while *adding* ``dL/dθ`` into each ``parameter.grad``
(gradients accumulate with ``+=`` until :meth:`Module.zero_grad`). There is no autograd graph:
composite modules write their backward by hand, reading bottom-up against their forward, and
:class:`~sescratch.nn.layers.Sequential` walks its children in reverse.

Names follow PyTorch's dotted convention (``layer1.0.conv1.weight``), so a ``state_dict`` maps
one to one onto the equivalent ``torch.nn.Module`` (see :mod:`sescratch.interop.torch`).

Shapes in :meth:`Module.trace` leave out the batch: ``(C, H, W)`` for feature maps, ``(F,)`` for
vectors. ``trace`` propagates shapes without computing anything; it backs the input checks of the
models and :func:`sescratch.summary.summary`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from sescratch.backend import get_array_module, to_device, to_numpy

__all__ = ["Parameter", "Module", "Record", "ShapeError", "check_channels"]


class Parameter:
    """A trainable array ``data`` and its accumulated gradient ``grad`` (same shape and dtype).

    Optimizers treat parameters with ``data.ndim <= 1`` (biases, BN γ and β) as "no weight decay".
    """

    def __init__(self, data):
        self.data = data
        xp = get_array_module(data)
        self.grad = xp.zeros(data.shape, dtype=data.dtype)  # calloc: untouched pages cost nothing

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.data.shape, dtype=np.int64))

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.data.dtype})"


class ShapeError(ValueError):
    """An input does not fit a layer; raised by :meth:`Module.trace` with the layer's name."""


def check_channels(layer: str, kind: str, shape, channels: int) -> None:
    """:class:`ShapeError` unless a traced (C, H, W) ``shape`` has ``channels`` channels."""
    if len(shape) != 3 or shape[0] != channels:
        raise ShapeError(
            f"layer '{layer}' ({kind}) expects input (N, {channels}, H, W), got (N, "
            + ", ".join(str(s) for s in shape) + ")"
        )


@dataclass
class Record:
    """One row of a model summary, filled by :meth:`Module.trace`.

    ``group`` is ``"backbone"`` for the network's own layers and ``"se"`` for the parts of an SE
    block; ``part`` says which (``"conv"``, ``"fc"``, ``"bn"``, ``"pool"``, ``"squeeze"``,
    ``"scale"``). ``macs`` counts multiply-accumulates for one example (for pooling and scaling:
    one addition or one multiplication per input element).
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    group: str = "backbone"
    part: str = ""


class Module:
    """Base class: parameters, buffers and children are discovered from the instance's attributes.

    Subclasses set attributes in ``__init__`` (a :class:`Parameter`, a child ``Module``, or a buffer
    array whose name is listed in ``_buffer_names``) and implement ``forward``, ``backward`` and
    ``trace``. Attribute order is the order of ``named_parameters`` and of the ``state_dict``.
    """

    _buffer_names: tuple[str, ...] = ()
    draws_random = False  # True for modules that need a generator from set_rng (Dropout)

    def __init__(self) -> None:
        self.training = True

    # -- computing --------------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def __call__(self, x):
        return self.forward(x)

    def backward(self, dy):
        """Return ``dL/dx`` for the last forward and add ``dL/dθ`` into every ``parameter.grad``."""
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def _take(self, attribute: str):
        """What the last forward kept in ``attribute`` (its cache), for ``backward``, which uses it
        once (a second backward would add the gradients twice); a clear error when there is none."""
        value = getattr(self, attribute, None)
        setattr(self, attribute, None)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward: no forward to differentiate (each "
                               "forward has one backward: call the module on an input first)")
        return value

    def trace(self, shape: tuple[int, ...], name: str, records: list[Record] | None) -> tuple:
        """Output shape (no batch) for input ``shape``; append summary rows to ``records``.

        Raises :class:`ShapeError` naming the layer (``name``) when the input does not fit.
        """
        raise NotImplementedError(f"{type(self).__name__}.trace")

    # -- walking the tree -------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self) -> Iterator["Module"]:
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """``(dotted_name, module)`` for this module (name ``prefix``, ``""`` at the root) and all below."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def _local_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield name, value

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for prefix, module in self.named_modules():
            for name, param in module._local_parameters():
                yield (f"{prefix}.{name}" if prefix else name), param

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        """Running statistics and counters: ``running_mean``, ``running_var``, ``num_batches_tracked``."""
        for prefix, module in self.named_modules():
            for name in module._buffer_names:
                yield (f"{prefix}.{name}" if prefix else name), getattr(module, name)

    def num_parameters(self) -> int:
        """Total number of trainable scalars."""
        return sum(p.size for p in self.parameters())

    # -- state ------------------------------------------------------------------------------
    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0

    def set_rng(self, rng: np.random.Generator) -> "Module":
        """Give ``rng`` to every module of the tree that draws random numbers (:class:`Dropout`).

        The generator belongs to the run (the trainer seeds it and checkpoints its state), never to
        the weight initialisation, so a resumed run draws the same masks as an uninterrupted one.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{type(self).__name__}.set_rng: expected a numpy.random.Generator, "
                            f"got {type(rng).__name__}")
        for module in self.modules():
            if module.draws_random:
                module.rng = rng
        return self

    def train(self, mode: bool = True) -> "Module":
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters then buffers, as NumPy copies, under PyTorch's dotted names."""
        state = {name: _numpy_copy(p.data) for name, p in self.named_parameters()}
        state.update({name: _numpy_copy(b) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays into parameters and buffers, keeping this module's dtype and device.

        Raises ``ValueError`` listing every missing name, unexpected name (when ``strict``) and
        shape mismatch, before anything is copied.
        """
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        missing = [n for n in targets if n not in state]
        unexpected = [n for n in state if n not in targets]
        mismatched = [
            f"{n}: expected {tuple(targets[n].shape)}, got {tuple(np.shape(state[n]))}"
            for n in targets
            if n in state and tuple(np.shape(state[n])) != tuple(targets[n].shape)
        ]
        problems = []
        if missing:
            problems.append("missing keys: " + ", ".join(missing))
        if unexpected and strict:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if problems:
            raise ValueError(f"load_state_dict({type(self).__name__}): " + " | ".join(problems))
        values = {}
        for name, target in targets.items():  # every value cast first: a bad one leaves all unchanged
            xp = get_array_module(target)
            value = to_numpy(state[name]) if xp is np else state[name]
            try:
                values[name] = cast = xp.asarray(value, dtype=target.dtype)
                exact = np.dtype(target.dtype).kind not in "iu" or bool((xp.asarray(value) == cast).all())
            except (TypeError, ValueError) as exc:
                cast, exact = exc, False
            if not exact:  # a string, or a counter of 2.9 (or one beyond the integer range)
                why = f" ({cast})" if isinstance(cast, Exception) else ""
                raise ValueError(f"load_state_dict({type(self).__name__}): {name} holds values that do not "
                                 f"fit its dtype {target.dtype}{why}; nothing was copied")
        for name, target in targets.items():  # in place: parameters and buffers keep dtype and device
            target[...] = values[name]

    def to(self, device: str) -> "Module":
        """Move every parameter, gradient and buffer to ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy)."""
        return self._map_arrays(lambda a: to_device(a, device), floats_only=False)

    def astype(self, dtype) -> "Module":
        """Cast floating parameters, gradients and buffers to ``dtype`` (e.g. ``np.float64``)."""
        return self._map_arrays(lambda a: a.astype(dtype), floats_only=True)

    def _map_arrays(self, fn, *, floats_only: bool) -> "Module":
        for module in self.modules():
            for _, param in module._local_parameters():
                param.data, param.grad = fn(param.data), fn(param.grad)
            for buf in module._buffer_names:
                value = getattr(module, buf)
                if not floats_only or np.issubdtype(np.dtype(value.dtype), np.floating):
                    setattr(module, buf, fn(value))
        return self

    @property
    def dtype(self):
        """The dtype of the first parameter (float32 unless :meth:`astype` changed it)."""
        for p in self.parameters():
            return p.data.dtype
        return np.dtype(np.float32)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        if self.extra_repr():
            lines.append(f"  {self.extra_repr()}")
        for name, child in children:
            inner = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {inner}")
        return "\n".join(lines) + "\n)"


def _numpy_copy(a) -> np.ndarray:
    return np.array(to_numpy(a), copy=True)
