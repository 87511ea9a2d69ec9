"""Numba CPU kernels, exported by name for ``sescratch.backend.get_kernel``."""
from sescratch.kernels.numba.conv import conv2d_backward, conv2d_forward
from sescratch.kernels.numba.elementwise import add_relu, relu, relu_backward
from sescratch.kernels.numba.norm import bn_train_backward, bn_train_forward, channel_affine
from sescratch.kernels.numba.pool import max_pool2d, max_pool2d_backward
from sescratch.kernels.numba.squeeze_scale import (
    global_avg_pool,
    global_avg_pool_backward,
    se_scale,
    se_scale_backward,
)
