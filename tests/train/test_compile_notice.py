"""The compile notice: one line at the first Numba compilation in its block, none on cache hits."""
import io

import numba
import numpy as np

from sescratch.train.compile_notice import NOTICE, compile_notice


def _fresh_kernel():
    """A kernel no cache holds: a new dispatcher, compiled at its first call per signature."""
    @numba.njit
    def twice(a):
        return a * 2
    return twice


def test_first_compilation_prints_the_notice_once_and_counts_every_one():
    kernel, stream = _fresh_kernel(), io.StringIO()
    with compile_notice(stream) as compiling:
        assert kernel(np.float32(1.5)) == 3.0
        assert kernel(np.arange(3)).tolist() == [0, 2, 4]  # a second signature: compiled again
    assert stream.getvalue() == NOTICE + "\n"
    assert compiling.compiled >= 2  # Numba may compile helpers of its own (array * 2) as well
    assert compiling.seconds > 0


def test_compiled_kernels_print_nothing():
    kernel, stream = _fresh_kernel(), io.StringIO()
    kernel(1.0)
    with compile_notice(stream) as compiling:
        assert kernel(2.0) == 4.0
    assert stream.getvalue() == ""
    assert compiling.compiled == 0 and compiling.seconds == 0


def test_the_listener_leaves_with_its_block():
    stream = io.StringIO()
    with compile_notice(stream) as compiling:
        pass
    _fresh_kernel()(1)
    assert stream.getvalue() == "" and compiling.compiled == 0
