"""Hand-derived ops: ``*_forward(...) -> (y, cache)`` and ``*_backward(dy, cache) -> grads``.

One file per op family; each docstring carries the notation block, the output-size formula
and the Derivation of every gradient the backward returns (long forms in docs/derivations/).
"""
from sescratch.ops.conv import (
    Conv2dCache,
    conv2d_backward,
    conv2d_forward,
    conv2d_reference,
)
from sescratch.ops.linear import LinearCache, linear_backward, linear_forward
from sescratch.ops.activation import (
    hard_sigmoid_backward,
    hard_sigmoid_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from sescratch.ops.squeeze import (
    global_avg_pool_backward,
    global_avg_pool_forward,
    global_max_pool_backward,
    global_max_pool_forward,
)
from sescratch.ops.se_scale import se_scale_backward, se_scale_forward
from sescratch.ops.batchnorm import batchnorm2d_backward, batchnorm2d_forward
from sescratch.ops.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_reference,
    avg_pool2d_reference,
)
from sescratch.ops.loss import log_softmax, softmax_cross_entropy
from sescratch.ops.residual import add_backward, add_forward

__all__ = [
    "Conv2dCache",
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_reference",
    "LinearCache",
    "linear_forward",
    "linear_backward",
    "relu_forward",
    "relu_backward",
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
    "se_scale_forward",
    "se_scale_backward",
    "batchnorm2d_forward",
    "batchnorm2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "max_pool2d_reference",
    "avg_pool2d_reference",
    "log_softmax",
    "softmax_cross_entropy",
    "add_forward",
    "add_backward",
]
