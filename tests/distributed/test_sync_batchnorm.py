"""sync_batchnorm2d over simulated shards == batchnorm2d over the whole batch; gradcheck."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch.gradcheck import gradcheck
from sescratch.ops.batchnorm import batchnorm2d_backward, batchnorm2d_forward
from sescratch.ops.sync_batchnorm import sync_batchnorm2d_backward, sync_batchnorm2d_forward
from tests.distributed.threaded import run_ranks


def split(n: int, parts: list[int]) -> list[slice]:
    """Contiguous shards with the given sizes (sum = n)."""
    bounds = np.cumsum([0] + parts)
    assert bounds[-1] == n
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def sharded(x, gamma, beta, dy, parts, momentum=0.1, eps=1e-5):
    """Run the sync op on len(parts) threaded ranks: (y, dx, dgamma, dbeta, running stats, calls)."""
    shards = split(len(x), parts)
    C = x.shape[1]

    def rank(comm):
        rm, rv = np.zeros(C), np.ones(C)
        s = shards[comm.rank]
        y, cache = sync_batchnorm2d_forward(x[s], gamma, beta, rm, rv, reduce=comm.allreduce_sum,
                                            momentum=momentum, eps=eps)
        dx, dgamma, dbeta = sync_batchnorm2d_backward(dy[s], cache)
        return y, dx, dgamma, dbeta, rm, rv, comm.calls

    out = run_ranks(len(parts), rank)
    y = np.concatenate([o[0] for o in out])
    dx = np.concatenate([o[1] for o in out])
    dgamma, dbeta = sum(o[2] for o in out), sum(o[3] for o in out)
    for o in out[1:]:  # every rank holds the same running statistics
        np.testing.assert_array_equal(o[4], out[0][4])
        np.testing.assert_array_equal(o[5], out[0][5])
    return y, dx, dgamma, dbeta, out[0][4], out[0][5], [o[6] for o in out]


def plain(x, gamma, beta, dy, momentum=0.1, eps=1e-5):
    C = x.shape[1]
    rm, rv = np.zeros(C), np.ones(C)
    y, cache = batchnorm2d_forward(x, gamma, beta, rm, rv, training=True, momentum=momentum, eps=eps)
    dx, dgamma, dbeta = batchnorm2d_backward(dy, cache)
    return y, dx, dgamma, dbeta, rm, rv


def close(a, b, tol=1e-12):
    scale = max(np.abs(b).max(), 1.0)
    assert np.abs(a - b).max() <= tol * scale, np.abs(a - b).max()


@given(parts=st.lists(st.integers(0, 4), min_size=1, max_size=4).filter(lambda p: sum(p) >= 2),
       C=st.integers(1, 3), H=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_shards_equal_whole_batch(parts, C, H, seed):
    rng = np.random.default_rng(seed)
    N = sum(parts)
    x = rng.standard_normal((N, C, H, H)) * 3 + 5  # a large mean: the two-pass variance matters
    gamma, beta = rng.uniform(0.5, 2, C), rng.standard_normal(C)
    dy = rng.standard_normal(x.shape)
    *got, calls = sharded(x, gamma, beta, dy, parts)
    for g, e in zip(got, plain(x, gamma, beta, dy)):
        close(g, e)
    assert calls == [3] * len(parts)  # two allreduces forward, one backward, per layer


def test_one_rank_identity_reduce_is_plain_batchnorm():
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal((4, 3, 5, 5))
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    y, cache = sync_batchnorm2d_forward(x, gamma, beta, None, None, reduce=lambda v: v)
    y0, cache0 = batchnorm2d_forward(x, gamma, beta, None, None, training=True)
    close(y, y0)
    for g, e in zip(sync_batchnorm2d_backward(dy, cache), batchnorm2d_backward(dy, cache0)):
        close(g, e)


@pytest.mark.parametrize("parts", [[2, 1], [1, 0, 2]])
def test_gradcheck_through_the_shards(parts):
    """Finite differences of <dy, y(x, gamma, beta)> where y is computed by the ranks together."""
    rng = np.random.default_rng(sum(parts) * 7 + len(parts))
    N, C = sum(parts), 2
    x = rng.standard_normal((N, C, 2, 2)) * 2 + 1
    gamma, beta = rng.uniform(0.5, 2, C), rng.standard_normal(C)
    dy = rng.standard_normal(x.shape)

    def fn(x, gamma, beta):
        return sharded(x, gamma, beta, np.zeros_like(x), parts)[0]

    def backward(dy):
        _, dx, dgamma, dbeta, *_ = sharded(x, gamma, beta, dy, parts)
        return dx, dgamma, dbeta

    errors = gradcheck(fn, backward, [x, gamma, beta], dy=dy, names=["x", "gamma", "beta"])
    assert max(errors.values()) < 1e-7, errors


def test_float32_shards_and_errors():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    gamma, beta = np.ones(2, np.float32), np.zeros(2, np.float32)
    y, _ = sync_batchnorm2d_forward(x, gamma, beta, None, None, reduce=lambda v: v)
    assert y.dtype == np.float32
    with pytest.raises(ValueError, match="global batch has 1 value"):
        sync_batchnorm2d_forward(x[:1, :, :1, :1], gamma, beta, None, None, reduce=lambda v: v)
    with pytest.raises(ValueError, match="reduce returned shape"):
        sync_batchnorm2d_forward(x, gamma, beta, None, None, reduce=lambda v: v[:1])
    with pytest.raises(ValueError, match="gamma"):
        sync_batchnorm2d_forward(x, gamma[:1], beta, None, None, reduce=lambda v: v)
