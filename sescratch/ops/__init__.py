"""Hand-derived ops: ``*_forward(...) -> (y, cache)`` and ``*_backward(dy, cache) -> grads``.

One file per op family; each docstring carries the notation block, the output-size formula
and the Derivation of every gradient the backward returns (long forms in docs/derivations/).
An op with fast kernels also exports its pure ``xp`` reference functions
(``conv2d_forward_reference``, ...), which run on any backend and never call a kernel.
"""
from sescratch.ops.window import conv_output_size
from sescratch.ops.conv import (
    Conv2dCache,
    conv2d_backward,
    conv2d_backward_reference,
    conv2d_forward,
    conv2d_forward_reference,
    conv2d_reference,
)
from sescratch.ops.depthwise import (
    depthwise_conv2d_backward_reference,
    depthwise_conv2d_forward_reference,
)
from sescratch.ops.linear import (
    LinearCache,
    linear_backward,
    linear_backward_reference,
    linear_forward,
    linear_forward_reference,
)
from sescratch.ops.activation import (
    hard_sigmoid_backward,
    hard_sigmoid_forward,
    relu_backward,
    relu_backward_reference,
    relu_forward,
    relu_forward_reference,
    relu6_backward,
    relu6_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from sescratch.ops.squeeze import (
    global_avg_pool_backward,
    global_avg_pool_backward_into_reference,
    global_avg_pool_backward_reference,
    global_avg_pool_forward,
    global_avg_pool_forward_reference,
    global_max_pool_backward,
    global_max_pool_forward,
)
from sescratch.ops.se_scale import (
    se_scale_backward,
    se_scale_backward_reference,
    se_scale_forward,
    se_scale_forward_reference,
)
from sescratch.ops.se_block import SEBlockCache, se_block_backward, se_block_forward
from sescratch.ops.batchnorm import (
    batchnorm2d_backward,
    batchnorm2d_backward_reference,
    batchnorm2d_eval_forward_reference,
    batchnorm2d_forward,
    batchnorm2d_forward_reference,
    batchnorm2d_running_update_reference,
)
from sescratch.ops.batchnorm_relu import (
    batchnorm2d_eval_relu_forward_reference,
    batchnorm2d_relu_backward,
    batchnorm2d_relu_backward_reference,
    batchnorm2d_relu_forward,
    batchnorm2d_relu_forward_reference,
)
from sescratch.ops.bn_se_add_relu import (
    BnSeAddReluCache,
    batchnorm2d_plane_statistics_reference,
    batchnorm2d_scaled_backward_dx_reference,
    bn_se_add_relu_backward,
    bn_se_add_relu_forward,
    bn_se_add_relu_se_input,
    plane_affine_add_relu_reference,
    relu_plane_sums_reference,
)
from sescratch.ops.pool import (
    max_pool2d_backward,
    max_pool2d_backward_reference,
    max_pool2d_forward,
    max_pool2d_forward_reference,
    max_pool2d_reference,
)
from sescratch.ops.avg_pool import (
    avg_pool2d_backward,
    avg_pool2d_backward_reference,
    avg_pool2d_forward,
    avg_pool2d_forward_reference,
    avg_pool2d_reference,
)
from sescratch.ops.loss import log_softmax, softmax_cross_entropy
from sescratch.ops.sgd import sgd_update, sgd_update_reference
from sescratch.ops.residual import (
    AddReluCache,
    add_backward,
    add_forward,
    add_into,
    add_into_reference,
    add_relu_backward,
    add_relu_forward,
    add_relu_forward_reference,
)
from sescratch.ops.concat import ConcatCache, concat_backward, concat_forward
from sescratch.ops.channel_shuffle import (
    ChannelShuffleCache,
    channel_shuffle_backward,
    channel_shuffle_forward,
)

__all__ = [
    "conv_output_size",
    "Conv2dCache",
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_reference",
    "conv2d_forward_reference",
    "conv2d_backward_reference",
    "depthwise_conv2d_forward_reference",
    "depthwise_conv2d_backward_reference",
    "LinearCache",
    "linear_forward",
    "linear_backward",
    "linear_forward_reference",
    "linear_backward_reference",
    "relu_forward",
    "relu_backward",
    "relu_forward_reference",
    "relu_backward_reference",
    "relu6_forward",
    "relu6_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "hard_sigmoid_forward",
    "hard_sigmoid_backward",
    "global_avg_pool_forward",
    "global_avg_pool_backward",
    "global_max_pool_forward",
    "global_max_pool_backward",
    "global_avg_pool_forward_reference",
    "global_avg_pool_backward_reference",
    "global_avg_pool_backward_into_reference",
    "se_scale_forward",
    "se_scale_backward",
    "se_scale_forward_reference",
    "se_scale_backward_reference",
    "SEBlockCache",
    "se_block_forward",
    "se_block_backward",
    "batchnorm2d_forward",
    "batchnorm2d_backward",
    "batchnorm2d_forward_reference",
    "batchnorm2d_backward_reference",
    "batchnorm2d_eval_forward_reference",
    "batchnorm2d_running_update_reference",
    "batchnorm2d_relu_forward",
    "batchnorm2d_relu_backward",
    "batchnorm2d_relu_forward_reference",
    "batchnorm2d_relu_backward_reference",
    "batchnorm2d_eval_relu_forward_reference",
    "BnSeAddReluCache",
    "bn_se_add_relu_forward",
    "bn_se_add_relu_backward",
    "bn_se_add_relu_se_input",
    "batchnorm2d_plane_statistics_reference",
    "plane_affine_add_relu_reference",
    "relu_plane_sums_reference",
    "batchnorm2d_scaled_backward_dx_reference",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward_reference",
    "max_pool2d_backward_reference",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward_reference",
    "avg_pool2d_backward_reference",
    "max_pool2d_reference",
    "avg_pool2d_reference",
    "log_softmax",
    "softmax_cross_entropy",
    "sgd_update",
    "sgd_update_reference",
    "add_forward",
    "add_backward",
    "AddReluCache",
    "add_relu_forward",
    "add_relu_backward",
    "add_into",
    "add_relu_forward_reference",
    "add_into_reference",
    "ConcatCache",
    "concat_forward",
    "concat_backward",
    "ChannelShuffleCache",
    "channel_shuffle_forward",
    "channel_shuffle_backward",
]
