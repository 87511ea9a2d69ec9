"""Softmax cross-entropy with optional label smoothing: the training loss of every model.

Notation
--------
N : batch size    K : classes    z : logits (N, K)    t : integer labels (N,)
p = softmax(z) (row-wise)    q : target distribution (N, K),
``q = (1 - ε) onehot(t) + ε / K`` (ε = ``label_smoothing``)

    loss = -(1/N) sum_n sum_k q[n, k] log p[n, k]

With ε = 0 this is ``-(1/N) sum_n log p[n, t_n]``. It equals
``torch.nn.functional.cross_entropy(z, t, label_smoothing=ε)`` (mean reduction).

Stability: ``log p = z - m - log sum_k exp(z_k - m)`` with ``m = max_k z_k`` (log-sum-exp):
every exponent is <= 0, so nothing overflows for logits of ±1e4 and the log never sees 0.
Long form: ``docs/derivations/softmax_cross_entropy.md``.

References
----------
Szegedy et al., *Rethinking the Inception Architecture*, CVPR 2016, Sec. 7 (label smoothing);
SENet-154 was trained with it (Hu, Shen, Sun, TPAMI version, appendix).
"""
from __future__ import annotations

import numbers

import numpy as np

from sescratch.backend import get_array_module
from sescratch.ops._checks import check_float_array

__all__ = ["softmax_cross_entropy", "log_softmax"]


def log_softmax(z):
    """Row-wise ``log softmax(z)`` by the log-sum-exp trick; shape (N, K) -> (N, K)."""
    xp = get_array_module(z)
    shifted = z - z.max(axis=1, keepdims=True)  # N,K  every entry <= 0, the max is 0
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))  # N,K  (sum >= 1)


def softmax_cross_entropy(logits, labels, *, label_smoothing=0.0):
    """Mean cross-entropy between ``softmax(logits)`` and (smoothed) one-hot labels.

    Parameters
    ----------
    logits : array, shape (N, K), float32 or float64
    labels : integer array, shape (N,), values in [0, K)
    label_smoothing : float in [0, 1]
        ε: the target puts ``1 - ε + ε/K`` on the label and ``ε/K`` on every other class.

    Returns
    -------
    loss : scalar of the logits' dtype (a NumPy scalar, or a 0-d CuPy array; ``float()`` works)
    dlogits : array, shape (N, K), gradient of ``loss`` with respect to ``logits``

    Derivation
    ----------
    ``log p_k = z_k - log sum_j exp(z_j)``, so ``d log p_k / d z_j = [k = j] - p_j``.
    For one sample, ``L = -sum_k q_k log p_k`` with ``sum_k q_k = 1``:
    ``dL/dz_j = -sum_k q_k ([k = j] - p_j) = -q_j + p_j sum_k q_k = p_j - q_j``.
    The mean over the batch divides by N: ``dlogits = (p - q) / N``. Label smoothing only
    changes the target ``q``, not the form of the gradient.
    """
    op = "softmax_cross_entropy"
    check_float_array(op, "logits", logits, ndim=2)
    N, K = logits.shape
    if not hasattr(labels, "dtype") or not np.issubdtype(np.dtype(labels.dtype), np.integer):
        got = labels.dtype if hasattr(labels, "dtype") else type(labels).__name__
        raise ValueError(f"{op}: argument 'labels' must be an integer array, got {got}")
    if labels.shape != (N,):
        raise ValueError(
            f"{op}: argument 'labels' expected shape ({N},) (one label per row of logits), "
            f"got {tuple(labels.shape)}"
        )
    if N == 0 or K == 0:
        raise ValueError(f"{op}: argument 'logits' must have N >= 1 and K >= 1, got {(N, K)}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= K:
        bad = low if low < 0 else high
        raise ValueError(f"{op}: argument 'labels' must lie in [0, {K - 1}], got {bad}")
    eps = label_smoothing
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not 0 <= eps <= 1:
        raise ValueError(f"{op}: argument 'label_smoothing' must be in [0, 1], got {eps!r}")

    xp = get_array_module(logits)
    labels = xp.asarray(labels)  # on the logits' device
    logp = log_softmax(logits)  # N,K
    q = xp.full((N, K), eps / K, dtype=logits.dtype)  # N,K  the smoothed part
    q[xp.arange(N), labels] += 1 - eps  # N,K  (1 - ε) on each row's label
    loss = -(q * logp).sum() / N  # scalar
    dlogits = (xp.exp(logp) - q) / N  # N,K  (p - q) / N
    return loss, dlogits
