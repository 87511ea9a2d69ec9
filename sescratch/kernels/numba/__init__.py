"""Numba CPU kernels: the table ``KERNELS`` that ``sescratch.backend`` dispatches to.

Threading: unless the user chose a layer (``NUMBA_THREADING_LAYER``), the parallel kernels run
on Numba's ``workqueue`` layer. The OpenMP layer's worker threads busy-wait between kernels,
which on a machine with few cores shared with other processes takes the cores the next kernel
needs (set ``NUMBA_THREADING_LAYER=omp`` to compare on a given machine). The conv kernels
are not ``parallel=True``: they split the batch over their own Python threads (``_scratch.py``),
so only the main thread ever launches a parallel kernel, as the workqueue layer requires.
"""
import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

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
