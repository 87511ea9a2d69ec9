"""Stochastic gradient descent with momentum, the optimiser of the paper (§5: momentum 0.9).

The update is PyTorch's ``torch.optim.SGD``, step for step. For each parameter ``p`` with
gradient ``g``, weight decay ``wd``, momentum ``mu``, dampening ``tau`` and learning rate ``lr``::

    d = g + wd * p                      (L2 weight decay, added to the gradient)
    b = d                               on the first step,
    b = mu * b + (1 - tau) * d          afterwards            (the momentum buffer)
    d = d + mu * b   if nesterov else   d = b
    p = p - lr * d

With ``no_decay_bn_bias=True`` the parameters with ``data.ndim <= 1`` — batch-norm gamma and
beta, and biases — get ``wd = 0`` (a common refinement; the paper does not say).
Learning-rate schedules live in :mod:`sescratch.train.schedules`; the trainer sets ``optimizer.lr``.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from sescratch.backend import get_array_module, to_numpy
from sescratch.ops.sgd import sgd_update

__all__ = ["SGD"]


class SGD:
    """SGD with momentum, Nesterov momentum and weight decay (PyTorch semantics).

    Parameters
    ----------
    params : iterable of Parameter (objects with ``.data`` and ``.grad`` arrays)
    lr : float, learning rate (schedules overwrite ``self.lr`` every step or epoch)
    momentum : float, mu (0 disables the buffer)
    dampening : float, tau
    weight_decay : float, L2 coefficient wd
    nesterov : bool, Nesterov momentum (needs momentum > 0 and dampening == 0, as in PyTorch)
    no_decay_bn_bias : bool, exclude parameters with ``data.ndim <= 1`` from weight decay
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.0, *,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 no_decay_bn_bias: bool = False):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD: got an empty parameter list")
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0 "
                             f"(got {lr}, {momentum}, {weight_decay})")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening == 0")
        self.lr, self.momentum, self.dampening = float(lr), float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)
        self.no_decay_bn_bias = bool(no_decay_bn_bias)
        self.momentum_buffers: list = [None] * len(self.params)
        self.steps = 0

    def decay_of(self, param) -> float:
        """The weight-decay coefficient applied to ``param``."""
        if self.no_decay_bn_bias and param.data.ndim <= 1:
            return 0.0
        return self.weight_decay

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad[...] = 0

    def step(self) -> None:
        """Update every parameter in place from its ``.grad``.

        One :func:`sescratch.ops.sgd_update` per parameter: the formula above, run by one fused
        kernel under Numba or on a GPU (one launch instead of 6 to 9), by NumPy under ``"numpy"``;
        all three round alike, bit for bit.
        """
        for i, p in enumerate(self.params):
            first = self.momentum != 0 and self.momentum_buffers[i] is None
            if first:  # sgd_update sets it to the first step's d
                self.momentum_buffers[i] = get_array_module(p.data).empty_like(p.data)
            sgd_update(p.data, p.grad, self.momentum_buffers[i], lr=self.lr, momentum=self.momentum,
                       dampening=self.dampening, weight_decay=self.decay_of(p),
                       nesterov=self.nesterov, first=first)
        self.steps += 1

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``{name: array}`` (ready for ``np.savez``): hyper-parameters and momentum buffers.

        Buffers are stored as ``momentum_buffer.{i}`` (i = index in ``params``); buffers not yet
        created are absent. Arrays are NumPy copies (moved from the GPU if needed).
        """
        state = {
            "lr": np.array(self.lr), "momentum": np.array(self.momentum),
            "dampening": np.array(self.dampening), "weight_decay": np.array(self.weight_decay),
            "nesterov": np.array(self.nesterov), "no_decay_bn_bias": np.array(self.no_decay_bn_bias),
            "steps": np.array(self.steps, dtype=np.int64),
        }
        for i, buf in enumerate(self.momentum_buffers):
            if buf is not None:
                state[f"momentum_buffer.{i}"] = np.array(to_numpy(buf))  # a copy, on the host
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned; shapes must match ``params``."""
        buffers: list = [None] * len(self.params)
        problems = []
        for key, value in state.items():
            if not key.startswith("momentum_buffer."):
                continue
            i = int(key.split(".", 1)[1])
            if i >= len(self.params):
                problems.append(f"{key}: no parameter {i} (optimizer has {len(self.params)})")
            elif tuple(value.shape) != tuple(self.params[i].data.shape):
                problems.append(f"{key}: shape {tuple(value.shape)}, parameter has "
                                f"{tuple(self.params[i].data.shape)}")
            else:
                xp = get_array_module(self.params[i].data)
                buffers[i] = xp.asarray(value, dtype=self.params[i].data.dtype).copy()
        if problems:
            raise ValueError("SGD.load_state_dict: " + "; ".join(problems))
        self.momentum_buffers = buffers
        self.lr = float(state["lr"])
        self.momentum, self.dampening = float(state["momentum"]), float(state["dampening"])
        self.weight_decay, self.nesterov = float(state["weight_decay"]), bool(state["nesterov"])
        self.no_decay_bn_bias = bool(state["no_decay_bn_bias"])
        self.steps = int(state["steps"])
