"""Channel shuffle (ShuffleNet): a module around :func:`sescratch.ops.channel_shuffle_forward`."""
from __future__ import annotations

from sescratch import ops
from sescratch.nn.module import Module, Record, ShapeError

__all__ = ["ChannelShuffle"]


class ChannelShuffle(Module):
    """Regroup the channels of ``(N, C, H, W)`` so that each block of ``groups`` consecutive
    channels holds one channel of every group: ``y[:, j G + g] = x[:, g C/G + j]``.

    No parameters, no multiply-adds; listed in the summary so that the layer list is complete.
    """

    def __init__(self, groups):
        super().__init__()
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"ChannelShuffle: argument 'groups' must be a positive int, got {groups!r}")
        self.groups = groups

    def forward(self, x):
        y, self._cache = ops.channel_shuffle_forward(x, self.groups)
        return y

    def backward(self, dy):
        return ops.channel_shuffle_backward(dy, self._cache)

    def trace(self, shape, name, records=None):
        if len(shape) != 3 or shape[0] % self.groups:
            raise ShapeError(
                f"layer '{name}' (ChannelShuffle, groups={self.groups}) expects input (N, C, H, W) "
                f"with C divisible by {self.groups}, got (N, " + ", ".join(str(s) for s in shape) + ")"
            )
        if records is not None:
            records.append(Record(name, "ChannelShuffle", tuple(shape), 0, 0, part="shuffle"))
        return tuple(shape)

    def extra_repr(self):
        return f"groups={self.groups}"
