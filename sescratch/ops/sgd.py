"""The SGD update of one parameter, in place: the op behind :class:`sescratch.train.SGD`.

Notation
--------
p : parameter    g : its gradient    b : its momentum buffer (all one shape and dtype)
lr : learning rate    mu : momentum    tau : dampening    wd : L2 weight decay

PyTorch's ``torch.optim.SGD``, one step::

    d = g + wd * p                      (L2 weight decay, added to the gradient; skipped if wd = 0)
    b = d                               on the first step,
    b = mu * b + (1 - tau) * d          afterwards            (the momentum buffer; mu > 0 only)
    d = d + mu * b   if nesterov else   d = b
    p = p - lr * d

Every product and sum is rounded to the parameters' dtype (float32 in training), as NumPy does
when an array meets a Python float. The reference below is that NumPy code, 6 to 9 array passes
(and, on a GPU, as many kernel launches) per parameter; the kernels do one pass with the same
roundings in the same order, so all three agree bit for bit (the CuPy kernel is compiled without
fused multiply-adds for that).

References
----------
Sutskever et al., *On the importance of initialization and momentum in deep learning*, ICML 2013
(Nesterov momentum in this form); the paper's recipe is momentum 0.9 (Hu, Shen, Sun, Sec. 5).
"""
from __future__ import annotations

import numbers

from sescratch.backend import declare_kernels
from sescratch.ops._checks import check_float_array, check_same_dtype, check_shape

__all__ = ["sgd_update", "sgd_update_reference"]


def sgd_update_reference(p, g, b, lr, momentum, dampening, weight_decay, nesterov, first):
    """One SGD step in ``xp``, in place on ``p`` (and ``b`` when ``momentum != 0``; else b is None)."""
    d = g
    if weight_decay != 0:
        d = d + weight_decay * p  # L2 term
    if momentum != 0:
        if first:
            b[...] = d
        else:
            b *= momentum
            b += (1.0 - dampening) * d
        d = d + momentum * b if nesterov else b
    p -= lr * d


def _check_scalar(op, name, value, *, low=0.0, high=None):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value >= low or (
            high is not None and not value <= high):
        bound = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise ValueError(f"{op}: argument '{name}' must be a real number {bound}, got {value!r}")


# Dispatch: the public op checks its inputs, then runs the declared kernel or the reference.
_KERNELS = declare_kernels("sgd_update")


def sgd_update(p, g, b=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
               nesterov=False, first=False):
    """Update ``p`` (and its momentum buffer ``b``) in place from the gradient ``g``.

    Parameters
    ----------
    p : array, any shape, float32 or float64, C-contiguous (updated in place)
    g : array, shape and dtype of ``p``
    b : array like ``p``, or None
        The momentum buffer (updated in place); required when ``momentum != 0``, else None.
    lr, momentum, dampening, weight_decay : float >= 0 (dampening in [0, 1])
    nesterov : bool
    first : bool
        True on the buffer's first step: ``b`` is set to ``d`` (its old content is ignored).

    Returns
    -------
    None

    Derivation
    ----------
    None to derive: the step is the definition above. The momentum form is PyTorch's
    (``b`` accumulates gradients, ``lr`` multiplies the step), not Sutskever's
    (``v = mu v - lr g``); the two agree for a constant learning rate.
    """
    op = "sgd_update"
    check_float_array(op, "p", p)
    check_float_array(op, "g", g)
    check_shape(op, "g", g, p.shape, "the shape of p")
    check_same_dtype(op, p=p, g=g, b=b)
    if not p.flags.c_contiguous:
        raise ValueError(f"{op}: argument 'p' must be C-contiguous (it is updated in place)")
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        _check_scalar(op, name, value)
    _check_scalar(op, "dampening", dampening, high=1.0)
    if (b is None) != (momentum == 0):
        raise ValueError(f"{op}: argument 'b' must be an array when momentum != 0 and None when "
                         f"momentum == 0, got {type(b).__name__} with momentum {momentum!r}")
    if b is not None:
        check_shape(op, "b", b, p.shape, "the shape of p")
        if not b.flags.c_contiguous:
            raise ValueError(f"{op}: argument 'b' must be C-contiguous (it is updated in place)")
    kernel = _KERNELS.get("sgd_update", p, g)
    update = sgd_update_reference if kernel is None else kernel
    update(p, g, b, float(lr), float(momentum), float(dampening), float(weight_decay),
           bool(nesterov), bool(first))
