"""CuPy GPU kernels, exported by name for ``sescratch.backend.get_kernel``."""
from sescratch.kernels.cupy.conv import conv2d_backward, conv2d_forward
from sescratch.kernels.cupy.elementwise import add_relu, relu, relu_backward
from sescratch.kernels.cupy.norm import bn_train_backward, bn_train_forward, channel_affine
from sescratch.kernels.cupy.pool import max_pool2d, max_pool2d_backward
from sescratch.kernels.cupy.squeeze_scale import (
    global_avg_pool,
    global_avg_pool_backward,
    se_scale,
    se_scale_backward,
)
