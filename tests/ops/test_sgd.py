"""sgd_update: the fused kernels equal the NumPy reference bit for bit; the formula; bad input.

The kernels (Numba; CuPy, skipped without a GPU) must reproduce every rounding of the reference,
step after step, float32 and float64, in every branch (weight decay or not, momentum, dampening,
Nesterov, the buffer's first step). The reference itself is checked against the definition
evaluated in float64 and against ``torch.optim.SGD`` (``tests/train/test_optim.py`` runs the
optimiser built on this op against PyTorch step for step).
"""
import numpy as np
import pytest

from sescratch import backend
from sescratch.ops import sgd_update, sgd_update_reference
from tests.helpers import DTYPES, KERNEL_FAMILIES, to_numpy

CONFIGS = [  # lr, momentum, dampening, weight_decay, nesterov
    (0.1, 0.0, 0.0, 0.0, False),
    (0.1, 0.0, 0.0, 5e-4, False),
    (0.05, 0.9, 0.0, 0.0, False),
    (0.1, 0.9, 0.0, 5e-4, True),
    (0.3, 0.8, 0.25, 1e-2, False),
]


def _run(update, xp, p0, grads, config):
    """Apply ``update`` for every gradient of ``grads``; return (p, b) on the host."""
    lr, momentum, dampening, weight_decay, nesterov = config
    p = xp.asarray(p0.copy())
    b = None if momentum == 0 else xp.full(p.shape, np.nan, dtype=p.dtype)  # never read on step 1
    for step, g in enumerate(grads):
        update(p, xp.asarray(g), b, lr, momentum, dampening, weight_decay, nesterov, step == 0)
    return to_numpy(p), (None if b is None else to_numpy(b))


def _problem(dtype, seed=0, shape=(7, 3, 3, 3), steps=4):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]
    return p0, grads


@pytest.mark.parametrize("family", KERNEL_FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", CONFIGS)
def test_kernel_equals_the_reference_bit_for_bit(family, dtype, config):
    p0, grads = _problem(dtype)
    expected = _run(sgd_update_reference, np, p0, grads, config)
    xp = np
    if family == "cupy":
        import cupy as xp
    kernel = backend.family_kernels(family)["sgd_update"]
    got = _run(kernel, xp, p0, grads, config)
    for name, a, e in zip(("p", "b"), got, expected):
        if e is None:
            assert a is None
            continue
        assert a.dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(a, e, err_msg=name)


@pytest.mark.parametrize("family", [*KERNEL_FAMILIES, "numpy"])
def test_the_public_op_updates_in_place_on_every_family(family):
    p0, (g,) = _problem(np.float32, steps=1)
    expected_p = p0 - np.float32(0.1) * g  # no momentum, no decay: one rounding each
    if family == "cupy":
        import cupy

        p = cupy.asarray(p0)
        with backend.use("numpy"):
            sgd_update(p, cupy.asarray(g), lr=0.1)
    else:
        p = p0.copy()
        with backend.use(family):
            sgd_update(p, g, lr=0.1)
    np.testing.assert_array_equal(to_numpy(p), expected_p)


def test_reference_follows_the_definition_in_float64():
    lr, mu, tau, wd = 0.1, 0.9, 0.2, 1e-2
    p0, grads = _problem(np.float64, steps=3)
    for nesterov in (False, True):
        tau_ = 0.0 if nesterov else tau
        p, b = p0.copy(), None
        for step, g in enumerate(grads):  # the docstring's five lines
            d = g + wd * p
            b = d.copy() if step == 0 else mu * b + (1 - tau_) * d
            d = d + mu * b if nesterov else b
            p = p - lr * d
        got_p, got_b = _run(sgd_update_reference, np, p0, grads, (lr, mu, tau_, wd, nesterov))
        np.testing.assert_allclose(got_p, p, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(got_b, b, rtol=1e-14, atol=1e-15)


P, G = np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32)


@pytest.mark.parametrize("args, kwargs, match", [
    ((P, np.zeros((3, 2), np.float32)), {"lr": 0.1}, r"argument 'g' expected shape \(2, 3\)"),
    ((P, G.astype(np.float64)), {"lr": 0.1}, "arguments must share one dtype"),
    ((P, G), {"lr": -1.0}, "argument 'lr' must be a real number >= 0"),
    ((P, G), {"lr": 0.1, "dampening": 1.5}, r"argument 'dampening' must be a real number in \[0, 1\]"),
    ((P, G), {"lr": 0.1, "momentum": 0.9}, "argument 'b' must be an array when momentum != 0"),
    ((P, G, np.zeros((2, 3), np.float32)), {"lr": 0.1},
     "argument .b. must be .* None when momentum == 0, got ndarray"),
    ((P, G, np.zeros(6, np.float32)), {"lr": 0.1, "momentum": 0.9}, r"argument 'b' expected shape"),
    ((np.zeros((3, 2), np.float32).T, G), {"lr": 0.1}, "argument 'p' must be C-contiguous"),
    ((P.astype(np.int32), G), {"lr": 0.1}, "argument 'p' must have a floating dtype"),
])
def test_bad_input_is_a_clear_error(args, kwargs, match):
    with pytest.raises(ValueError, match=f"sgd_update: {match}"):
        sgd_update(*args, **kwargs)
