"""Every strategy of the Numba conv2d kernels equals the NumPy reference, each forced in turn.

``tests/kernels/test_conv_kernels.py`` draws shapes at random; the strategies below are rare in
its draws or depend on the machine, so each one is checked here on purpose: Winograd F(2x2, 3x3)
and F(4x4, 3x3) whatever the channel count (few channels go to the direct kernel otherwise), the
direct 3x3 kernel whatever the channel count, the 1x1 convolution that multiplies the
(subsampled) images in place, channels-last im2col (one group, any kernel, stride and padding),
1x1 convolutions in groups (each group's product on the images in place), and the grouped /
no-BLAS-control path that cuts products into blocks.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st


from sescratch import backend  # noqa: E402
from sescratch.kernels.numba import _scratch, conv as nb_conv, direct3x3, im2row, winograd  # noqa: E402
from sescratch.kernels.numba import grouped_pointwise  # noqa: E402
from sescratch.ops import conv as conv_op  # noqa: E402
from tests.helpers import DTYPES, KERNEL_TOL as TOL  # noqa: E402
from tests.helpers import relative_error as _rel  # noqa: E402
from tests.kernels.test_conv_kernels import problems  # noqa: E402

GEOMETRIES = [  # (N, C, H, W), (K, KH, KW), stride, padding
    ((3, 5, 6, 7), (4, 1, 1), (1, 1), (0, 0)),  # pointwise: the image is its own im2col
    ((2, 3, 8, 8), (6, 1, 1), (2, 2), (0, 0)),  # the 1x1 stride-2 shortcut of a CIFAR ResNet
    ((2, 3, 7, 9), (4, 1, 1), (3, 2), (0, 0)),  # 1x1, uneven strides and sizes: subsampled, scattered back
    ((3, 4, 9, 8), (5, 3, 3), (2, 2), (1, 1)),  # the stride-2 3x3 conv of a CIFAR ResNet
    ((2, 3, 11, 10), (4, 7, 7), (2, 2), (3, 3)),  # an ImageNet stem
    ((2, 2, 5, 6), (3, 2, 4), (3, 1), (0, 2)),  # uneven kernel, stride and padding
    ((2, 3, 7, 7), (2, 3, 3), (1, 1), (0, 0)),  # 3x3 stride 1 without padding (im2col forced)
    ((3, 32, 8, 7), (5, 3, 3), (2, 2), (1, 1)),  # R = 288, small output: products over whole chunks
    ((3, 24, 2, 3), (20, 1, 1), (1, 1), (0, 0)),  # 1x1, many channels, few pixels: dw over all pixels at once
    ((2, 16, 4, 4), (24, 1, 1), (2, 2), (0, 0)),  # the same, strided
]


def test_small_outputs_with_long_rows_multiply_whole_chunks():
    """The last geometry above takes the whole-chunk products, forward and backward; the others not."""
    assert im2row._chunk_products(4 * 4, 288) and im2row._chunk_products_backward(4 * 4, 288)
    assert not im2row._chunk_products(4 * 4, 36) and not im2row._chunk_products(32 * 32, 288)


def _assert_matches(y, grads, y_ref, grads_ref, dtype):
    """y and (dx, dw, db) of a kernel path equal the reference's (db None where it is)."""
    assert y.dtype == dtype and _rel(y, y_ref) <= TOL[dtype]
    for name, g, g_ref in zip(("dx", "dw", "db"), grads, grads_ref):
        if g_ref is None:
            assert g is None, name
            continue
        assert g.dtype == dtype and g.shape == g_ref.shape, name
        assert _rel(g, g_ref) <= TOL[dtype], name


def _reference(x, w, b, stride, padding, dy):
    with backend.use("numpy"):
        y, cache = conv_op.conv2d_forward(x, w, b, stride=stride, padding=padding)
        return y, conv_op.conv2d_backward(dy, cache)


@pytest.mark.parametrize("tiles", winograd.TILINGS.values(), ids=lambda t: t.__name__.rsplit("_", 1)[-1])
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_winograd_equals_the_reference_for_any_channel_count(tiles, dtype, data):
    x_shape, w_shape, _, padding, _ = data.draw(problems(winograd=True))
    x_shape = (x_shape[0], data.draw(st.integers(1, 9)), *x_shape[2:])
    w_shape = (w_shape[0], x_shape[1], 3, 3)
    bias = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    OH, OW = nb_conv._geometry(x, w, (1, 1), padding)
    dy = rng.standard_normal((x_shape[0], w_shape[0], OH, OW)).astype(dtype)
    y_ref, grads_ref = _reference(x, w, b, (1, 1), padding, dy)
    y = winograd.winograd_forward(x, w, b, padding, tiles)
    grads = winograd.winograd_backward(dy, x, w, padding, bias, tiles)
    assert y.dtype == dtype and _rel(y, y_ref) <= TOL[dtype]
    for g, g_ref in zip(grads, grads_ref):
        assert (g is None) == (g_ref is None)
        if g is not None:
            assert g.dtype == dtype and _rel(g, g_ref) <= TOL[dtype]


@pytest.mark.parametrize("tiles", winograd.TILINGS.values(), ids=lambda t: t.__name__.rsplit("_", 1)[-1])
@pytest.mark.parametrize("bands", [1, 2, 3, 4, 5])
def test_winograd_dx_for_every_band_count(tiles, bands):
    """The input adjoint hands each band's last rows to the next band through two carry buffers
    taken in turn, and the last band's into the final rows: odd and even band counts, one band."""
    H = bands * tiles.STEP - 1  # padding 1: OH = H, so TH = bands (the last tile cut by one row)
    rng = np.random.default_rng(bands)
    x, w = rng.standard_normal((2, 7, H, 6)), rng.standard_normal((3, 7, 3, 3))
    dy = rng.standard_normal((2, 3, H, 6))
    _, (dx_ref, dw_ref, _) = _reference(x, w, None, (1, 1), (1, 1), dy)
    dx, dw, _ = winograd.winograd_backward(dy, x, w, (1, 1), False, tiles)
    assert _rel(dx, dx_ref) <= TOL[np.float64] and _rel(dw, dw_ref) <= TOL[np.float64]


def test_winograd_takes_4x4_tiles_unless_they_waste_outputs():
    """F(4x4, 3x3) for the CIFAR and ImageNet sizes and where its tiles waste up to 25 % more
    than 2x2 tiles (18x18 to 30x30); F(2x2, 3x3) where they would waste more (14x14: 16x16
    computed, 31 % more)."""
    f2, f4 = winograd.winograd_f2, winograd.winograd_f4
    assert [winograd.tiling(s, s) for s in (32, 16, 8, 28, 7, 56, 18, 22, 26, 30)] == [f4] * 10
    assert [winograd.tiling(s, s) for s in (14, 10, 6, 2)] == [f2] * 4
    assert winograd.tiling(16, 14) is f4 and winograd.tiling(7, 4) is f4 and winograd.tiling(14, 10) is f2


def test_winograd_takes_4x4_tiles_at_14x14_for_layers_that_make_up_for_the_waste(monkeypatch):
    """At 14x14 (31 % more outputs computed) F(4x4) where C and K are at least F4_MIN_CHANNELS
    and its transformed weights fit in L2 (ResNet-20's 32- and 64-channel stages on 28x28
    images); F(2x2) for thinner layers, wider weights, and any waste beyond 35 % (14x10: 37 %)."""
    f2, f4 = winograd.winograd_f2, winograd.winograd_f4
    monkeypatch.setattr(winograd._scratch, "l2_or_assumed", lambda: 1 << 20)  # 1 MiB
    assert winograd.tiling(14, 14, 32, 32) is f4 and winograd.tiling(14, 14, 64, 64, 4) is f4
    assert winograd.tiling(14, 14, 16, 16) is f2 and winograd.tiling(14, 14, 16, 64) is f2  # thin
    assert winograd.tiling(14, 14, 128, 128) is f2  # 36 * 128 * 128 * 4 bytes: 2.4 MB beyond L2
    assert winograd.tiling(14, 14, 48, 48, 8) is f4 and winograd.tiling(14, 14, 64, 64, 8) is f2  # float64: 0.7, 1.2 MB
    assert winograd.tiling(14, 10, 64, 64) is f2 and winograd.tiling(10, 10, 64, 64) is f2


def test_few_input_channels_leave_winograd_for_the_direct_kernel():
    """3x3 stride 1 one group: Winograd from MIN_WINOGRAD_CHANNELS input channels on, the direct
    kernel below, whether or not BLAS's threads can be controlled (it calls no BLAS); neither
    for other strides or groups."""
    w = np.zeros((8, nb_conv.MIN_WINOGRAD_CHANNELS, 3, 3))
    assert nb_conv._winograd_applies(w, (1, 1), 1) and not nb_conv._direct_applies(w, (1, 1), 1)
    for C in (1, 3, nb_conv.MIN_WINOGRAD_CHANNELS - 1):
        assert nb_conv._direct_applies(w[:, :C], (1, 1), 1) and not nb_conv._winograd_applies(w[:, :C], (1, 1), 1)
    for stride, groups in (((2, 2), 1), ((1, 1), 2), ((1, 2), 1)):
        assert not nb_conv._winograd_applies(w, stride, groups) and not nb_conv._direct_applies(w[:, :3], stride, groups)
    assert not nb_conv._direct_applies(np.zeros((8, 3, 5, 5)), (1, 1), 1)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_direct_kernel_equals_the_reference_for_any_channel_count(dtype, data):
    """The flat-grid 3x3 kernel against the NumPy reference: any C and K (K % 4 != 0 takes the
    one-channel passes), padding 0 to 2 per side, images down to the filter's size."""
    N, C, K = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    padding = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
    H = data.draw(st.integers(max(1, 3 - 2 * padding[0]), 12))
    W = data.draw(st.integers(max(1, 3 - 2 * padding[1]), 12))
    bias = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x, w = rng.standard_normal((N, C, H, W)).astype(dtype), rng.standard_normal((K, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if bias else None
    OH, OW = nb_conv._geometry(x, w, (1, 1), padding)
    dy = rng.standard_normal((N, K, OH, OW)).astype(dtype)
    y_ref, grads_ref = _reference(x, w, b, (1, 1), padding, dy)
    y = direct3x3.direct_forward(x, w, b, padding)
    grads = direct3x3.direct_backward(dy, x, w, padding, bias)
    assert y.dtype == dtype and _rel(y, y_ref) <= TOL[dtype]
    for g, g_ref in zip(grads, grads_ref):
        assert (g is None) == (g_ref is None)
        if g is not None:
            assert g.dtype == dtype and g.shape == g_ref.shape and _rel(g, g_ref) <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[1][1]}x{g[1][2]}s{g[2][0]}p{g[3][0]}")
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("path", ["one_group", "blocks"])
def test_each_path_equals_the_reference(monkeypatch, dtype, geometry, bias, path):
    (N, C, H, W), (K, KH, KW), stride, padding = geometry
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, KH, KW)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if bias else None
    OH, OW = nb_conv._geometry(x, w, stride, padding)
    dy = rng.standard_normal((N, K, OH, OW)).astype(dtype)
    y_ref, grads_ref = _reference(x, w, b, stride, padding, dy)
    if path == "one_group":
        if not _scratch.blas_controllable():
            pytest.skip("no OpenBLAS to keep on the calling thread: the blocks path runs instead")
        y = im2row.im2row_forward(x, w, b, stride, padding, OH, OW, nb_conv._chunks(x, w, OH, OW))
        grads = im2row.im2row_backward(dy, x, w, stride, padding, bias, OH, OW, nb_conv._chunks(x, w, OH, OW))
    else:  # what runs where BLAS threads can't be controlled (and for every groups > 1)
        monkeypatch.setattr(nb_conv, "blas_controllable", lambda: False)
        monkeypatch.setattr(_scratch, "GEMM_SIZE", 64)  # products cut into many blocks
        monkeypatch.setattr(_scratch, "MIN_BLOCK_COLUMNS", 1)
        y = nb_conv.conv2d_forward(x, w, b, stride, padding, 1)
        grads = nb_conv.conv2d_backward(dy, x, w, stride, padding, 1, bias)
    _assert_matches(y, grads, y_ref, grads_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (3, 2)], ids=lambda s: f"s{s[0]}{s[1]}")
@pytest.mark.parametrize("groups", [2, 3])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_grouped_pointwise_convs_multiply_the_images_in_place(monkeypatch, dtype, stride, groups, bias):
    """ShuffleNet's 1x1 group convs: the kernels' dispatch takes grouped_pointwise (where OpenBLAS
    can be kept on the calling thread), and its results equal the reference's."""
    if not _scratch.blas_controllable():
        pytest.skip("no OpenBLAS to keep on the calling thread: the blocks path runs instead")
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((5, 4 * groups, 7, 6)).astype(dtype)
    w = rng.standard_normal((3 * groups, 4, 1, 1)).astype(dtype)
    b = rng.standard_normal(3 * groups).astype(dtype) if bias else None
    OH, OW = nb_conv._geometry(x, w, stride, (0, 0))
    dy = rng.standard_normal((5, 3 * groups, OH, OW)).astype(dtype)
    with backend.use("numpy"):
        y_ref, cache = conv_op.conv2d_forward(x, w, b, stride=stride, groups=groups)
        grads_ref = conv_op.conv2d_backward(dy, cache)
    taken = []
    for name in ("grouped_pointwise_forward", "grouped_pointwise_backward"):
        original = getattr(grouped_pointwise, name)
        monkeypatch.setattr(grouped_pointwise, name, lambda *a, _f=original, _n=name: taken.append(_n) or _f(*a))
    monkeypatch.setattr(_scratch, "CHUNK_BYTES", 64)  # several chunks: dw is a sum of shares
    monkeypatch.setattr(nb_conv, "MIN_CHUNK_PIXELS", 1)
    assert len(nb_conv._chunks(x, w, OH, OW)) > 1
    y = nb_conv.conv2d_forward(x, w, b, stride, (0, 0), groups)
    grads = nb_conv.conv2d_backward(dy, x, w, stride, (0, 0), groups, bias)
    assert taken == ["grouped_pointwise_forward", "grouped_pointwise_backward"]
    _assert_matches(y, grads, y_ref, grads_ref, dtype)
    assert not grouped_pointwise.applies(w, stride, (1, 1), groups)  # padded
    assert not grouped_pointwise.applies(w, stride, (0, 0), 1)  # one group: im2row's


def test_blas_threads_are_restored():
    """map_chunks sets OpenBLAS to one thread while its threads run chunks and puts the count
    back after; a single chunk leaves BLAS's threads alone."""
    import numba

    if not _scratch.blas_controllable():
        pytest.skip("no OpenBLAS found in this process")
    counts = lambda n0, n1: [get() for get, _ in _scratch._openblas]  # noqa: E731
    before = counts(0, 0)
    assert _scratch.map_chunks(counts, [(0, 1)]) == [before]
    seen = _scratch.map_chunks(counts, [(0, 1), (1, 2), (2, 3)])
    assert all(c == [1] * len(before) for c in seen)
    assert counts(0, 0) == before
    numba.set_num_threads(1)  # this thread's count: the chunks run here, one after the other
    try:
        assert _scratch.map_chunks(counts, [(0, 1), (1, 2)]) == [[1] * len(before)] * 2
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert counts(0, 0) == before


@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_kernel_sums_long_grids_in_blocks(dtype):
    """dw's sums over an image's grid are made SUM_BLOCK values at a time: a 48x48 image (a grid
    of 48 * 50 values) takes two blocks, the float32 result as close to the reference as a short one."""
    assert 48 * 50 > direct3x3.SUM_BLOCK
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((2, 2, 48, 48)).astype(dtype), rng.standard_normal((5, 2, 3, 3)).astype(dtype)
    dy = rng.standard_normal((2, 5, 48, 48)).astype(dtype)
    y_ref, grads_ref = _reference(x, w, None, (1, 1), (1, 1), dy)
    assert _rel(direct3x3.direct_forward(x, w, None, (1, 1)), y_ref) <= TOL[dtype]
    for g, g_ref in zip(direct3x3.direct_backward(dy, x, w, (1, 1), False)[:2], grads_ref):
        assert _rel(g, g_ref) <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["winograd_f2", "winograd_f4", "direct", "one_group"])
def test_chunks_of_each_path_cover_the_batch(monkeypatch, dtype, path):
    """A batch of 5 cut into 3 chunks of 1, 2 and 2 images gives the reference result."""
    monkeypatch.setattr(_scratch.numba, "get_num_threads", lambda: 1)  # the budget's 3 chunks, not 4
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 3, 7, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    padding = (1, 0)
    OH, OW = nb_conv._geometry(x, w, (1, 1), padding)  # 7 x 4: 4 x 2 tiles of 2x2, 2 x 1 of 4x4
    dy = rng.standard_normal((5, 4, OH, OW)).astype(dtype)
    y_ref, grads_ref = _reference(x, w, b, (1, 1), padding, dy)
    if path.startswith("winograd"):
        tiles = getattr(winograd, path)
        TH, TW = -(-OH // tiles.STEP), -(-OW // tiles.STEP)
        monkeypatch.setattr(_scratch, "GEMM_SIZE", 2 * (TH * TW) * 3 * 4)  # 2 images' products
        monkeypatch.setattr(winograd, "MIN_TILE_ROWS", 1)  # no floor of tiles per chunk
        assert winograd._chunks(5, TH, TW, 3, 4) == [(0, 1), (1, 3), (3, 5)]
        y = winograd.winograd_forward(x, w, b, padding, tiles)
        grads = winograd.winograd_backward(dy, x, w, padding, True, tiles)
    elif path == "direct":
        monkeypatch.setattr(direct3x3, "CHUNK_IMAGES", 2)
        assert direct3x3._chunks(5) == [(0, 1), (1, 3), (3, 5)]
        y = direct3x3.direct_forward(x, w, b, padding)
        grads = direct3x3.direct_backward(dy, x, w, padding, True)
    else:
        if not _scratch.blas_controllable():
            pytest.skip("no OpenBLAS to keep on the calling thread")
        monkeypatch.setattr(_scratch, "CHUNK_BYTES", 2 * 27 * OH * OW * x.itemsize)  # 2 images' rows
        monkeypatch.setattr(nb_conv, "MIN_CHUNK_PIXELS", 1)  # no floor of pixels per chunk
        assert nb_conv._chunks(x, w, OH, OW) == [(0, 1), (1, 3), (3, 5)]
        y = im2row.im2row_forward(x, w, b, (1, 1), padding, OH, OW, nb_conv._chunks(x, w, OH, OW))
        grads = im2row.im2row_backward(dy, x, w, (1, 1), padding, True, OH, OW, nb_conv._chunks(x, w, OH, OW))
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        assert _rel(got, want) <= TOL[dtype]


def test_winograd_chunks_keep_their_tiles_within_a_few_l2_caches(monkeypatch):
    """Where the L2 cache's size is known, a chunk's transformed tiles (V and M) take at most
    TILE_CACHE_MULTIPLE L2 caches, and never less than one image; the GEMM rule still caps them."""
    monkeypatch.setattr(_scratch.numba, "get_num_threads", lambda: 1)
    monkeypatch.setattr(_scratch, "GEMM_SIZE", 10 * 64)  # 10 images of TH * TW * C * K = 64
    monkeypatch.setattr(winograd, "TILE_CACHE_MULTIPLE", 4)
    monkeypatch.setattr(winograd, "MIN_TILE_ROWS", 1)
    monkeypatch.setattr(_scratch, "l2_cache_bytes", lambda: 1000)
    assert [n1 - n0 for n0, n1 in winograd._chunks(12, 2, 2, 4, 4, tile_bytes=1000)] == [4, 4, 4]
    assert [n1 - n0 for n0, n1 in winograd._chunks(3, 2, 2, 4, 4, tile_bytes=10**6)] == [1, 1, 1]
    assert [n1 - n0 for n0, n1 in winograd._chunks(12, 2, 2, 4, 4, tile_bytes=100)] == [6, 6]  # 10 at most, evenly
    monkeypatch.setattr(_scratch, "l2_cache_bytes", lambda: None)  # unknown: the GEMM rule alone
    assert [n1 - n0 for n0, n1 in winograd._chunks(12, 2, 2, 4, 4, tile_bytes=1000)] == [6, 6]
    tiles, TH, TW = winograd.winograd_f4, 8, 8  # 16 channels at 32x32, float32: 36 * 64 * 32 * 4 bytes
    assert winograd._tile_bytes(tiles, TH, TW, 16, 16, np.float32) == 36 * 64 * 32 * 4


def test_winograd_chunks_hold_at_least_min_tile_rows_tiles(monkeypatch):
    """Few tiles per image and many channels (512 at 4x4: 1 tile) would make every product of a
    one-image chunk a matrix-vector product: chunks take enough images for MIN_TILE_ROWS tiles,
    above the GEMM and cache rules."""
    monkeypatch.setattr(_scratch.numba, "get_num_threads", lambda: 1)
    monkeypatch.setattr(winograd, "MIN_TILE_ROWS", 64)
    assert [n1 - n0 for n0, n1 in winograd._chunks(128, 1, 1, 512, 512, tile_bytes=10**8)] == [64, 64]
    assert [n1 - n0 for n0, n1 in winograd._chunks(128, 2, 2, 256, 256)] == [16] * 8
    assert len(winograd._chunks(128, 8, 8, 16, 16)) > 2  # 64 tiles an image: the floor is 1 image


def test_l2_cache_size_is_read_from_sysfs(tmp_path):
    """cpu0's ``index*/`` entries: the level-2 one's ``size`` (``512K``, ``2M``); None without one."""
    for index, level, size in (("index0", "1", "32K"), ("index2", "2", "512K"), ("index3", "3", "16384K")):
        (tmp_path / "a" / index).mkdir(parents=True)
        (tmp_path / "a" / index / "level").write_text(level + "\n")
        (tmp_path / "a" / index / "size").write_text(size + "\n")
    assert _scratch.l2_cache_bytes(str(tmp_path / "a")) == 512 * 1024
    (tmp_path / "b" / "index1").mkdir(parents=True)
    (tmp_path / "b" / "index1" / "level").write_text("2\n")
    (tmp_path / "b" / "index1" / "size").write_text("2M\n")
    assert _scratch.l2_cache_bytes(str(tmp_path / "b")) == 2 << 20
    assert _scratch.l2_cache_bytes(str(tmp_path / "missing")) is None


G_MATRICES = {  # Winograd's filter transform G of each tiling (Lavin & Gray, 2016)
    2: np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]),
    4: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
}


@pytest.mark.parametrize("tiles", winograd.TILINGS.values(), ids=lambda t: t.__name__.rsplit("_", 1)[-1])
@pytest.mark.parametrize("K, C", [(1, 1), (5, 3), (13, 70), (64, 64)])
def test_weight_transform_is_g_w_gt_and_its_adjoint_the_transpose(tiles, K, C):
    """U[ξ, c, k] = (G w[k, c] G^T)[ξ] against the matrix formula in float64, and the adjoint by
    the dot-product test <U(w), dU> = <w, U^T(dU)> with a random dU."""
    rng = np.random.default_rng(K * 100 + C)
    G = G_MATRICES[tiles.STEP]
    w = rng.standard_normal((K, C, 3, 3))
    U = np.empty((tiles.POINTS, C, K))
    tiles.weight_tiles(w, U)
    expected = np.einsum("ia,kcab,jb->ijck", G, w, G).reshape(tiles.POINTS, C, K)
    np.testing.assert_allclose(U, expected, rtol=1e-13, atol=1e-13)
    dU = rng.standard_normal(U.shape)
    dw = np.empty_like(w)
    tiles.weight_tiles_adjoint(dU, dw)
    assert np.isclose(np.vdot(U, dU), np.vdot(w, dw), rtol=1e-12)


def test_winograd_pays_off_where_its_tiles_outweigh_the_weight_transform(monkeypatch):
    """Transformed weights within L2: Winograd whatever the batch. Beyond it: from 40 tiles a call
    with F(4x4) (T * (16*9 - 36) >= 120 * 36) and 96 with F(2x2) (T * (4*9 - 16) >= 120 * 16);
    in the backward from 84 and 200 (a cost of 250 a point)."""
    monkeypatch.setattr(_scratch, "l2_cache_bytes", lambda: 2 << 20)
    assert winograd.WEIGHT_POINT_COST == 120
    assert winograd.pays_off(1, 8, 8, 64, 64, 4)  # 36 * 64 * 64 * 4 bytes = 576 KiB: within L2
    assert not winograd.pays_off(9, 7, 7, 512, 512, 4) and winograd.pays_off(10, 7, 7, 512, 512, 4)  # 4 tiles an image
    assert not winograd.pays_off(1, 14, 14, 256, 256, 4) and winograd.pays_off(2, 14, 14, 256, 256, 4)  # F(2x2): 49
    assert winograd.pays_off(1, 28, 28, 128, 128, 4)  # 49 tiles of F(4x4), 2.25 MiB of weights
    assert winograd.pays_off(1, 8, 8, 96, 96, 4) and not winograd.pays_off(1, 8, 8, 96, 96, 8)  # 1.3 / 2.6 MB
    assert winograd.BACKWARD_WEIGHT_POINT_COST == 250  # backward: from 84 tiles (F(4x4)), 200 (F(2x2))
    assert not winograd.pays_off(20, 7, 7, 512, 512, 4, backward=True)
    assert winograd.pays_off(21, 7, 7, 512, 512, 4, backward=True)
    assert not winograd.pays_off(4, 14, 14, 256, 256, 4, backward=True)
    assert winograd.pays_off(5, 14, 14, 256, 256, 4, backward=True)
    monkeypatch.setattr(_scratch, "l2_cache_bytes", lambda: None)  # unknown: 1 MiB assumed
    assert winograd.pays_off(1, 8, 8, 64, 64, 4) and not winograd.pays_off(1, 8, 8, 128, 128, 4)


def _refuse(name):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} should not run here")
    return refuse


@pytest.mark.parametrize("dtype", DTYPES)
def test_convs_with_large_weights_and_few_outputs_leave_winograd_and_im2row(monkeypatch, dtype):
    """With the L2 cache taken as a few bytes every weight is large: a 3x3 stride-1 conv with few
    tiles goes to im2row instead of Winograd, and a forward with fewer than MIN_REORDERED_PIXELS
    output pixels to the columns (the weights as they are) instead of im2row, the backward to
    im2row; each result equals the reference."""
    if not _scratch.blas_controllable():
        pytest.skip("no OpenBLAS to keep on the calling thread: im2row does not run")
    monkeypatch.setattr(_scratch, "l2_cache_bytes", lambda: 16)
    monkeypatch.setattr(nb_conv, "winograd_forward", _refuse("winograd_forward"))
    monkeypatch.setattr(nb_conv, "winograd_backward", _refuse("winograd_backward"))
    rng = np.random.default_rng(11)
    for x_shape, K, stride in (((2, 8, 7, 7), 5, (1, 1)), ((3, 6, 9, 8), 4, (2, 2))):
        x = rng.standard_normal(x_shape).astype(dtype)
        w = rng.standard_normal((K, x_shape[1], 3, 3)).astype(dtype)
        b = rng.standard_normal(K).astype(dtype)
        OH, OW = nb_conv._geometry(x, w, stride, (1, 1))
        assert x_shape[0] * OH * OW < nb_conv.MIN_REORDERED_PIXELS
        dy = rng.standard_normal((x_shape[0], K, OH, OW)).astype(dtype)
        y_ref, grads_ref = _reference(x, w, b, stride, (1, 1), dy)
        with monkeypatch.context() as forward_only:
            forward_only.setattr(nb_conv, "im2row_forward", _refuse("im2row_forward"))
            y = nb_conv.conv2d_forward(x, w, b, stride, (1, 1), 1)
        grads = nb_conv.conv2d_backward(dy, x, w, stride, (1, 1), 1, True)
        for got, want in zip((y, *grads), (y_ref, *grads_ref)):
            assert got.dtype == dtype and _rel(got, want) <= TOL[dtype]
    big = np.zeros((2, 8, 20, 20), dtype)  # 2 * 20 * 20 = 800 output pixels: im2row forward
    assert nb_conv._rows_pay_off_forward(big, np.zeros((4, 8, 3, 3), dtype), (1, 1), (1, 1), 20, 20)
    assert nb_conv._rows_pay_off_forward(big[:1, :, :7, :7], np.zeros((4, 8, 1, 1), dtype), (1, 1), (0, 0), 7, 7)  # 1x1


def test_pointwise_dw_is_one_product_where_the_channels_outnumber_the_pixels():
    """K*C > (K + C)*S: SE-ResNet-50's 2048 <- 512 at 7x7; not the CIFAR shortcuts."""
    assert im2row._pixels_first(49, 2048, 512) and im2row._pixels_first(6, 20, 24)
    assert not im2row._pixels_first(256, 32, 16) and not im2row._pixels_first(64, 64, 32)
    assert not im2row._pixels_first(49, 64, 32)  # Fashion-MNIST's 32 -> 64 shortcut at 7x7


def test_chunks_of_small_images_with_many_channels_hold_several_images(monkeypatch):
    """512 channels at 7x7 (903 KB of columns an image, above CHUNK_BYTES): chunks of several
    images, budgeted for MIN_CHUNK_PIXELS output pixels; CIFAR's 64 at 8x8 as before."""
    monkeypatch.setattr(_scratch.numba, "get_num_threads", lambda: 2)
    x, w = np.zeros((8, 512, 7, 7), np.float32), np.zeros((512, 512, 3, 3), np.float32)
    assert nb_conv._chunks(x, w, 7, 7) == [(0, 4), (4, 8)]  # 6 images a chunk, shared evenly
    x, w = np.zeros((128, 64, 8, 8), np.float32), np.zeros((64, 64, 3, 3), np.float32)
    assert nb_conv._chunks(x, w, 8, 8) == _scratch.image_chunks(128, 64 * 9 * 64 * 4)


@pytest.mark.parametrize("tiles", winograd.TILINGS.values(), ids=lambda t: t.__name__.rsplit("_", 1)[-1])
@pytest.mark.parametrize("images", [1, 5], ids=["one_chunk", "chunks"])
def test_winograd_with_weights_beyond_l2_equals_the_reference(monkeypatch, tiles, images):
    """Transformed weights beyond L2 (taken as 16 bytes): the backward multiplies by U^T as a
    transposed view, not a copy; with one chunk its dU goes into the thread's buffer, with several
    the shares are summed in chunk order. Both equal the reference."""
    monkeypatch.setattr(_scratch, "l2_cache_bytes", lambda: 16)
    monkeypatch.setattr(winograd, "MIN_TILE_ROWS", 1)
    monkeypatch.setattr(_scratch, "GEMM_SIZE", 1)  # one image a chunk
    rng = np.random.default_rng(13)
    x = rng.standard_normal((images, 7, 9, 8))
    w = rng.standard_normal((5, 7, 3, 3))
    b = rng.standard_normal(5)
    U = winograd._weight_transform(w, tiles)
    assert not winograd._transposed_for_blas(U).flags.c_contiguous  # the view
    OH, OW = nb_conv._geometry(x, w, (1, 1), (1, 1))
    TH, TW = -(-OH // tiles.STEP), -(-OW // tiles.STEP)
    assert len(winograd._chunks(images, TH, TW, 7, 5)) == images
    dy = rng.standard_normal((images, 5, OH, OW))
    y_ref, grads_ref = _reference(x, w, b, (1, 1), (1, 1), dy)
    y = winograd.winograd_forward(x, w, b, (1, 1), tiles)
    grads = winograd.winograd_backward(dy, x, w, (1, 1), True, tiles)
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        assert _rel(got, want) <= TOL[np.float64]
