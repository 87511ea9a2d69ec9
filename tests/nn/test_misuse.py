"""Misuse of layers and ops gets a sentence naming the layer or argument, never a deep traceback,
a silently different layer, or half-done work."""
import numpy as np
import pytest

from sescratch import backend, nn, ops
from sescratch.nn.blocks import BasicBlock


@pytest.mark.parametrize("build, words", [
    (lambda: nn.Conv2d(4, 4, kernel_size=2.9), "Conv2d: argument 'kernel_size' must be an int or a pair of ints"),
    (lambda: nn.Conv2d(4, 4, 3, stride=1.5), "Conv2d: argument 'stride' must be an int or a pair of ints"),
    (lambda: nn.Conv2d(4, 4, 3, padding=-1), "Conv2d: argument 'padding' must be >= 0"),
    (lambda: nn.Conv2d(4, 4, 0), "Conv2d: argument 'kernel_size' must be >= 1"),
    (lambda: nn.Conv2d(4, 4, 3, groups=0), "Conv2d: argument 'groups' must be a positive int"),
    (lambda: nn.Conv2d(4.0, 4, 3), "Conv2d: argument 'in_channels' must be a positive int"),
    (lambda: nn.Linear(0, 3), "Linear: argument 'in_features' must be a positive int"),
    (lambda: nn.MaxPool2d(2.5), "MaxPool2d: argument 'kernel_size' must be an int or a pair of ints"),
    (lambda: nn.AvgPool2d(3, stride=(2, 0)), "AvgPool2d: argument 'stride' must be >= 1"),
])
def test_layer_sizes_must_be_whole_numbers(build, words):
    with pytest.raises(ValueError, match=words):
        build()


@pytest.mark.parametrize("layer, x", [
    (nn.Conv2d(2, 3, 3), None), (nn.Linear(4, 2), None), (nn.SEBlock(8, 2), None), (BasicBlock(4, 4), None),
])
def test_backward_before_any_forward_says_so(layer, x):
    with pytest.raises(RuntimeError, match=f"{type(layer).__name__}.backward: no forward to differentiate"):
        layer.backward(np.zeros((1, 2, 3, 3), np.float32))


def test_backward_refuses_an_upstream_gradient_of_another_dtype(xp):
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    w = xp.asarray(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    y, cache = ops.conv2d_forward(x, w, padding=1)
    for bad, words in ((y.astype(np.float16), "must have a floating dtype"), (y.astype(np.float64), "share one dtype")):
        with pytest.raises(ValueError, match=f"conv2d_backward: .*{words}"):
            ops.conv2d_backward(bad, cache)
    z, lcache = ops.linear_forward(x.reshape(2, -1), xp.asarray(rng.standard_normal((3, 75)).astype(np.float32)))
    with pytest.raises(ValueError, match="linear_backward: arguments must share one dtype"):
        ops.linear_backward(z.astype(np.float64), lcache)


def test_empty_planes_have_no_squeeze(xp):
    u = xp.zeros((2, 4, 0, 5), np.float32)
    w1, w2 = xp.ones((2, 4), np.float32), xp.ones((4, 2), np.float32)
    for squeeze in ("avg", "max"):
        with pytest.raises(ValueError, match="argument 'u' has an empty plane"):
            ops.se_block_forward(u, w1, None, w2, None, squeeze=squeeze)
    with pytest.raises(ValueError, match="global_avg_pool_forward: argument 'x' has an empty plane"):
        ops.global_avg_pool_forward(u)
    z, _ = ops.global_avg_pool_forward(xp.zeros((0, 4, 3, 3), np.float32))  # an empty batch is fine
    assert z.shape == (0, 4)


@pytest.mark.parametrize("groups, w_shape", [(2, (2, 1, 3, 3)), (1, (3, 2, 3, 3))])  # depthwise, plain
def test_a_stride_beyond_the_image_costs_nothing_extra(xp, groups, w_shape):
    """A stride of 2**32 (one output): every family gives the reference's result, the GPU's
    int32 kernel arguments included (the stride of a single output is passed as 1)."""
    from sescratch.backend import to_numpy

    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    w = np.random.default_rng(1).standard_normal(w_shape)
    dy = np.random.default_rng(2).standard_normal((1, w_shape[0], 1, 1))
    with backend.use("numpy"):
        y0, cache = ops.conv2d_forward(x, w, stride=2**32, padding=1, groups=groups)
        g0 = ops.conv2d_backward(dy, cache)
    y1, cache = ops.conv2d_forward(xp.asarray(x), xp.asarray(w), stride=2**32, padding=1, groups=groups)
    g1 = ops.conv2d_backward(xp.asarray(dy), cache)
    assert y0.shape == (1, w_shape[0], 1, 1)
    np.testing.assert_allclose(to_numpy(y1), y0, rtol=1e-12)
    for a, b in zip(g0, g1):
        if a is not None:
            np.testing.assert_allclose(to_numpy(b), a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("op", ["batchnorm2d", "batchnorm2d_relu", "se_scale", "relu"])
def test_a_dy_of_another_dtype_is_refused_by_name(xp, op):
    """A float64 dy into the backward of a float32 forward: a ValueError naming both dtypes on
    every family (the GPU kernels would refuse it with CuPy's own TypeError)."""
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32))
    gamma, beta = xp.ones(3, dtype=np.float32), xp.zeros(3, dtype=np.float32)
    if op == "se_scale":
        y, cache = ops.se_scale_forward(x, xp.ones((2, 3), dtype=np.float32))
    elif op == "relu":
        y, cache = ops.relu_forward(x)
    else:
        forward = getattr(ops, f"{op}_forward")
        y, cache = forward(x, gamma, beta, xp.zeros(3, dtype=np.float32), xp.ones(3, dtype=np.float32),
                           training=True)
    with pytest.raises(ValueError, match=rf"{op}_backward: arguments must share one dtype, got 'dy' float64, '\w+' float32"):
        getattr(ops, f"{op}_backward")(y.astype(np.float64), cache)


def test_load_state_dict_copies_nothing_when_one_value_does_not_fit():
    model = nn.Sequential(nn.Conv2d(2, 2, 3), nn.BatchNorm2d(2))
    before = {k: np.array(v) for k, v in model.state_dict().items()}
    state = {k: np.array(v) + 1 for k, v in before.items()}
    state["1.num_batches_tracked"] = np.array(2.9)
    with pytest.raises(ValueError, match="1.num_batches_tracked holds values that do not fit its dtype int64; nothing"):
        model.load_state_dict(state)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    state["1.num_batches_tracked"] = np.array(3.0)  # a whole number stored as a float is a count
    model.load_state_dict(state)
    assert int(model.state_dict()["1.num_batches_tracked"]) == 3


def test_a_second_backward_after_one_forward_is_refused():
    """It would add every gradient twice (PyTorch: "backward through the graph a second time")."""
    from sescratch import models

    model = models.create("se_resnet20", num_classes=3, width=2, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    dy = np.ones((2, 3), np.float32)
    model(x)
    model.backward(dy)
    with pytest.raises(RuntimeError, match="Linear.backward: no forward to differentiate"):
        model.backward(dy)
    model(x)
    model.backward(dy)  # a new forward, a new backward


def test_a_lone_batch_norm_refuses_a_second_backward_too():
    bn = nn.BatchNorm2d(2)
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4)).astype(np.float32)
    bn(x)
    bn.backward(np.ones_like(x))
    with pytest.raises(RuntimeError, match="no forward since the last backward"):
        bn.backward(np.ones_like(x))
