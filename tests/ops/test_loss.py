"""softmax_cross_entropy: formula, gradient check, PyTorch oracle (label smoothing), ±1e4 logits."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.ops.loss import softmax_cross_entropy
from tests.helpers import to_numpy
from tests.ops._ophelp import assert_rel, check_gradients, with_xp


def cross_entropy_reference(z, t, eps):
    """Sample by sample, class by class, from the definition (moderate logits only)."""
    N, K = z.shape
    total = 0.0
    for n in range(N):
        log_norm = math.log(sum(math.exp(v) for v in z[n]))
        for k in range(K):
            q = (1 - eps) * (k == t[n]) + eps / K
            total -= q * (z[n, k] - log_norm)
    return total / N


def as_op(labels, label_smoothing):
    """The loss as a forward/backward pair: the cache is dlogits, the backward scales it by dy."""

    def forward(logits):
        return softmax_cross_entropy(logits, labels, label_smoothing=label_smoothing)

    def backward(dloss, dlogits):
        return dloss * dlogits

    return forward, backward


@with_xp
@given(N=st.integers(1, 4), K=st.integers(1, 6), eps=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       seed=st.integers(0, 2**31))
def test_cross_entropy_value_and_gradient(xp, N, K, eps, seed):
    rng = np.random.default_rng(seed)
    z, t = rng.standard_normal((N, K)) * 3, rng.integers(0, K, N)
    loss, _ = softmax_cross_entropy(xp.asarray(z), xp.asarray(t), label_smoothing=eps)
    expected = cross_entropy_reference(z, t, eps)
    assert math.isclose(float(loss), expected, rel_tol=1e-12, abs_tol=1e-14)
    forward, backward = as_op(xp.asarray(t), eps)
    check_gradients(xp, forward, backward, {"logits": z}, seed=seed)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3, 1.0])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_cross_entropy_matches_torch(xp, eps, scale):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    z, t = rng.standard_normal((6, 5)) * scale, rng.integers(0, 5, 6)
    z_t = torch.tensor(z, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(z_t, torch.tensor(t), label_smoothing=eps)
    loss_t.backward()
    loss, dlogits = softmax_cross_entropy(xp.asarray(z), xp.asarray(t), label_smoothing=eps)
    assert_rel(to_numpy(loss), loss_t.detach().numpy())
    assert_rel(dlogits, z_t.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_extreme_logits_no_warning_no_nan(xp, dtype):
    z = xp.asarray(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]], dtype=dtype))
    t = xp.asarray(np.array([0, 0, 1]))
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss, dlogits = softmax_cross_entropy(z, t, label_smoothing=0.1)
    dlogits = to_numpy(dlogits)
    assert np.isfinite(float(loss)) and np.isfinite(dlogits).all()
    assert dlogits.dtype == dtype and to_numpy(loss).dtype == dtype  # a NumPy scalar or 0-d CuPy array
    # row 1 is wrong by 2e4: its loss is about (1 - 0.1 + 0.1/3) * 2e4 (smoothing adds the rest)
    assert float(loss) > 6e3


def test_cross_entropy_gradient_rows_sum_to_zero():
    z, t = np.random.default_rng(0).standard_normal((4, 7)), np.array([0, 6, 3, 3])
    _, dlogits = softmax_cross_entropy(z, t, label_smoothing=0.2)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=1e-15)  # sum(p) = sum(q) = 1


Z = np.zeros((2, 3))


@pytest.mark.parametrize(
    "logits, labels, kwargs, match",
    [
        (Z, np.array([0, 3]), {}, r"argument 'labels' must lie in \[0, 2\], got 3"),
        (Z, np.array([-1, 0]), {}, r"argument 'labels' must lie in \[0, 2\], got -1"),
        (Z, np.array([0.0, 1.0]), {}, r"argument 'labels' must be an integer array, got float64"),
        (Z, [0, 1], {}, r"argument 'labels' must be an integer array, got list"),
        (Z, np.array([[0, 1]]), {}, r"argument 'labels' expected shape \(2,\)"),
        (np.zeros(3), np.array([0]), {}, r"argument 'logits' must be 2-D, got 1-D"),
        (Z.astype(np.int64), np.array([0, 1]), {}, r"argument 'logits' must have a floating dtype"),
        (Z, np.array([0, 1]), {"label_smoothing": -0.1}, r"argument 'label_smoothing' must be in \[0, 1\]"),
        (Z, np.array([0, 1]), {"label_smoothing": 1.5}, r"argument 'label_smoothing' must be in \[0, 1\]"),
    ],
)
def test_cross_entropy_bad_input(logits, labels, kwargs, match):
    with pytest.raises(ValueError, match=f"softmax_cross_entropy: {match}"):
        softmax_cross_entropy(logits, labels, **kwargs)
