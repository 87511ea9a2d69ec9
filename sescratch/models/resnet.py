"""The network shared by every model: a stem, residual stages, global pooling and a classifier.

Names follow the SENet release (Cadene's ``pretrainedmodels/senet.py``) so a ``state_dict``
reads like theirs: ``layer0`` (the stem), ``layer1 ... layerK`` (the residual stages; the paper
numbers them from 2, ``conv2_x``), ``avg_pool``, ``dropout`` (with ``dropout > 0``; SENet-154 by default), ``last_linear``;
inside a block ``conv1, bn1, conv2, bn2[, conv3, bn3], se_module, downsample``.
"""
from __future__ import annotations

from sescratch.nn.blocks import make_shortcut
from sescratch.nn.layers import Sequential
from sescratch.nn.module import Module, ShapeError
from sescratch.nn.se import SEBlock
from sescratch.nn.variants import residual_block

__all__ = ["ResNet", "make_stage"]


def make_stage(block, in_channels, planes, blocks, stride=1, *, shortcut="B", downsample_kernel=1, **block_kwargs):
    """A ``Sequential`` of ``blocks`` residual blocks; the first one strides and changes width.

    Returns ``(stage, out_channels)``. ``block_kwargs`` go to every block (``se``, ``placement`` — picked by :func:`~sescratch.nn.residual_block` —,
    ``groups``, ``stride_on`` ...); ``expansion`` (default ``block.expansion``) fixes the output width.
    """
    out_channels = planes * block_kwargs.get("expansion", block.expansion)
    layers = []
    for i in range(blocks):
        s = stride if i == 0 else 1
        c_in = in_channels if i == 0 else out_channels
        downsample = make_shortcut(c_in, out_channels, s, kind=shortcut, kernel_size=downsample_kernel)
        layers.append(residual_block(block, c_in, planes, s, downsample=downsample, **block_kwargs))
    return Sequential(*layers), out_channels


class ResNet(Sequential):
    """A named ``Sequential`` that checks its input and finds its SE blocks.

    Parameters
    ----------
    name : str
        The model name used in error messages (``"se_resnet50"``).
    layers : dict
        ``{"layer0": stem, "layer1": stage, ..., "avg_pool": ..., "last_linear": ...}``.
    in_channels : int
        Channels the stem expects.
    """

    def __init__(self, name: str, layers: dict, in_channels: int):
        super().__init__(layers)
        self.model_name = name
        self.in_channels = in_channels
        self._checked_shape = None

    def check_input(self, x) -> None:
        """``ValueError`` naming the model, the layer, expected vs actual when ``x`` does not fit;
        ``TypeError`` for something that is not an array, or an array whose dtype is not the
        weights' (float64 images into a float32 model: the cast to make is named)."""
        if not (hasattr(x, "shape") and hasattr(x, "dtype")):
            raise TypeError(f"{self.model_name}: expected an array of shape (N, {self.in_channels}, H, W), "
                            f"got {type(x).__name__}")
        weights = next((p for _, p in self.named_parameters()), None)  # the first only: this runs every forward
        key = (tuple(x.shape), x.dtype, None if weights is None else weights.data.dtype)
        if key == self._checked_shape:
            return
        if weights is not None and x.dtype != weights.data.dtype:
            want = weights.data.dtype
            raise TypeError(f"{self.model_name}: input of dtype {x.dtype}, but the model's weights are {want}: "
                            f"cast the input (x.astype(np.{want})) or the model (model.astype(np.{x.dtype}))"
                            if x.dtype.kind == "f" else
                            f"{self.model_name}: input of dtype {x.dtype}, but the model's weights are {want}: "
                            f"convert the images to {want} first (and scale them as in training)")
        self.output_shape(key[0])
        self._checked_shape = key

    def output_shape(self, input_shape) -> tuple[int, ...]:
        """Shape propagation only: ``(N, C, H, W) -> (N, num_classes)``, or ``ValueError``."""
        shape = tuple(input_shape)
        if len(shape) != 4:
            raise ValueError(
                f"{self.model_name}: expected input of shape (N, {self.in_channels}, H, W), got {shape}"
            )
        try:
            out = self.trace(shape[1:], "", None)
        except ShapeError as exc:
            raise ValueError(f"{self.model_name}: input of shape {shape} does not fit: {exc}") from None
        return (shape[0],) + tuple(out)

    def forward(self, x):
        self.check_input(x)
        return super().forward(x)

    def stages(self) -> list[Sequential]:
        """The residual stages ``layer1, layer2, ...`` in order."""
        return [m for n, m in self.named_children() if n.startswith("layer") and n != "layer0"]

    def se_blocks(self) -> dict[str, SEBlock]:
        """``{"SE_2_1": block, ...}``: stage numbered as the paper (first residual stage = 2), block from 1."""
        found = {}
        for s, stage in enumerate(self.stages(), start=2):
            for b, block in enumerate(stage, start=1):
                se = getattr(block, "se_module", None)
                if isinstance(se, Module):
                    found[f"SE_{s}_{b}"] = se
        return found

    def extra_repr(self) -> str:
        return repr(self.model_name)
