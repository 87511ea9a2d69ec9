"""The conv2d kernels equal the NumPy reference code of sescratch.ops.conv.

Numba (and CuPy, which skips without a GPU) against ``backend.use("numpy")`` on hypothesis-drawn
shapes: float64 to 1e-10 and float32 to 1e-4, normwise relative. The Numba strategies are
drawn: Winograd (3x3, stride 1, one group; F(4x4, 3x3) or F(2x2, 3x3) by the output size),
im2col + GEMM and, among its draws, the direct 3x3 kernel (3x3, stride 1, one group, fewer than
MIN_WINOGRAD_CHANNELS input channels); the im2col / col2im kernels are also checked alone
against the reference's slicing versions.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sescratch import backend
from sescratch.ops import conv as conv_op
from sescratch.ops.window import conv_output_size
from tests.helpers import DTYPES, KERNEL_FAMILIES as FAMILIES, KERNEL_TOL as TOL, family_modules, to_numpy
from tests.helpers import relative_error as _rel


@st.composite
def problems(draw, winograd):
    groups = 1 if winograd else draw(st.integers(1, 3))
    # Winograd takes 3x3, stride 1, one group and at least MIN_WINOGRAD_CHANNELS input channels
    C = draw(st.integers(6, 9)) if winograd else groups * draw(st.integers(1, 4))
    K = groups * draw(st.integers(1, 4))
    KH, KW = (3, 3) if winograd else (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = (1, 1) if winograd else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    H = draw(st.integers(max(1, KH - 2 * padding[0]), 11))
    W = draw(st.integers(max(1, KW - 2 * padding[1]), 11))
    return (draw(st.integers(1, 3)), C, H, W), (K, C // groups, KH, KW), stride, padding, groups


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("winograd", [True, False], ids=["winograd", "im2col"])
@given(data=st.data())
def test_kernels_equal_numpy_reference(family, dtype, winograd, data):
    x_shape, w_shape, stride, padding, groups = data.draw(problems(winograd))
    bias = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    with backend.use("numpy"):
        kwargs = {"stride": stride, "padding": padding, "groups": groups}
        y_ref, cache = conv_op.conv2d_forward(x, w, b, **kwargs)
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        grads_ref = conv_op.conv2d_backward(dy, cache)

    kernels, xp = family_modules(family)
    x_, w_, dy_ = xp.asarray(x), xp.asarray(w), xp.asarray(dy)
    b_ = None if b is None else xp.asarray(b)
    y = kernels["conv2d_forward"](x_, w_, b_, stride, padding, groups)
    grads = kernels["conv2d_backward"](dy_, x_, w_, stride, padding, groups, bias)
    assert to_numpy(y).dtype == dtype and _rel(y, y_ref) <= TOL[dtype]
    for name, g, g_ref in zip(("dx", "dw", "db"), grads, grads_ref):
        if g_ref is None:
            assert g is None
            continue
        assert to_numpy(g).dtype == dtype, name
        assert _rel(g, g_ref) <= TOL[dtype], name


@given(data=st.data())
def test_numba_im2col_and_col2im_equal_the_slicing_versions(data):
    from sescratch.kernels.numba import conv as nb_conv  # here: the CuPy tests need no Numba
    x_shape, w_shape, stride, padding, _ = data.draw(problems(winograd=False))
    (N, C, H, W), (KH, KW) = x_shape, w_shape[2:]
    x = np.random.default_rng(0).standard_normal(x_shape)
    OH, OW = conv_output_size(H, KH, stride[0], padding[0]), conv_output_size(W, KW, stride[1], padding[1])
    reference = conv_op._im2col(x, KH, KW, stride, padding, OH, OW)  # C,KH,KW,N,OH,OW
    cols = np.full((C * KH * KW, N * OH * OW), np.nan)
    nb_conv._im2col(x, 0, KH, KW, *stride, *padding, OH, OW, cols)
    np.testing.assert_array_equal(cols, reference.reshape(cols.shape))

    dcols = np.random.default_rng(1).standard_normal(cols.shape)
    dx = np.full(x_shape, np.nan)
    nb_conv._col2im(dcols, 0, KH, KW, *stride, *padding, OH, OW, dx)
    expected = conv_op._col2im(dcols.reshape(reference.shape), x_shape, stride, padding)
    np.testing.assert_allclose(dx, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_chunks_are_shared_evenly_by_the_threads(monkeypatch, threads):
    """A chunk count the threads share evenly where the batch allows, no chunk over budget."""
    from sescratch.kernels.numba import _scratch

    monkeypatch.setattr(_scratch.numba, "get_num_threads", lambda: threads)
    for N, per_image, budget in [(64, 50176, 524287), (128, 65536, 524287), (5, 1, 2), (3, 1, 1), (7, 1, 100)]:
        chunks = _scratch.image_chunks(N, per_image, budget)
        step = max(1, min(N, budget // per_image))
        assert chunks[0][0] == 0 and chunks[-1][1] == N
        assert all(a < b and b == c for (a, b), (c, _) in zip(chunks, chunks[1:] + [(N, N)]))
        assert max(b - a for a, b in chunks) <= step
        assert len(chunks) == 1 or len(chunks) % threads == 0 or len(chunks) == N
    monkeypatch.setattr(_scratch.numba, "get_num_threads", lambda: 2)
    assert len(_scratch.image_chunks(64, 50176, 524287)) == 8  # 7 chunks of 10 images would idle a thread


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 2], ids=["winograd", "im2col"])
def test_chunks_cover_the_batch(monkeypatch, dtype, stride):
    """A batch of 5 cut into 3 chunks of at most 2 images (sizes 1, 2, 2), and im2col's products
    cut into blocks of columns, give the reference result."""
    from sescratch.kernels.numba import _scratch, winograd
    from sescratch.kernels.numba import conv as nb_conv

    rng = np.random.default_rng(4)
    monkeypatch.setattr(_scratch.numba, "get_num_threads", lambda: 1)  # chunks as budgeted, unbalanced
    C = nb_conv.MIN_WINOGRAD_CHANNELS if stride == 1 else 3  # stride 1: enough channels for Winograd
    x = rng.standard_normal((5, C, 7, 6)).astype(dtype)
    w = rng.standard_normal((4, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    if stride == 1:  # OH = 7, OW = 4 with padding (1, 0): 2 x 1 Winograd tiles of 4x4
        assert winograd.tiling(7, 4) is winograd.winograd_f4
        per_image = (2 * 1) * C * 4  # tiles * C * K of one image's products
        monkeypatch.setattr(_scratch, "GEMM_SIZE", 2 * per_image)
        monkeypatch.setattr(winograd, "MIN_TILE_ROWS", 1)  # no floor of tiles per chunk
        assert winograd._chunks(5, 2, 1, C, 4) == [(0, 1), (1, 3), (3, 5)]
    else:  # OH = 4, OW = 2: columns of 3*3*3 rows
        per_image = 3 * 3 * 3 * 4 * 2 * x.itemsize
        monkeypatch.setattr(_scratch, "CHUNK_BYTES", 2 * per_image)
        monkeypatch.setattr(nb_conv, "MIN_CHUNK_PIXELS", 1)  # no floor of pixels per chunk
        assert nb_conv._chunks(x, w, 4, 2) == [(0, 1), (1, 3), (3, 5)]
        monkeypatch.setattr(_scratch, "GEMM_SIZE", 3 * 4 * 27)  # products of 3 columns at a time
        assert _scratch.column_blocks(16, 4, 27) == [(0, 16)]  # < MIN_BLOCK_COLUMNS: not cut
        monkeypatch.setattr(_scratch, "MIN_BLOCK_COLUMNS", 1)
        assert _scratch.column_blocks(16, 4, 27) == [(0, 3), (3, 6), (6, 9), (9, 12), (12, 15), (15, 16)]
    with backend.use("numpy"):
        y_ref, cache = conv_op.conv2d_forward(x, w, b, stride=stride, padding=(1, 0))
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        grads_ref = conv_op.conv2d_backward(dy, cache)
    y = nb_conv.conv2d_forward(x, w, b, (stride, stride), (1, 0), 1)
    grads = nb_conv.conv2d_backward(dy, x, w, (stride, stride), (1, 0), 1, True)
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        assert _rel(got, want) <= TOL[dtype]


def test_blas_buffers_are_paged_in_once_per_thread_count(monkeypatch):
    """page_in_blas_buffers runs one product on BLAS's own threads, then one on each of
    ``workers`` threads at once with BLAS on the calling threads (so that each holds a buffer of
    its own), once per process and thread count; map_chunks calls it with its thread count."""
    import threading
    import time

    import numba

    from sescratch.kernels.numba import _scratch

    blas_counts = lambda: [get() for get, _ in _scratch._openblas] if _scratch.blas_controllable() else []  # noqa: E731
    calls, running, lock = [], [0, 0], threading.Lock()  # (thread, BLAS counts); [now, most at once]

    def product():
        with lock:
            calls.append((threading.get_ident(), blas_counts()))
            running[0] += 1
            running[1] = max(running)
        time.sleep(0.05)  # long enough for the other products to start meanwhile
        with lock:
            running[0] -= 1

    monkeypatch.setattr(_scratch, "_page_in_product", product)
    monkeypatch.setattr(_scratch, "_paged_in_threads", 0)
    before = blas_counts()
    _scratch.page_in_blas_buffers(3)
    assert len(calls) == 4 and calls[0][1] == before  # BLAS's own threads first, alone
    assert len({ident for ident, _ in calls[1:]}) == 3 and running[1] == 3  # then three threads at once
    assert all(counts == [1] * len(before) for _, counts in calls[1:]) and blas_counts() == before
    for workers in (1, 2, 3):
        _scratch.page_in_blas_buffers(workers)
    assert len(calls) == 4  # nothing more for as many threads or fewer
    monkeypatch.setattr(_scratch, "_paged_in_threads", 0)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        workers = numba.get_num_threads()
        assert _scratch.map_chunks(lambda n0, n1: n1 - n0, [(0, 1), (1, 3)]) == [1, 2]
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert len(calls) == 5 + workers and _scratch._paged_in_threads == workers
