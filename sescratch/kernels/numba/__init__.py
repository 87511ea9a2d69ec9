"""Numba CPU kernels: the table ``KERNELS`` that ``sescratch.backend`` dispatches to.

Threading. A training step launches a few hundred small parallel kernels (batch norm, ReLU, the
residual sums, the SE scale), so the cost of a launch matters, and so does what the pool's idle
workers do between kernels. Measured on the 2-core Intel Xeon of 2026-12-01 (a ``prange`` over
128 values): ``tbb`` 1.4 us, OpenMP 2 us with its default long spins, 8 us with short spins, 80 us
with ``OMP_WAIT_POLICY=PASSIVE``, ``workqueue`` 130 us. Unless the user chose a layer
(``NUMBA_THREADING_LAYER``), sescratch therefore starts, at import:

1. ``tbb`` when the Intel oneTBB package is installed (``pip install "sescratch[tbb]"``; its
   PyPI wheel is under the Intel Simplified Software License, hence optional): its own runtime,
   workers idle after about a millisecond;
2. else Numba's OpenMP layer with short spins: ``GOMP_SPINCOUNT=1000``, set only while GNU
   OpenMP loads, so that its workers stop spinning after a few microseconds instead of taking a
   core from the conv kernels that follow (OpenMP's default long spins made steps up to 10x
   slower on a busy machine: ``docs/results.md``). A user's own ``GOMP_SPINCOUNT`` or
   ``OMP_WAIT_POLICY`` is kept.
   When an OpenMP runtime is already in the process (PyTorch imported first), Numba's OpenMP
   layer would bind to it, long spins included (a runtime sescratch loaded first would instead
   hand its short spins to PyTorch). sescratch then loads GNU OpenMP itself, privately
   (``RTLD_LOCAL``, the file name Numba's layer links, ``libgomp.so.1.0.0``) with the short
   spins, and starts the layer with ``RTLD_DEEPBIND`` so that it binds to that runtime: two
   OpenMP runtimes, each with its own settings and workers (:func:`_private_openmp`). Where
   that load yields no second runtime (the only GNU OpenMP is the one already loaded), OpenMP
   comes after ``workqueue``;
3. ``workqueue`` where neither loads.

NumPy's OpenBLAS has a pool of its own, whose idle workers spin for about 100 ms after each
product it splits over them (``OPENBLAS_THREAD_TIMEOUT``, 2**28 clock ticks by default), a core
the Numba kernels that follow do not get: at import, sescratch shortens that to about 25 us
(:func:`.openblas.short_worker_spins`; a user's own setting is kept).

SE-ResNet-20 training steps at batch 64 on 1x28x28 (the Fashion-MNIST recipe), same machine:
117 ms on tbb, 124 ms on OpenMP with short spins, 144 ms on workqueue, 159 ms on OpenMP sharing
PyTorch's runtime; with PyTorch imported first (2-core Xeon, 2026-12-02) 121-128 ms on the
private runtime, 138-141 ms on workqueue, PyTorch's own step unchanged (116-122 ms). The conv
kernels are not ``parallel=True``: they split the batch over their own Python threads
(``_scratch.py``), so only the main thread ever launches a parallel kernel, as the workqueue
layer requires.

Compile time. Every kernel is ``cache=True``: a first run compiles them (about 25 s for an
SE-ResNet-20 step), later runs load them (about 1 s). Two habits keep the cold compile short.
No kernel stores an array into an array slice (``U[:, c] = Uc``): Numba then compiles, once per
process, a shape-mismatch error that formats both shapes as strings, 3-4 s of string code; the
kernels copy with loops instead. No literal constant is handed to a kernel that is not inlined
(``_correlate(f, 0, ...)``): Numba compiles a copy specialised to that value. Measured on a
2-core AMD EPYC (Zen 2, 2026-12-02), cold first step at batch 16: 34.2 s and 84 compilations
before, 25.0 s and 48 after, the kernels as fast as before.
"""
import ctypes
import os
import sys

import numba

from sescratch.kernels.numba.openblas import short_worker_spins

SPIN_COUNT = "1000"  # GNU OpenMP's spin before a worker sleeps, in rounds of its wait loop
NUMBA_LIBGOMP = "libgomp.so.1.0.0"  # the name Numba's OpenMP layer (omppool) links GNU OpenMP by
DEEPBIND = getattr(os, "RTLD_DEEPBIND", 0)  # glibc's; 0 where the platform has none


def _openmp_runtimes() -> set[str]:
    """The OpenMP runtimes (GNU's or Intel's) mapped into this process, by file (Linux only)."""
    try:
        with open("/proc/self/maps") as f:
            return {line.split()[-1] for line in f if "libgomp" in line or "libiomp" in line}
    except OSError:
        return set()


def _private_openmp() -> bool:
    """Load GNU OpenMP under the name Numba's layer links, RTLD_LOCAL, with short spins (the
    caller has set GOMP_SPINCOUNT); True when it is a runtime other than those already loaded."""
    before = _openmp_runtimes()
    try:
        ctypes.CDLL(NUMBA_LIBGOMP, mode=os.RTLD_LOCAL)
    except OSError:
        return False
    return bool(_openmp_runtimes() - before)


def _start_threads() -> None:
    """Pick and start Numba's thread pool now, as the module docstring says."""
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    mine = not ({"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(os.environ))  # spins nobody else set
    if mine:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT  # read once, when a libgomp loads
    try:
        loaded = bool(_openmp_runtimes())
        private = mine and loaded and DEEPBIND != 0 and _private_openmp()
        short_spins = mine and (not loaded or private)
        order = ["tbb", "omp", "workqueue"] if short_spins or not mine else ["tbb", "workqueue", "omp"]
        numba.config.THREADING_LAYER_PRIORITY = order
        numba.config.THREADING_LAYER = "default"  # the first of `order` that loads
        flags = sys.getdlopenflags() if private else None
        if private:  # the layer's symbols bind to its own libgomp first: the private one
            sys.setdlopenflags(flags | DEEPBIND)
        try:
            from numba.np.ufunc import parallel

            parallel._launch_threads()  # loads the layer (and its runtime) now, not at the first kernel
        except (ImportError, AttributeError):  # another Numba: its layer starts at the first kernel
            pass
        finally:
            if private:
                sys.setdlopenflags(flags)
    finally:
        if mine:
            del os.environ["GOMP_SPINCOUNT"]


_start_threads()
short_worker_spins()  # OpenBLAS's idle workers would otherwise hold a core for ~100 ms (openblas.py)

from sescratch.kernels.numba.conv import conv2d_backward, conv2d_forward  # noqa: E402
from sescratch.kernels.numba.depthwise import (  # noqa: E402
    depthwise_conv2d_backward,
    depthwise_conv2d_forward,
)
from sescratch.kernels.numba.elementwise import (  # noqa: E402
    add_into,
    add_relu_forward,
    relu_backward,
    relu_forward,
)
from sescratch.kernels.numba.norm import (  # noqa: E402
    batchnorm2d_backward,
    batchnorm2d_eval_forward,
    batchnorm2d_forward,
)
from sescratch.kernels.numba.bn_se_add_relu import (
    batchnorm2d_plane_statistics,
    batchnorm2d_scaled_backward_dx,
    plane_affine_add_relu,
    relu_plane_sums,
)
from sescratch.kernels.numba.norm_relu import (
    batchnorm2d_eval_relu_forward,
    batchnorm2d_relu_backward,
    batchnorm2d_relu_forward,
)
from sescratch.kernels.numba.linear import linear_backward, linear_forward  # noqa: E402
from sescratch.kernels.numba.norm_running import batchnorm2d_running_update  # noqa: E402
from sescratch.kernels.numba.avg_pool import avg_pool2d_backward, avg_pool2d_forward  # noqa: E402
from sescratch.kernels.numba.pool import max_pool2d_backward, max_pool2d_forward  # noqa: E402
from sescratch.kernels.numba.squeeze_scale import (  # noqa: E402
    global_avg_pool_backward,
    global_avg_pool_backward_into,
    global_avg_pool_forward,
    se_scale_backward,
    se_scale_forward,
)
from sescratch.kernels.numba.sgd import sgd_update  # noqa: E402

# One entry per name of sescratch.kernels.DECLARED (tests/kernels/test_dispatch.py checks it).
KERNELS = {
    "conv2d_forward": conv2d_forward,
    "conv2d_backward": conv2d_backward,
    "depthwise_conv2d_forward": depthwise_conv2d_forward,
    "depthwise_conv2d_backward": depthwise_conv2d_backward,
    "batchnorm2d_forward": batchnorm2d_forward,
    "batchnorm2d_backward": batchnorm2d_backward,
    "batchnorm2d_eval_forward": batchnorm2d_eval_forward,
    "batchnorm2d_running_update": batchnorm2d_running_update,
    "batchnorm2d_relu_forward": batchnorm2d_relu_forward,
    "batchnorm2d_relu_backward": batchnorm2d_relu_backward,
    "batchnorm2d_eval_relu_forward": batchnorm2d_eval_relu_forward,
    "batchnorm2d_plane_statistics": batchnorm2d_plane_statistics,
    "plane_affine_add_relu": plane_affine_add_relu,
    "relu_plane_sums": relu_plane_sums,
    "batchnorm2d_scaled_backward_dx": batchnorm2d_scaled_backward_dx,
    "linear_forward": linear_forward,
    "linear_backward": linear_backward,
    "relu_forward": relu_forward,
    "relu_backward": relu_backward,
    "add_relu_forward": add_relu_forward,
    "add_into": add_into,
    "max_pool2d_forward": max_pool2d_forward,
    "max_pool2d_backward": max_pool2d_backward,
    "avg_pool2d_forward": avg_pool2d_forward,
    "avg_pool2d_backward": avg_pool2d_backward,
    "global_avg_pool_forward": global_avg_pool_forward,
    "global_avg_pool_backward": global_avg_pool_backward,
    "global_avg_pool_backward_into": global_avg_pool_backward_into,
    "se_scale_forward": se_scale_forward,
    "se_scale_backward": se_scale_backward,
    "sgd_update": sgd_update,
}
