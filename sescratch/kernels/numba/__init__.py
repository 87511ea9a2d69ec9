"""Numba CPU kernels: the table ``KERNELS`` that ``sescratch.backend`` dispatches to.

Threading: unless the user chose a layer (``NUMBA_THREADING_LAYER``), the parallel kernels run
on Numba's OpenMP layer with short spins (``GOMP_SPINCOUNT=1000``, set only while that layer's
GNU OpenMP runtime loads, so PyTorch's own copy is left alone), or on the ``workqueue`` layer
where no OpenMP runtime loads. A training step launches a few hundred small parallel kernels
(batch norm, ReLU, the residual sums, the SE scale): on the 2-core Intel Xeon of 2026-12-01 a
launch costs 8 us on OpenMP with short spins, 80 us with ``OMP_WAIT_POLICY=PASSIVE`` and 130 us on
``workqueue``. OpenMP's default long spins (300,000 rounds) would keep a core busy after every
kernel, taking it from the conv kernels that follow on a machine with few cores (on a busy
machine, up to 10x slower steps: ``docs/results.md``); a user's own ``GOMP_SPINCOUNT`` or
``OMP_WAIT_POLICY`` is kept. The conv kernels are not ``parallel=True``: they split the batch
over their own Python threads (``_scratch.py``), so only the main thread ever launches a parallel
kernel, as the workqueue layer requires.
"""
import os

import numba

SPIN_COUNT = "1000"  # GNU OpenMP's spin before a worker sleeps, in rounds of its wait loop


def _start_threads() -> None:
    """Pick and start Numba's thread pool now, with OpenMP's spins set as the docstring says."""
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]  # tbb: not installed here
    numba.config.THREADING_LAYER = "default"
    mine = not ({"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(os.environ))
    if mine:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT  # read once, when libgomp loads
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()  # loads the layer (and its libgomp) now, not at the first kernel
    except (ImportError, AttributeError):  # another Numba: its layer starts at the first kernel
        pass
    finally:
        if mine:
            del os.environ["GOMP_SPINCOUNT"]


_start_threads()

from sescratch.kernels.numba.conv import conv2d_backward, conv2d_forward  # noqa: E402
from sescratch.kernels.numba.depthwise import (  # noqa: E402
    depthwise_conv2d_backward,
    depthwise_conv2d_forward,
)
from sescratch.kernels.numba.elementwise import (  # noqa: E402
    add_into,
    add_relu_backward,
    add_relu_forward,
    relu_backward,
    relu_forward,
)
from sescratch.kernels.numba.norm import (  # noqa: E402
    batchnorm2d_backward,
    batchnorm2d_eval_forward,
    batchnorm2d_forward,
)
from sescratch.kernels.numba.norm_running import batchnorm2d_running_update  # noqa: E402
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
    "relu_forward": relu_forward,
    "relu_backward": relu_backward,
    "add_relu_forward": add_relu_forward,
    "add_relu_backward": add_relu_backward,
    "add_into": add_into,
    "max_pool2d_forward": max_pool2d_forward,
    "max_pool2d_backward": max_pool2d_backward,
    "global_avg_pool_forward": global_avg_pool_forward,
    "global_avg_pool_backward": global_avg_pool_backward,
    "global_avg_pool_backward_into": global_avg_pool_backward_into,
    "se_scale_forward": se_scale_forward,
    "se_scale_backward": se_scale_backward,
    "sgd_update": sgd_update,
}
