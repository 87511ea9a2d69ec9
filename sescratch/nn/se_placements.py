"""Where else the SE block can sit in a residual block: the placement ablation (TPAMI §6.5).

Each variant is a small mixin that rewrites the standard block's ``forward``, ``backward`` and
``trace`` (:class:`sescratch.nn.blocks.ResidualBlock`) with the SE block moved; backward reads
the forward bottom-up, one line per line. ``SEPre``, ``SEPost`` and ``SEIdentity`` only move the
SE block around the branch ``F`` and the shortcut, so they work for every block; the
``after_3x3`` variants put it inside ``F`` and are written out per branch.

:mod:`sescratch.nn.variants` combines each mixin with each block class into one explicit class
(``class BasicBlockSEPre(SEPre, BasicBlock)``); the variant keeps the block's children and
``state_dict`` keys.
"""
from __future__ import annotations

from sescratch import ops

__all__ = ["SEPre", "SEPost", "SEIdentity", "BasicSEAfter3x3", "BottleneckSEAfter3x3"]

class SEPre:
    """SE-PRE (Table 14): ``ReLU(F(SE(x)) + shortcut(x))``, SE on the block's input channels."""

    placement = "pre"

    def _se_channels(self, in_channels, out_channels, inner_channels):
        return in_channels

    def forward(self, x):
        v = self.se_module(x)  # N,C_in,H,W
        u = self._branch_forward(v)  # N,C_out,OH,OW
        s = self._shortcut(x)  # N,C_out,OH,OW
        y, self._add_relu_cache = ops.add_relu_forward(u, s)  # ReLU(u + s), one pass
        return y

    def backward(self, dy):
        du, ds = ops.add_relu_backward(dy, self._add_relu_cache)  # one gradient for both paths
        dv = self._branch_backward(du)
        dx_branch = self.se_module.backward(dv)
        dx_shortcut = self._shortcut_backward(ds)
        dx = ops.add_into(dx_branch, dx_shortcut)  # x fans out into the (SE +) branch and the shortcut
        return dx

    def trace(self, shape, name, records=None):
        v = self.se_module.trace(tuple(shape), f"{name}.se_module", records)
        out = self._branch_trace(v, name, records)
        return self._check_sum(name, out, self._shortcut_trace(tuple(shape), name, records))


class SEPost:
    """SE-POST (Table 14): ``SE(ReLU(F(x) + shortcut(x)))``, SE after the sum and its ReLU."""

    placement = "post"

    def forward(self, x):
        u = self._branch_forward(x)  # N,C_out,OH,OW
        s = self._shortcut(x)  # N,C_out,OH,OW
        h, self._add_relu_cache = ops.add_relu_forward(u, s)  # ReLU(u + s), one pass
        y = self.se_module(h)  # N,C_out,OH,OW
        return y

    def backward(self, dy):
        dh = self.se_module.backward(dy)
        du, ds = ops.add_relu_backward(dh, self._add_relu_cache)  # one gradient for both paths
        dx_branch = self._branch_backward(du)
        dx_shortcut = self._shortcut_backward(ds)
        dx = ops.add_into(dx_branch, dx_shortcut)  # x fans out into the residual branch and the shortcut
        return dx

    def trace(self, shape, name, records=None):
        out = self._branch_trace(tuple(shape), name, records)
        out = self._check_sum(name, out, self._shortcut_trace(tuple(shape), name, records))
        return self.se_module.trace(out, f"{name}.se_module", records)


class SEIdentity:
    """SE-Identity (Table 14): ``ReLU(F(x) + SE(shortcut(x)))``, SE on the shortcut path."""

    placement = "identity"

    def forward(self, x):
        u = self._branch_forward(x)  # N,C_out,OH,OW
        s = self._shortcut(x)  # N,C_out,OH,OW
        s = self.se_module(s)  # N,C_out,OH,OW
        y, self._add_relu_cache = ops.add_relu_forward(u, s)  # ReLU(u + s), one pass
        return y

    def backward(self, dy):
        du, ds = ops.add_relu_backward(dy, self._add_relu_cache)  # one gradient for both paths
        ds = self.se_module.backward(ds)
        dx_shortcut = self._shortcut_backward(ds)
        dx_branch = self._branch_backward(du)
        dx = ops.add_into(dx_branch, dx_shortcut)  # x fans out into the residual branch and the (SE +) shortcut
        return dx

    def trace(self, shape, name, records=None):
        out = self._branch_trace(tuple(shape), name, records)
        s = self._shortcut_trace(tuple(shape), name, records)
        return self._check_sum(name, out, self.se_module.trace(s, f"{name}.se_module", records))


class BasicSEAfter3x3:
    """SE after the first 3x3 conv (Table 15): ``F = BN(conv(SE(ReLU(BN(conv(x))))))``."""

    placement = "after_3x3"

    def _se_channels(self, in_channels, out_channels, inner_channels):
        return inner_channels

    def forward(self, x):
        h = self.bn1(self.conv1(x))  # N,P,OH,OW
        h, self._relu1_cache = ops.relu_forward(h)
        h = self.se_module(h)  # N,P,OH,OW
        u = self.bn2(self.conv2(h))  # N,P,OH,OW
        s = self._shortcut(x)  # N,P,OH,OW
        y, self._add_relu_cache = ops.add_relu_forward(u, s)  # ReLU(u + s), one pass
        return y

    def backward(self, dy):
        du, ds = ops.add_relu_backward(dy, self._add_relu_cache)  # one gradient for both paths
        dh = self.conv2.backward(self.bn2.backward(du))
        dh = self.se_module.backward(dh)
        dh = ops.relu_backward(dh, self._relu1_cache)
        dx_branch = self.conv1.backward(self.bn1.backward(dh))
        dx_shortcut = self._shortcut_backward(ds)
        dx = ops.add_into(dx_branch, dx_shortcut)  # x fans out into the residual branch and the shortcut
        return dx

    def trace(self, shape, name, records=None):
        h = self.bn1.trace(self.conv1.trace(tuple(shape), f"{name}.conv1", records), f"{name}.bn1", records)
        h = self.se_module.trace(h, f"{name}.se_module", records)
        out = self.bn2.trace(self.conv2.trace(h, f"{name}.conv2", records), f"{name}.bn2", records)
        return self._check_sum(name, out, self._shortcut_trace(tuple(shape), name, records))


class BottleneckSEAfter3x3:
    """SE after the 3x3 conv (Table 15): ``F = BN(conv1x1(SE(ReLU(BN(conv3x3(ReLU(BN(conv1x1(x)))))))))``."""

    placement = "after_3x3"

    def _se_channels(self, in_channels, out_channels, inner_channels):
        return inner_channels

    def forward(self, x):
        h = self.bn1(self.conv1(x))  # N,width,·,·
        h, self._relu1_cache = ops.relu_forward(h)
        h = self.bn2(self.conv2(h))  # N,width_3x3,OH,OW
        h, self._relu2_cache = ops.relu_forward(h)
        h = self.se_module(h)  # N,width_3x3,OH,OW
        u = self.bn3(self.conv3(h))  # N,C_out,OH,OW
        s = self._shortcut(x)  # N,C_out,OH,OW
        y, self._add_relu_cache = ops.add_relu_forward(u, s)  # ReLU(u + s), one pass
        return y

    def backward(self, dy):
        du, ds = ops.add_relu_backward(dy, self._add_relu_cache)  # one gradient for both paths
        dh = self.conv3.backward(self.bn3.backward(du))
        dh = self.se_module.backward(dh)
        dh = ops.relu_backward(dh, self._relu2_cache)
        dh = self.conv2.backward(self.bn2.backward(dh))
        dh = ops.relu_backward(dh, self._relu1_cache)
        dx_branch = self.conv1.backward(self.bn1.backward(dh))
        dx_shortcut = self._shortcut_backward(ds)
        dx = ops.add_into(dx_branch, dx_shortcut)  # x fans out into the residual branch and the shortcut
        return dx

    def trace(self, shape, name, records=None):
        h = tuple(shape)
        for i in (1, 2):
            conv, bn = getattr(self, f"conv{i}"), getattr(self, f"bn{i}")
            h = bn.trace(conv.trace(h, f"{name}.conv{i}", records), f"{name}.bn{i}", records)
        h = self.se_module.trace(h, f"{name}.se_module", records)
        out = self.bn3.trace(self.conv3.trace(h, f"{name}.conv3", records), f"{name}.bn3", records)
        return self._check_sum(name, out, self._shortcut_trace(tuple(shape), name, records))
