"""Every strategy of the Numba conv2d kernels equals the NumPy reference, each forced in turn.

``tests/kernels/test_conv_kernels.py`` draws shapes at random; the strategies below are rare in
its draws or depend on the machine, so each one is checked here on purpose: the 1x1 stride-1
convolution that multiplies the images in place, channels-last im2col (one group, any kernel,
stride and padding), and the grouped / no-BLAS-control path that cuts products into blocks.
"""
import numpy as np
import pytest

pytest.importorskip("numba")

from sescratch import backend  # noqa: E402
from sescratch.kernels.numba import _scratch, conv as nb_conv  # noqa: E402
from sescratch.ops import conv as conv_op  # noqa: E402
from tests.helpers import DTYPES, KERNEL_TOL as TOL  # noqa: E402
from tests.helpers import relative_error as _rel  # noqa: E402

GEOMETRIES = [  # (N, C, H, W), (K, KH, KW), stride, padding
    ((3, 5, 6, 7), (4, 1, 1), (1, 1), (0, 0)),  # pointwise: the image is its own im2col
    ((2, 3, 8, 8), (6, 1, 1), (2, 2), (0, 0)),  # the 1x1 stride-2 shortcut of a CIFAR ResNet
    ((3, 4, 9, 8), (5, 3, 3), (2, 2), (1, 1)),  # the stride-2 3x3 conv of a CIFAR ResNet
    ((2, 3, 11, 10), (4, 7, 7), (2, 2), (3, 3)),  # an ImageNet stem
    ((2, 2, 5, 6), (3, 2, 4), (3, 1), (0, 2)),  # uneven kernel, stride and padding
    ((2, 3, 7, 7), (2, 3, 3), (1, 1), (0, 0)),  # 3x3 stride 1 without padding (im2col forced)
]


def _reference(x, w, b, stride, padding, dy):
    with backend.use("numpy"):
        y, cache = conv_op.conv2d_forward(x, w, b, stride=stride, padding=padding)
        return y, conv_op.conv2d_backward(dy, cache)


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
        y = nb_conv._forward_one_group(x, w, b, stride, padding, OH, OW)
        grads = nb_conv._backward_one_group(dy, x, w, stride, padding, bias, OH, OW)
    else:  # what runs where BLAS threads can't be controlled (and for every groups > 1)
        monkeypatch.setattr(nb_conv, "blas_controllable", lambda: False)
        monkeypatch.setattr(_scratch, "GEMM_SIZE", 64)  # products cut into many blocks
        monkeypatch.setattr(_scratch, "MIN_BLOCK_COLUMNS", 1)
        y = nb_conv.conv2d_forward(x, w, b, stride, padding, 1)
        grads = nb_conv.conv2d_backward(dy, x, w, stride, padding, 1, bias)
    assert y.dtype == dtype and _rel(y, y_ref) <= TOL[dtype]
    for name, g, g_ref in zip(("dx", "dw", "db"), grads, grads_ref):
        if g_ref is None:
            assert g is None, name
            continue
        assert g.dtype == dtype and g.shape == g_ref.shape, name
        assert _rel(g, g_ref) <= TOL[dtype], name


def test_blas_threads_are_restored():
    """map_chunks sets OpenBLAS to one thread while it runs and puts the count back after."""
    if not _scratch.blas_controllable():
        pytest.skip("no OpenBLAS found in this process")
    before = [get() for get, _ in _scratch._openblas]
    seen = _scratch.map_chunks(lambda n0, n1: [get() for get, _ in _scratch._openblas], [(0, 1), (1, 2)])
    assert all(counts == [1] * len(before) for counts in seen)
    assert [get() for get, _ in _scratch._openblas] == before
