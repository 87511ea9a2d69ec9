"""Checks for tutorials 03-05: the squeeze (GAP), the excitation, and the SE block's backward.

References: :mod:`sescratch.ops` (``global_avg_pool_*``, ``linear_*``, ``relu_*``, ``sigmoid_*``,
``se_scale_*``) in float64 on the NumPy reference code. Weights follow :func:`sescratch.ops.linear_forward`:
``W1`` is (C/r, C) and ``h = z @ W1.T + b1``.
"""
from __future__ import annotations

import numpy as np

from sescratch import backend, ops
from sescratch.learn._grading import as_tuple, call, compare, passed, rng_for

__all__ = ["check_gap_forward", "check_gap_backward", "check_excitation_forward",
           "check_excitation_backward", "check_se_block_backward"]


def _feature_map(rng, general=False):
    """A random (N, C, H, W) map; ``general`` (each check's first case): N, C >= 2 and H != W,
    so that no axis mixed up with another goes unseen."""
    N, C = rng.integers(1, 4), rng.integers(1, 6)
    H, W = rng.integers(1, 7, size=2)
    if general:
        N, C = rng.integers(2, 4), rng.integers(2, 6)
        H, W = rng.choice(np.arange(1, 7), size=2, replace=False)
    x = rng.standard_normal((N, C, H, W))
    return x, f"x {x.shape}"


def check_gap_forward(fn, *, cases: int = 4, seed=None) -> float:
    """Grade ``fn(x) -> z``: global average pooling, (N, C, H, W) -> (N, C) (paper Eq. 2)."""
    check, rng, errors = "check_gap_forward", rng_for(seed), []
    for i in range(cases):
        x, case = _feature_map(rng, general=i == 0)
        with backend.use("numpy"):
            z_ref, _ = ops.global_avg_pool_forward(x)
        z = call(check, fn, x.copy())
        hints = {"that is the SUM over the plane: divide by H*W": z_ref * x.shape[2] * x.shape[3],
                 "average over H and W (axes 2 and 3) only, one value per (sample, channel)":
                     x.mean(axis=(0, 2, 3)),
                 "average over H and W only (axes 2 and 3), not over the batch too":
                     np.broadcast_to(x.mean(axis=(0, 2, 3)), z_ref.shape)}
        errors.append(compare(check, "z", z, z_ref, case, hints, "z[n, c] = mean of x[n, c] over H, W"))
    return passed(check, errors, cases)


def check_gap_backward(fn, *, cases: int = 4, seed=None) -> float:
    """Grade ``fn(dz, x_shape) -> dx`` with a random upstream ``dz`` (N, C)."""
    check, rng, errors = "check_gap_backward", rng_for(seed), []
    for i in range(cases):
        x, case = _feature_map(rng, general=i == 0)
        with backend.use("numpy"):
            z, cache = ops.global_avg_pool_forward(x)
            dz = rng.standard_normal(z.shape)
            dx_ref = ops.global_avg_pool_backward(dz, cache)
        dx = call(check, fn, dz.copy(), tuple(x.shape))
        hints = {"every position gets dz / (H*W): the 1/(H*W) of the mean is missing":
                     dx_ref * x.shape[2] * x.shape[3]}
        errors.append(compare(check, "dx", dx, dx_ref, case, hints,
                              "spread dz[n, c] evenly over the H*W positions of channel c"))
    return passed(check, errors, cases)


def _excitation_case(rng, general=False):
    """Random z, W1, b1, W2, b2; ``general`` (each check's first case): two samples or more."""
    N, C = int(rng.integers(2 if general else 1, 5)), int(rng.integers(2, 17))
    hidden = int(rng.integers(1, max(C // 2, 1) + 1))
    z = rng.standard_normal((N, C))
    W1, b1 = rng.standard_normal((hidden, C)) / np.sqrt(C), rng.standard_normal(hidden)
    W2, b2 = rng.standard_normal((C, hidden)) / np.sqrt(hidden), rng.standard_normal(C)
    return (z, W1, b1, W2, b2), f"z {z.shape}, W1 {W1.shape}, W2 {W2.shape}"


def _excitation_reference(z, W1, b1, W2, b2):
    with backend.use("numpy"):
        h, c_fc1 = ops.linear_forward(z, W1, b1)  # N,C_r
        a, c_relu = ops.relu_forward(h)  # N,C_r
        e, c_fc2 = ops.linear_forward(a, W2, b2)  # N,C
        s, c_gate = ops.sigmoid_forward(e)  # N,C
    return s, (c_fc1, c_relu, c_fc2, c_gate), (h, e)


def _excitation_backward_reference(ds, caches):
    c_fc1, c_relu, c_fc2, c_gate = caches
    with backend.use("numpy"):
        de = ops.sigmoid_backward(ds, c_gate)  # N,C
        da, dW2, db2 = ops.linear_backward(de, c_fc2)  # N,C_r
        dh = ops.relu_backward(da, c_relu)  # N,C_r
        dz, dW1, db1 = ops.linear_backward(dh, c_fc1)  # N,C
    return dz, dW1, db1, dW2, db2


def check_excitation_forward(fn, *, cases: int = 4, seed=None) -> float:
    """Grade ``fn(z, W1, b1, W2, b2) -> s = sigmoid(W2 relu(W1 z + b1) + b2)`` (paper Eq. 3)."""
    check, rng, errors = "check_excitation_forward", rng_for(seed), []
    for i in range(cases):
        params, case = _excitation_case(rng, general=i == 0)
        s_ref, _, (h, e) = _excitation_reference(*params)
        s = call(check, fn, *(p.copy() for p in params))
        hints = {"the ReLU between the two FCs is missing": 1 / (1 + np.exp(-(h @ params[3].T + params[4]))),
                 "the sigmoid at the end is missing (s must lie in (0, 1))": e}
        errors.append(compare(check, "s", s, s_ref, case, hints,
                              "h = z @ W1.T + b1, a = relu(h), e = a @ W2.T + b2, s = sigmoid(e)"))
    return passed(check, errors, cases)


def check_excitation_backward(fn, *, cases: int = 4, seed=None) -> float:
    """Grade ``fn(ds, z, W1, b1, W2, b2) -> (dz, dW1, db1, dW2, db2)`` with a random upstream ``ds``."""
    check, rng, errors = "check_excitation_backward", rng_for(seed), []
    names = ("dz", "dW1", "db1", "dW2", "db2")
    for i in range(cases):
        params, case = _excitation_case(rng, general=i == 0)
        s, caches, (h, _) = _excitation_reference(*params)
        ds = rng.standard_normal(s.shape)
        refs = _excitation_backward_reference(ds, caches)
        got = as_tuple(check, call(check, fn, ds.copy(), *(p.copy() for p in params)), names)
        de_wrong = ds * (1 - s)  # a common slip: sigma' = 1 - s
        wrong_dW2 = de_wrong.T @ np.maximum(h, 0)
        hints = {
            "dW2": ({"the sigmoid's derivative is s * (1 - s)": wrong_dW2,
                     "dW2 must have W2's shape (C, C/r): dW2 = de.T @ a": refs[3].T}, ""),
            "db2": ({"the sigmoid's derivative is s * (1 - s)": de_wrong.sum(axis=0)}, ""),
            "dW1": ({"dW1 must have W1's shape (C/r, C): dW1 = dh.T @ z": refs[1].T}, ""),
        }
        for k in (3, 4, 1, 2, 0):  # in the order backprop finds them: dW2 first, dz last
            name, g, ref = names[k], got[k], refs[k]
            table, default = hints.get(name, (None, ""))
            errors.append(compare(check, name, g, ref, case, table, default or
                                  "one backward line per forward line: de = ds * s * (1 - s), "
                                  "da = de @ W2, dh = da * (h > 0), dz = dh @ W1"))
    return passed(check, errors, cases)


def check_se_block_backward(fn, *, cases: int = 4, seed=None) -> float:
    """Grade ``fn(dy, u, W1, b1, W2, b2) -> (du, dW1, db1, dW2, db2)`` for the whole SE block.

    Forward: ``z = GAP(u)``, ``s = excitation(z)``, ``y = u * s[:, :, None, None]``. ``u`` feeds
    both the squeeze and the scale, so ``du`` is the sum of the two paths' gradients.
    """
    check, rng, errors = "check_se_block_backward", rng_for(seed), []
    names = ("du", "dW1", "db1", "dW2", "db2")
    for i in range(cases):
        (_, W1, b1, W2, b2), _ = _excitation_case(rng)
        C = W1.shape[1]
        N, H, W = int(rng.integers(2 if i == 0 else 1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 6))
        if i == 0 and H == W:  # the first case: two images or more, H != W
            W = H % 5 + 1
        u = rng.standard_normal((N, C, H, W))
        case = f"u {u.shape}, W1 {W1.shape}, W2 {W2.shape}"
        with backend.use("numpy"):
            z, c_squeeze = ops.global_avg_pool_forward(u)  # N,C
            s, caches, _ = _excitation_reference(z, W1, b1, W2, b2)  # N,C
            y, c_scale = ops.se_scale_forward(u, s)  # N,C,H,W
            dy = rng.standard_normal(y.shape)
            du_from_scale, ds = ops.se_scale_backward(dy, c_scale)  # N,C,H,W and N,C
            dz, dW1, db1, dW2, db2 = _excitation_backward_reference(ds, caches)
            du_from_squeeze = ops.global_avg_pool_backward(dz, c_squeeze)  # N,C,H,W
        refs = (du_from_scale + du_from_squeeze, dW1, db1, dW2, db2)
        got = as_tuple(check, call(check, fn, dy.copy(), u.copy(), W1.copy(), b1.copy(), W2.copy(),
                                   b2.copy()), names)
        fan_out = {"u fans out into the squeeze AND the scale: du = du_from_scale + du_from_squeeze "
                   "(only the scale's path is there)": du_from_scale,
                   "u fans out into the squeeze AND the scale: du = du_from_scale + du_from_squeeze "
                   "(only the squeeze's path is there)": du_from_squeeze,
                   "the squeeze's path lacks the mean's 1/(H*W): every position of channel c gets "
                   "dz[n, c] / (H*W)": du_from_scale + du_from_squeeze * H * W}
        for name, g, ref in zip(names, got, refs):
            errors.append(compare(check, name, g, ref, case, fan_out if name == "du" else None,
                                  "ds[n, c] = sum over H, W of dy * u; then the excitation's backward"))
    return passed(check, errors, cases)
