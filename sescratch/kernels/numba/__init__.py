"""Numba CPU kernels, exported by name for ``sescratch.backend.get_kernel``.

Threading: unless the user chose a layer (``NUMBA_THREADING_LAYER``), the parallel kernels run
on Numba's ``workqueue`` layer. The OpenMP layer's worker threads busy-wait between kernels;
on a 2-core machine shared with any other process that made a training step about 3x slower
(64-79 vs 241-261 images/s for SE-ResNet-20, same load, identical losses). The conv kernels
are not ``parallel=True``: they split the batch over their own Python threads (``_scratch.py``),
so only the main thread ever launches a parallel kernel, as the workqueue layer requires.
"""
import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

from sescratch.kernels.numba.conv import conv2d_backward, conv2d_forward  # noqa: E402
from sescratch.kernels.numba.elementwise import add_relu, relu, relu_backward  # noqa: E402
from sescratch.kernels.numba.norm import (  # noqa: E402
    bn_train_backward,
    bn_train_forward,
    channel_affine,
)
from sescratch.kernels.numba.pool import max_pool2d, max_pool2d_backward  # noqa: E402
from sescratch.kernels.numba.squeeze_scale import (  # noqa: E402
    global_avg_pool,
    global_avg_pool_backward,
    se_scale,
    se_scale_backward,
)
