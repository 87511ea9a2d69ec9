"""Finite-difference gradient checking, contracted with a random upstream gradient.

A backward pass computes the vector-Jacobian product ``dx = J^T dy`` for a given upstream
gradient ``dy``. To check it we differentiate the scalar ``L(x) = <dy, f(x)>`` numerically:

.. math::  \\frac{\\partial L}{\\partial x_i} \\approx
           \\frac{L(x + \\epsilon e_i) - L(x - \\epsilon e_i)}{2\\epsilon}

(central differences, error :math:`O(\\epsilon^2)`), in float64.

``dy`` must be **random**. With ``dy = 1`` the check only sees ``sum(f(x))``, which can hide
a wrong backward. Batch norm in training mode is the example: its normalised values sum to zero
per channel, so ``sum(y)`` does not depend on ``x``, the true ``dx`` is 0, and a backward that
drops the term through the variance (term (3) of ``docs/derivations/batchnorm2d.md``) also
returns 0 and "passes". A random ``dy`` gives that term a non-zero weight.

The error reported per input is normwise:
``max|analytic - numeric| / max(max|analytic|, max|numeric|, tiny)``, which is stable where
individual gradient entries are (close to) zero.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from sescratch.backend import to_numpy

__all__ = ["numerical_gradients", "relative_error", "gradcheck", "gradcheck_op"]


def relative_error(analytic, numeric, *, tiny: float = 1e-30) -> float:
    """Normwise relative error ``max|a - n| / max(max|a|, max|n|, tiny)``."""
    a = to_numpy(analytic).astype(np.float64)
    n = to_numpy(numeric).astype(np.float64)
    if a.shape != n.shape:
        raise ValueError(f"relative_error: shapes differ, analytic {a.shape} vs numeric {n.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.abs(a).max(), np.abs(n).max(), tiny)
    return float(np.abs(a - n).max() / scale)


def numerical_gradients(
    fn: Callable[..., object],
    inputs: Sequence[np.ndarray],
    dy: np.ndarray,
    *,
    wrt: Sequence[int] | None = None,
    eps: float = 1e-6,
) -> list[np.ndarray | None]:
    """Central-difference gradients of ``L = <dy, fn(*inputs)>`` with respect to ``inputs``.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs) -> y``; ``y`` may be an array or a scalar.
    inputs : sequence of float64 arrays
        Perturbed in place one entry at a time (and restored).
    dy : array, shape of ``y``
        The upstream gradient the scalar is contracted with.
    wrt : indices of ``inputs`` to differentiate (default: all).
    eps : step of the central difference.

    Returns
    -------
    list with one array per input (the shape of that input), ``None`` for inputs not in ``wrt``.
    """
    wrt = range(len(inputs)) if wrt is None else wrt
    dy = np.asarray(dy, dtype=np.float64)

    def scalar() -> float:
        return float(np.sum(dy * np.asarray(fn(*inputs), dtype=np.float64)))

    grads: list[np.ndarray | None] = [None] * len(inputs)
    for k in wrt:
        x = inputs[k]
        if x.dtype != np.float64:
            raise ValueError(f"numerical_gradients: input {k} must be float64, got {x.dtype}")
        g = np.zeros_like(x)
        flat_x, flat_g = x.reshape(-1), g.reshape(-1)  # views: x must be contiguous
        if not np.shares_memory(flat_x, x):
            raise ValueError(f"numerical_gradients: input {k} must be C-contiguous")
        for i in range(flat_x.size):
            saved = flat_x[i]
            flat_x[i] = saved + eps
            up = scalar()
            flat_x[i] = saved - eps
            down = scalar()
            flat_x[i] = saved
            flat_g[i] = (up - down) / (2 * eps)
        grads[k] = g
    return grads


def gradcheck(
    fn: Callable[..., object],
    backward: Callable[[np.ndarray], Sequence[np.ndarray | None]],
    inputs: Sequence[np.ndarray],
    *,
    wrt: Sequence[int] | None = None,
    dy: np.ndarray | None = None,
    seed: int = 0,
    eps: float = 1e-6,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Compare an analytic backward with central differences on any function of arrays.

    ``backward(dy)`` must return the gradients of ``<dy, fn(*inputs)>`` for ``inputs``, in
    order (``None`` where an input has no gradient). ``fn`` must be re-runnable (it is
    evaluated ``2 * size`` times). When ``dy`` is omitted a standard-normal one is drawn from
    ``seed``. Returns ``{name: max relative error}`` for every input in ``wrt``.
    """
    inputs = [np.ascontiguousarray(x, dtype=np.float64) for x in inputs]
    names = list(names) if names is not None else [f"input{i}" for i in range(len(inputs))]
    wrt = list(range(len(inputs))) if wrt is None else list(wrt)
    y = np.asarray(fn(*inputs), dtype=np.float64)
    if dy is None:
        dy = np.random.default_rng(seed).standard_normal(y.shape)
    analytic = list(backward(np.asarray(dy, dtype=np.float64)))
    if len(analytic) != len(inputs):
        raise ValueError(
            f"gradcheck: backward returned {len(analytic)} gradients for {len(inputs)} inputs"
        )
    numeric = numerical_gradients(fn, inputs, dy, wrt=wrt, eps=eps)
    errors = {}
    for k in wrt:
        if analytic[k] is None:
            raise ValueError(f"gradcheck: backward returned None for {names[k]!r}")
        errors[names[k]] = relative_error(analytic[k], numeric[k])
    return errors


def gradcheck_op(
    forward: Callable[..., tuple],
    backward: Callable[..., Sequence[np.ndarray | None] | np.ndarray],
    inputs: Mapping[str, np.ndarray],
    *,
    wrt: Sequence[str] | None = None,
    kwargs: Mapping[str, object] | None = None,
    seed: int = 0,
    eps: float = 1e-6,
) -> dict[str, float]:
    """Gradient-check an op that follows the ``forward -> (y, cache)`` / ``backward(dy, cache)`` contract.

    ``inputs`` maps the forward's positional argument names to arrays, in order; ``backward``
    returns one gradient per input in the same order (or a single array for a one-input op).
    ``wrt`` names the inputs to check (default: all). Returns ``{name: max relative error}``.

    Example
    -------
    >>> errs = gradcheck_op(conv2d_forward, conv2d_backward, {"x": x, "w": w, "b": b},
    ...                     kwargs={"stride": 2, "padding": 1})
    """
    names = list(inputs)
    kwargs = dict(kwargs or {})

    def fn(*arrays):
        y, _ = forward(*arrays, **kwargs)
        return y

    def grads(dy):
        _, cache = forward(*arrays64, **kwargs)
        out = backward(dy, cache)
        return (out,) if not isinstance(out, (tuple, list)) else out

    arrays64 = [np.ascontiguousarray(inputs[n], dtype=np.float64) for n in names]
    wrt_idx = [names.index(n) for n in (wrt if wrt is not None else names)]
    analytic_fn = grads
    return gradcheck(fn, analytic_fn, arrays64, wrt=wrt_idx, seed=seed, eps=eps, names=names)
