"""Check for tutorial 06: batch norm's backward in training mode, written line by line.

Reference: :func:`sescratch.ops.batchnorm2d_backward` (float64, NumPy reference code). The
hints recognise the two classic slips: dropping the path through the mean (term 2) or through
the variance (term 3) of ``dx``.
"""
from __future__ import annotations

from sescratch import backend, ops
from sescratch.learn._grading import as_tuple, call, compare, passed, rng_for

__all__ = ["check_batchnorm_backward"]


def check_batchnorm_backward(fn, *, cases: int = 4, seed=None, eps: float = 1e-5) -> float:
    """Grade ``fn(dy, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``, batch statistics over (N, H, W).

    ``x`` has a mean and a spread far from 0 and 1 and ``dy`` is random, so neither term of
    ``dx`` can hide.
    """
    check, rng, errors = "check_batchnorm_backward", rng_for(seed), []
    for _ in range(cases):
        N, C = int(rng.integers(2, 5)), int(rng.integers(1, 5))
        H, W = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        x = 2.0 + 1.5 * rng.standard_normal((N, C, H, W))
        gamma, beta = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
        case = f"x {x.shape}"
        with backend.use("numpy"):
            y, cache = ops.batchnorm2d_forward(x, gamma, beta, None, None, training=True, eps=eps)
            dy = rng.standard_normal(y.shape)
            dx_ref, dgamma_ref, dbeta_ref = ops.batchnorm2d_backward(dy, cache)
        M = N * H * W
        g = (gamma * cache.inv_std)[None, :, None, None]  # 1,C,1,1
        xhat = (x - cache.mean[None, :, None, None]) * cache.inv_std[None, :, None, None]  # N,C,H,W
        mean_term = (dbeta_ref / M)[None, :, None, None]  # 1,C,1,1
        var_term = xhat * (dgamma_ref / M)[None, :, None, None]  # N,C,H,W
        hints = {
            "the path through the variance is missing (term 3: xc feeds xhat AND xc**2)":
                g * (dy - mean_term),
            "the path through the mean is missing (term 2: x feeds xc AND mu)": g * (dy - var_term),
            "only the direct path is there: x also reaches the loss through mu and var "
            "(add the gradient of each use)": g * dy,
        }
        out = call(check, fn, dy.copy(), x.copy(), gamma.copy(), beta.copy(), eps)
        dx, dgamma, dbeta = as_tuple(check, out, ("dx", "dgamma", "dbeta"))
        errors.append(compare(check, "dbeta", dbeta, dbeta_ref, case, None,
                              "dbeta = dy summed over N, H, W"))
        errors.append(compare(check, "dgamma", dgamma, dgamma_ref, case, None,
                              "dgamma = (dy * xhat) summed over N, H, W"))
        errors.append(compare(check, "dx", dx, dx_ref, case, hints,
                              "walk the forward lines bottom-up; where a value is used twice, "
                              "add the two gradients"))
    return passed(check, errors, cases)
