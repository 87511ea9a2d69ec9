"""CuPy GPU kernels: the table ``KERNELS`` that ``sescratch.backend`` dispatches to."""
from sescratch.kernels.cupy.conv import conv2d_backward, conv2d_forward
from sescratch.kernels.cupy.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from sescratch.kernels.cupy.elementwise import (
    add_into,
    add_relu_forward,
    relu_backward,
    relu_forward,
)
from sescratch.kernels.cupy.norm import (
    batchnorm2d_backward,
    batchnorm2d_eval_forward,
    batchnorm2d_forward,
)
from sescratch.kernels.cupy.bn_se_add_relu import (
    batchnorm2d_plane_statistics,
    batchnorm2d_scaled_backward_dx,
    plane_affine_add_relu,
    relu_plane_sums,
)
from sescratch.kernels.cupy.norm_relu import (
    batchnorm2d_eval_relu_forward,
    batchnorm2d_relu_backward,
    batchnorm2d_relu_forward,
)
from sescratch.kernels.cupy.linear import linear_backward, linear_forward
from sescratch.kernels.cupy.norm_running import batchnorm2d_running_update
from sescratch.kernels.cupy.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from sescratch.kernels.cupy.squeeze_scale import (
    global_avg_pool_backward,
    global_avg_pool_backward_into,
    global_avg_pool_forward,
    se_scale_backward,
    se_scale_forward,
)
from sescratch.kernels.cupy.sgd import sgd_update

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
