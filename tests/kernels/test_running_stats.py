"""batchnorm2d_running_update: the kernels equal the NumPy reference bit for bit.

The running averages are updated in place by one kernel call (one launch on a GPU instead of
about ten); it must round exactly as the reference's NumPy expressions do, for float32 and
float64 buffers, and leave a buffer that is None alone. The public op's running statistics are
checked against PyTorch in ``tests/ops/test_batchnorm.py``.
"""
import numpy as np
import pytest

from sescratch import ops
from tests.helpers import KERNEL_FAMILIES, family_modules, to_numpy


@pytest.mark.parametrize("family", KERNEL_FAMILIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", ["both", "mean", "var"])
def test_running_update_equals_the_reference_bit_for_bit(family, dtype, which):
    rng = np.random.default_rng(11)
    C, M, momentum = 37, 2 * 7 * 7, 0.1
    mean, var = rng.standard_normal(C) * 3, rng.random(C) * 2 + 0.1  # float64, as the forward gives
    start_mean, start_var = rng.standard_normal(C).astype(dtype), (rng.random(C) + 0.5).astype(dtype)
    kernels, xp = family_modules(family)
    expected = [start_mean.copy() if which != "var" else None, start_var.copy() if which != "mean" else None]
    got = [None if e is None else xp.asarray(e) for e in expected]
    for _ in range(3):  # a few steps, so that the roundings compound
        ops.batchnorm2d_running_update_reference(*expected, mean, var, momentum, M)
        kernels["batchnorm2d_running_update"](*got, xp.asarray(mean), xp.asarray(var), momentum, M)
    for name, g, e in zip(("running_mean", "running_var"), got, expected):
        if e is None:
            assert g is None
            continue
        assert to_numpy(g).dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(to_numpy(g), e, err_msg=name)
