"""Export a model to a standard ONNX graph, built node by node from our own modules.

:func:`to_onnx` walks the module tree the way ``forward`` does (eval mode) and writes one ONNX
operator per step with the ``onnx.helper`` API: ``Conv``, ``BatchNormalization`` (running
statistics), ``Relu``, ``MaxPool``, ``GlobalAveragePool`` + ``Flatten``, ``Gemm``; an SE block is
``GlobalAveragePool`` (or ``GlobalMaxPool``) -> ``Flatten`` -> ``Gemm`` -> ``Relu`` -> ``Gemm`` ->
gate -> ``Unsqueeze`` -> ``Mul``; a residual block is its branch, its shortcut, ``Add`` and
``Relu``, with the SE block where the block's ``placement`` puts it. The other families: an
Inception module (``Branches``) is its branches and a ``Concat`` (then its SE block); an
Inception-ResNet block adds ``scale * conv2d(concat(...))`` (``Mul``, ``Add``) to its input; a
ShuffleNet unit is its branch and an ``Add`` (stride 1) or a ``Concat`` with its
``AveragePool`` shortcut (stride 2); a channel shuffle is ``Reshape`` (N, G, C/G, H, W) ->
``Transpose`` -> ``Reshape``; VGG's flatten is ``Flatten``. So every model of
:func:`sescratch.models.list_models` exports (the tests run each family in onnxruntime). Dropout
is the identity in eval mode and exports as nothing. The batch dimension is symbolic (``"N"``).

Needs the ``onnx`` package (the ``onnx`` extra); run the file with ``onnxruntime``. The opset is
checked against what the installed ``onnx`` (and ``onnxruntime``, when installed) can read:
:func:`sescratch.interop.onnx_checks.supported_opsets`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sescratch.backend import to_numpy
from sescratch.interop.onnx_checks import MIN_OPSET, check_opset, check_target, supported_opsets

__all__ = ["to_onnx", "export_onnx", "DEFAULT_OPSET", "MIN_OPSET", "supported_opsets", "check_opset",
           "check_target"]

DEFAULT_OPSET = 17


def export_onnx(model, path: str | os.PathLike, input_shape=(3, 224, 224), *, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` (input ``(N, *input_shape)``) as an ONNX file; returns the path.

    ``path`` is checked first (:func:`check_target`), so a directory or a path under a file is
    refused before the graph is built, not after."""
    from sescratch.io import atomic_open

    check_target(path)
    proto = to_onnx(model, input_shape, opset=opset)
    with atomic_open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return Path(path)


def to_onnx(model, input_shape=(3, 224, 224), *, opset: int = DEFAULT_OPSET):
    """The ``onnx.ModelProto`` of ``model`` in eval mode, float32, checked by ``onnx.checker``."""
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the 'onnx' package: pip install 'sescratch[onnx]'") from None
    check_opset(opset)
    input_shape = tuple(int(s) for s in input_shape)
    out_shape = model.output_shape((1,) + input_shape) if hasattr(model, "output_shape") else None
    g = _Graph(onnx)
    y = g.module(model, "input", "")
    h = onnx.helper
    name = getattr(model, "model_name", type(model).__name__)
    graph = h.make_graph(
        g.nodes, name,
        [h.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", *input_shape])],
        [h.make_tensor_value_info(y, onnx.TensorProto.FLOAT, ["N", *(out_shape[1:] if out_shape else [])])],
        initializer=g.initializers,
    )
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="sescratch")
    onnx.checker.check_model(proto)
    return proto


class _Graph:
    """Nodes and initializers being written; ``module(m, x, name)`` returns the output's name."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.initializers, self._count = onnx, [], [], 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint or 'out'}:{self._count}"

    def const(self, name: str, array) -> str:
        array = to_numpy(array)
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs, name: str, **attrs) -> str:
        out = self.fresh(name)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def module(self, m, x: str, name: str) -> str:
        from sescratch import nn

        if isinstance(m, nn.Sequential):
            for child_name, child in m.named_children():
                x = self.module(child, x, f"{name}.{child_name}" if name else child_name)
            return x
        if isinstance(m, (nn.BasicBlock, nn.Bottleneck)):
            return self.residual(m, x, name)
        emit = _EMITTERS.get(type(m).__name__)
        if emit is None:
            raise ValueError(f"export: layer '{name}' ({type(m).__name__}) has no ONNX equivalent here; the "
                             f"layers that export are {', '.join(sorted(_EMITTERS))} and the residual blocks")
        return emit(self, m, x, name)

    def children(self, m, x: str, name: str, attrs) -> str:
        """``x`` through ``m``'s children ``attrs`` in turn (those that are None skipped)."""
        for attr in attrs:
            if getattr(m, attr) is not None:
                x = self.module(getattr(m, attr), x, f"{name}.{attr}" if name else attr)
        return x

    def concat_branches(self, m, x: str, name: str) -> str:
        """The branches of a ``Branches`` module on ``x``, concatenated along the channels."""
        ys = [self.children(m, x, name, [b]) for b in m.branch_names]
        return ys[0] if len(ys) == 1 else self.op("Concat", ys, f"{name}.concat", axis=1)

    def residual(self, block, x: str, name: str) -> str:
        placement = getattr(block, "placement", None) if getattr(block, "se_module", None) is not None else None

        def se(where, t):
            return self.se(block.se_module, t, f"{name}.se_module") if placement == where else t

        h = se("pre", x)
        n_convs = 3 if hasattr(block, "conv3") else 2
        for i in range(1, n_convs + 1):
            h = self.module(getattr(block, f"conv{i}"), h, f"{name}.conv{i}")
            h = self.module(getattr(block, f"bn{i}"), h, f"{name}.bn{i}")
            if i < n_convs:
                h = self.op("Relu", [h], f"{name}.relu{i}")
                if i == n_convs - 1:
                    h = se("after_3x3", h)
        h = se("standard", h)
        s = x if block.downsample is None else self.module(block.downsample, x, f"{name}.downsample")
        s = se("identity", s)
        y = self.op("Relu", [self.op("Add", [h, s], f"{name}.add")], f"{name}.relu")
        return se("post", y)

    def se(self, m, u: str, name: str) -> str:
        pool = "GlobalAveragePool" if m.squeeze == "avg" else "GlobalMaxPool"
        z = self.op("Flatten", [self.op(pool, [u], f"{name}.squeeze")], f"{name}.flatten", axis=1)  # N,C
        a = self.op("Relu", [_gemm(self, m.fc1, z, f"{name}.fc1")], f"{name}.relu")  # N,C_r
        e = _gemm(self, m.fc2, a, f"{name}.fc2")  # N,C
        if m.gate == "hard_sigmoid":  # relu6(e + 3) / 6 = clip(e / 6 + 1/2, 0, 1)
            s = self.op("HardSigmoid", [e], f"{name}.gate", alpha=1.0 / 6.0, beta=0.5)
        else:
            s = self.op({"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}[m.gate], [e], f"{name}.gate")
        axes = self.const(f"{name}.axes", np.array([2, 3], dtype=np.int64))
        s = self.op("Unsqueeze", [s, axes], f"{name}.unsqueeze")  # N,C,1,1
        return self.op("Mul", [u, s], f"{name}.scale")


def _pads(padding) -> list[int]:
    ph, pw = padding
    return [ph, pw, ph, pw]


def _conv(g, m, x, name):
    inputs = [x, g.const(f"{name}.weight", m.weight.data)]
    if m.bias is not None:
        inputs.append(g.const(f"{name}.bias", m.bias.data))
    return g.op("Conv", inputs, name, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                pads=_pads(m.padding), group=m.groups)


def _batchnorm(g, m, x, name):
    inputs = [x] + [g.const(f"{name}.{k}", v) for k, v in (
        ("weight", m.weight.data), ("bias", m.bias.data), ("running_mean", m.running_mean),
        ("running_var", m.running_var))]
    return g.op("BatchNormalization", inputs, name, epsilon=float(m.eps))


def _gemm(g, m, x, name):
    inputs = [x, g.const(f"{name}.weight", m.weight.data)]
    if m.bias is not None:
        inputs.append(g.const(f"{name}.bias", m.bias.data))
    return g.op("Gemm", inputs, name, transB=1)


def _maxpool(g, m, x, name):
    return g.op("MaxPool", [x], name, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                pads=_pads(m.padding), ceil_mode=int(bool(getattr(m, "ceil_mode", False))))


def _global_avg(g, m, x, name):
    return g.op("Flatten", [g.op("GlobalAveragePool", [x], name)], f"{name}.flatten", axis=1)


def _zero_pad(g, m, x, name):
    S = m.stride
    consts = [g.const(f"{name}.{k}", np.array(v, dtype=np.int64)) for k, v in (
        ("starts", [0, 0]), ("ends", [np.iinfo(np.int64).max] * 2), ("axes", [2, 3]), ("steps", [S, S]))]
    sub = g.op("Slice", [x, *consts], f"{name}.subsample")  # N,C_in,OH,OW
    front, back = m.pad_front, m.out_channels - m.in_channels - m.pad_front
    pads = g.const(f"{name}.pads", np.array([0, front, 0, 0, 0, back, 0, 0], dtype=np.int64))
    return g.op("Pad", [sub, pads], name)


def _identity(g, m, x, name):
    return x


def _avgpool(g, m, x, name):
    return g.op("AveragePool", [x], name, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                pads=_pads(m.padding), ceil_mode=int(m.ceil_mode), count_include_pad=int(m.count_include_pad))


def _flatten(g, m, x, name):
    return g.op("Flatten", [x], name, axis=1)  # N,C*H*W in C order, as x.reshape(N, -1)


def _channel_shuffle(g, m, x, name):
    """``y[:, j G + g] = x[:, g C/G + j]``: x as (N, G, C/G, H, W), the two group axes swapped,
    and back to (N, C, H, W). The shapes come from ``Shape`` so the batch stays symbolic."""
    G = m.groups
    n, c, hw = (g.op("Shape", [x], f"{name}.shape_{part}", start=start, **({"end": end} if end else {}))
                for part, start, end in (("n", 0, 1), ("c", 1, 2), ("hw", 2, None)))
    per_group = g.op("Div", [c, g.const(f"{name}.groups", np.array([G], dtype=np.int64))], f"{name}.per_group")
    split = g.op("Concat", [n, g.const(f"{name}.g", np.array([G], dtype=np.int64)), per_group, hw],
                 f"{name}.split_shape", axis=0)  # N, G, C/G, H, W
    t = g.op("Transpose", [g.op("Reshape", [x, split], f"{name}.split")], f"{name}.swap", perm=[0, 2, 1, 3, 4])
    return g.op("Reshape", [t, g.op("Shape", [x], f"{name}.shape")], name)


def _branches(g, m, x, name):
    """An Inception module: its branches concatenated, then its SE block (Fig. 2)."""
    y = g.concat_branches(m, x, name)
    return y if m.se_module is None else g.se(m.se_module, y, f"{name}.se_module")


def _inception_resnet_block(g, m, x, name):
    """``relu(x + scale * [se](conv2d(concat(branches(x)))))`` (no ReLU in the last block)."""
    u = g.children(m, g.concat_branches(m, x, name), name, ["conv2d", "se_module"])
    scale = g.const(f"{name}.scale", np.array(m.scale, dtype=np.float32))
    y = g.op("Add", [x, g.op("Mul", [u, scale], f"{name}.scaled")], f"{name}.add")
    return y if m.relu is None else g.op("Relu", [y], f"{name}.relu")


def _shuffle_unit(g, m, x, name):
    """``relu(x + branch(x))`` at stride 1, ``relu(concat(avg_pool(x), branch(x)))`` at stride 2."""
    attr = {id(child): a for a, child in m.named_children()}
    b = g.children(m, x, name, [attr[id(layer)] for layer in m.branch_layers()])
    if m.shortcut is None:
        y = g.op("Add", [x, b], f"{name}.add")
    else:
        y = g.op("Concat", [g.children(m, x, name, ["shortcut"]), b], f"{name}.concat", axis=1)
    return g.op("Relu", [y], f"{name}.relu")


_EMITTERS = {
    "Conv2d": _conv,
    "BatchNorm2d": _batchnorm,
    "Linear": _gemm,
    "ReLU": lambda g, m, x, name: g.op("Relu", [x], name),
    "Sigmoid": lambda g, m, x, name: g.op("Sigmoid", [x], name),
    "MaxPool2d": _maxpool,
    "GlobalAvgPool": _global_avg,
    "ZeroPadShortcut": _zero_pad,
    "SEBlock": lambda g, m, x, name: g.se(m, x, name),
    "Dropout": _identity,
    "Identity": _identity,
    "AvgPool2d": _avgpool,
    "Flatten": _flatten,
    "ChannelShuffle": _channel_shuffle,
    "Branches": _branches,
    "InceptionResNetBlock": _inception_resnet_block,
    "ShuffleUnit": _shuffle_unit,
}


