"""Helpers for the op tests: run an op on the ``xp`` fixture's device under the gradient checker,
compare with PyTorch, and hypothesis settings that accept the function-scoped ``xp`` fixture."""
import numpy as np
from hypothesis import HealthCheck, settings

from sescratch.gradcheck import gradcheck_op, relative_error
from tests.helpers import to_numpy

# ``xp`` only selects a backend, so sharing it across hypothesis examples is safe.
with_xp = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ]
)

GRAD_TOL = 1e-6  # analytic vs central differences, float64, random upstream gradient
ORACLE_TOL = 1e-9  # vs torch.nn.functional, float64


def on_device(xp, forward, backward):
    """Wrap an op so that ``gradcheck_op`` (NumPy float64 in and out) runs it on ``xp``."""

    def fwd(*arrays, **kwargs):
        y, cache = forward(*(xp.asarray(a) for a in arrays), **kwargs)
        return to_numpy(y), cache

    def bwd(dy, cache):
        grads = backward(xp.asarray(dy), cache)
        if isinstance(grads, tuple):
            return tuple(to_numpy(g) for g in grads)
        return to_numpy(grads)

    return fwd, bwd


def check_gradients(xp, forward, backward, inputs, *, kwargs=None, wrt=None, seed=0):
    """Assert every analytic gradient matches central differences (rel. error <= 1e-6).

    The upstream gradient is drawn from ``seed + 1``: tests draw their inputs from ``seed``, and
    a ``dy`` equal to (an affine map of) ``x`` would be anything but random -- for batch norm
    it makes the true ``dx`` almost vanish.
    """
    errors = gradcheck_op(*on_device(xp, forward, backward), inputs, kwargs=kwargs, wrt=wrt,
                          seed=seed + 1)
    assert max(errors.values()) <= GRAD_TOL, errors
    return errors


def assert_rel(actual, expected, tol=ORACLE_TOL):
    """Normwise relative error ``max|a - e| / max|e|`` within ``tol`` (shapes must agree)."""
    actual, expected = to_numpy(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = relative_error(actual, expected)
    assert err <= tol, f"relative error {err:.3e} > {tol:.0e}"


def torch_grads(torch, fn, arrays, dy):
    """Forward ``fn(*tensors)`` in float64 with autograd; returns ``(y, [d/d array, ...])``."""
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y = fn(*tensors)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), [t.grad.numpy() for t in tensors]
