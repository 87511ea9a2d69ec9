"""Element-wise activations: ReLU (the excitation's δ) and the gates σ, tanh, hard-sigmoid.

Notation
--------
x : any shape; y = f(x) the same shape; every op is element-wise, so every Jacobian is
diagonal and each backward is ``dx = dy * f'(x)``, with ``f'`` written through ``y`` where
that is cheaper.

The paper's excitation (Eq. 3) is ``s = σ(W_2 δ(W_1 z))`` with δ = ReLU and σ = sigmoid; the
TPAMI ablation also tries tanh and ReLU as the gate. Hard-sigmoid is PyTorch's
``hardsigmoid`` ``relu6(x + 3) / 6``, the gate of mobile SE variants; ReLU6
``min(max(x, 0), 6)`` is the activation of the MobileNet ports that clip their activations.
Long form: ``docs/derivations/activations.md``.

References
----------
Hu, Shen, Sun, *Squeeze-and-Excitation Networks*, CVPR 2018, Eq. 3; TPAMI version, the
excitation-operator ablation (sigmoid vs. tanh vs. ReLU).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from sescratch.backend import declare_kernels, get_array_module
from sescratch.ops._checks import check_float_array, check_same_dtype, check_shape

__all__ = [
    "relu_forward", "relu_backward", "relu_forward_reference", "relu_backward_reference",
    "sigmoid_forward", "sigmoid_backward",
    "tanh_forward", "tanh_backward",
    "hard_sigmoid_forward", "hard_sigmoid_backward",
    "relu6_forward", "relu6_backward",
]


class ReluCache(NamedTuple):
    y: Any  # shape of x


class SigmoidCache(NamedTuple):
    y: Any  # shape of x


class TanhCache(NamedTuple):
    y: Any  # shape of x


class HardSigmoidCache(NamedTuple):
    x: Any  # shape of x


class Relu6Cache(NamedTuple):
    y: Any  # shape of x


def _check_dy(op: str, dy, saved, saved_name: str = "y") -> None:
    check_float_array(op, "dy", dy)
    check_shape(op, "dy", dy, saved.shape, "the shape of the forward output")
    check_same_dtype(op, **{"dy": dy, saved_name: saved})


def relu_forward_reference(x):
    """``y = max(x, 0)`` in ``xp`` (NaN propagates, as ``maximum``)."""
    return get_array_module(x).maximum(x, 0)  # shape of x


def relu_backward_reference(dy, y):
    """``dx = dy where y > 0, else 0`` in ``xp`` (``y`` is the forward's output)."""
    return get_array_module(dy).where(y > 0, dy, dy.dtype.type(0))  # shape of x


def sigmoid_forward(x):
    """Logistic sigmoid ``y = 1 / (1 + exp(-x))``, computed without overflow.

    ``exp`` only ever sees ``-|x|`` (so it cannot overflow; it may underflow to 0, which is the
    correct limit): for ``x >= 0``, ``y = 1 / (1 + e)``; for ``x < 0``, ``y = e / (1 + e)``,
    with ``e = exp(-|x|)``. Inputs of ±1e4 give exactly 1 and 0, with no warning.

    Parameters
    ----------
    x : array, any shape, float32 or float64

    Returns
    -------
    y : array, shape of ``x``, values in [0, 1]
    cache : SigmoidCache (holds ``y``)
    """
    check_float_array("sigmoid_forward", "x", x)
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))  # shape of x, in (0, 1]
    y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))  # shape of x
    return y, SigmoidCache(y)


def sigmoid_backward(dy, cache: SigmoidCache):
    """Gradient of the sigmoid.

    Parameters
    ----------
    dy : array, shape of the forward's ``x``
    cache : SigmoidCache (holds ``y``)

    Returns
    -------
    dx : array, shape of ``dy``

    Derivation
    ----------
    ``σ'(x) = exp(-x) / (1 + exp(-x))^2 = σ(x) (1 - σ(x))``, so ``dx = dy * y * (1 - y)``
    from the saved output alone (no exponential, hence no overflow, in the backward).
    """
    y = cache.y
    _check_dy("sigmoid_backward", dy, y)
    return dy * y * (1 - y)  # shape of x


def tanh_forward(x):
    """Hyperbolic tangent ``y = tanh(x)`` (a gate of the TPAMI ablation).

    Parameters
    ----------
    x : array, any shape, float32 or float64

    Returns
    -------
    y : array, shape of ``x``, values in [-1, 1]
    cache : TanhCache (holds ``y``)
    """
    check_float_array("tanh_forward", "x", x)
    xp = get_array_module(x)
    y = xp.tanh(x)  # shape of x
    return y, TanhCache(y)


def tanh_backward(dy, cache: TanhCache):
    """Gradient of tanh.

    Parameters
    ----------
    dy : array, shape of the forward's ``x``
    cache : TanhCache (holds ``y``)

    Returns
    -------
    dx : array, shape of ``dy``

    Derivation
    ----------
    ``tanh'(x) = 1 - tanh(x)^2``, so ``dx = dy * (1 - y^2)``.
    """
    y = cache.y
    _check_dy("tanh_backward", dy, y)
    return dy * (1 - y * y)  # shape of x


def hard_sigmoid_forward(x):
    """PyTorch's hard sigmoid ``y = relu6(x + 3) / 6 = clip(x + 3, 0, 6) / 6``.

    Parameters
    ----------
    x : array, any shape, float32 or float64

    Returns
    -------
    y : array, shape of ``x``, values in [0, 1]
    cache : HardSigmoidCache (holds ``x``)
    """
    check_float_array("hard_sigmoid_forward", "x", x)
    xp = get_array_module(x)
    y = xp.clip(x + 3, 0, 6) / 6  # shape of x
    return y, HardSigmoidCache(x)


def hard_sigmoid_backward(dy, cache: HardSigmoidCache):
    """Gradient of the hard sigmoid.

    Parameters
    ----------
    dy : array, shape of the forward's ``x``
    cache : HardSigmoidCache (holds ``x``)

    Returns
    -------
    dx : array, shape of ``dy``

    Derivation
    ----------
    On ``-3 < x < 3`` the function is ``x / 6 + 1/2`` (slope 1/6); outside it is constant
    (slope 0). So ``dx = dy / 6`` inside the open interval and 0 elsewhere; at the corners
    ``x = ±3`` we take 0, as PyTorch does.
    """
    x = cache.x
    _check_dy("hard_sigmoid_backward", dy, x, "x")
    xp = get_array_module(dy)
    return xp.where((x > -3) & (x < 3), dy / 6, dy.dtype.type(0))  # shape of x


def relu6_forward(x):
    """``y = min(max(x, 0), 6)`` (PyTorch's ``relu6``; NaN propagates).

    Parameters
    ----------
    x : array, any shape, float32 or float64

    Returns
    -------
    y : array, shape of ``x``, values in [0, 6]
    cache : Relu6Cache (holds ``y``)
    """
    check_float_array("relu6_forward", "x", x)
    xp = get_array_module(x)
    y = xp.minimum(xp.maximum(x, 0), 6)  # shape of x
    return y, Relu6Cache(y)


def relu6_backward(dy, cache: Relu6Cache):
    """Gradient of ReLU6.

    Parameters
    ----------
    dy : array, shape of the forward's ``x``
    cache : Relu6Cache (holds ``y``)

    Returns
    -------
    dx : array, shape of ``dy``

    Derivation
    ----------
    ``y = x`` on ``0 < x < 6`` (slope 1) and constant outside (slope 0), so
    ``dx = dy * 1[0 < y < 6]`` (``0 < y < 6`` exactly where ``0 < x < 6``). At the corners
    ``x = 0`` and ``x = 6`` we take 0, as PyTorch does (its ``hardtanh_backward``).
    """
    y = cache.y
    _check_dy("relu6_backward", dy, y)
    xp = get_array_module(dy)
    return xp.where((y > 0) & (y < 6), dy, dy.dtype.type(0))  # shape of x


# Dispatch: ReLU of NCHW maps runs a declared kernel or the reference; the gates above have none.
_KERNELS = declare_kernels("relu_forward", "relu_backward")


def relu_forward(x):
    """``y = max(x, 0)``.

    Parameters
    ----------
    x : array, any shape, float32 or float64

    Returns
    -------
    y : array, shape of ``x``
    cache : ReluCache (holds ``y``)
    """
    check_float_array("relu_forward", "x", x)
    x = get_array_module(x).ascontiguousarray(x)
    kernel = _KERNELS.get("relu_forward", x) if x.ndim == 4 else None  # kernels for NCHW maps
    y = relu_forward_reference(x) if kernel is None else kernel(x)  # shape of x
    return y, ReluCache(y)


def relu_backward(dy, cache: ReluCache):
    """Gradient of ReLU.

    Parameters
    ----------
    dy : array, shape of the forward's ``x``
    cache : ReluCache (holds ``y``)

    Returns
    -------
    dx : array, shape of ``dy``

    Derivation
    ----------
    ``y = x`` where ``x > 0`` and ``0`` elsewhere, so ``∂y/∂x = 1[x > 0]`` and
    ``dx = dy * 1[y > 0]`` (``y > 0`` exactly where ``x > 0``). At the kink ``x = 0`` we take
    the subgradient 0, as PyTorch does.
    """
    y = cache.y
    _check_dy("relu_backward", dy, y)
    dy = get_array_module(dy).ascontiguousarray(dy)
    kernel = _KERNELS.get("relu_backward", dy, y) if y.ndim == 4 else None
    return relu_backward_reference(dy, y) if kernel is None else kernel(dy, y)
