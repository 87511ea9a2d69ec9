"""The few hot loops, per family: ``sescratch.kernels.numba`` (CPU) and ``sescratch.kernels.cupy`` (GPU).

Each family's ``__init__`` holds one table, ``KERNELS = {name: function}``, with exactly the
names of :data:`DECLARED`. A kernel is named after the op it accelerates and takes and returns
arrays with exactly the semantics of that op's reference function
(``<name>_reference`` in :mod:`sescratch.ops`), which ``tests/kernels`` checks.

Ops never import a family: each op module declares the kernels it dispatches to with
:func:`sescratch.backend.declare_kernels`, which checks the names against :data:`DECLARED`
when the op module is imported (without importing Numba or CuPy), and asks for a kernel only in
its short dispatch section at the bottom of the file.
"""

DECLARED = (
    "conv2d_forward",
    "conv2d_backward",
    "depthwise_conv2d_forward",  # conv2d with groups == C_in (any channel multiplier)
    "depthwise_conv2d_backward",
    "batchnorm2d_forward",  # training mode: batch statistics
    "batchnorm2d_backward",  # training mode
    "batchnorm2d_eval_forward",  # evaluation mode: a per-channel affine map
    "batchnorm2d_running_update",  # training mode: the running averages, in place
    "batchnorm2d_relu_forward",  # training mode, ReLU(BN(x) + residual) in one pass (sescratch.ops.batchnorm_relu)
    "batchnorm2d_relu_backward",  # training mode
    "batchnorm2d_eval_relu_forward",  # evaluation mode
    "batchnorm2d_plane_statistics",  # the tail of an SE-ResNet block as one op (sescratch.ops.bn_se_add_relu)
    "plane_affine_add_relu",
    "relu_plane_sums",
    "batchnorm2d_scaled_backward_dx",
    "linear_forward",  # the FCs (the SE block's excitation, classifiers): where BLAS runs their products
    "linear_backward",
    "relu_forward",
    "relu_backward",
    "add_relu_forward",  # the end of a residual block, ReLU(a + b)
    "add_into",  # a fan-out sum of two gradients, in place into the first
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",  # the window sums over a divisor the op computes (count_include_pad, ceil_mode)
    "avg_pool2d_backward",
    "global_avg_pool_forward",
    "global_avg_pool_backward",
    "global_avg_pool_backward_into",  # added in place to another path's gradient (the SE fan-out)
    "se_scale_forward",
    "se_scale_backward",
    "sgd_update",  # one optimiser step of one parameter, in place (sescratch.ops.sgd)
)
