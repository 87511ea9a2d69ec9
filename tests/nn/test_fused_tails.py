"""The fused paths of the residual blocks == the same blocks computed op by op.

A block runs its batch norms with the ReLU after them as one op, and its end (the last batch norm,
the SE block when there is one, the sum and the ReLU) as one op. Here each block is checked against
a deep copy of itself driven through the unfused modules and ops, forward and backward: output,
input gradient, every parameter gradient and the running statistics, in training and eval mode,
on every CPU backend.
"""
import copy

import numpy as np
import pytest

from sescratch import backend, nn, ops


@pytest.fixture(params=["numpy", "numba"])
def family(request):
    with backend.use(request.param):
        yield request.param


def _block(kind, se, training):
    nn.init.manual_seed(0)
    if kind == "basic":
        block = nn.BasicBlock(4, 8, 2, downsample=nn.make_shortcut(4, 8, 2), se=se)
    else:
        block = nn.Bottleneck(8, 2, 1, se=se)
    block = block.astype(np.float64)
    return block.train() if training else block.eval()


def _relu_bn(bn, x):
    return ops.relu_forward(bn(x))  # (y, cache)


def _unfused(block, x, dy):
    """The block from its modules one by one: BN, ReLU, SE, add + ReLU as separate ops."""
    s = block.downsample(x) if block.downsample is not None else x
    if isinstance(block, nn.BasicBlock):
        h, c1 = _relu_bn(block.bn1, block.conv1(x))
        u = block.bn2(block.conv2(h))
    else:
        h, c1 = _relu_bn(block.bn1, block.conv1(x))
        h, c2 = _relu_bn(block.bn2, block.conv2(h))
        u = block.bn3(block.conv3(h))
    if block.se_module is not None:
        u = block.se_module(u)
    y, cache = ops.add_relu_forward(u, s)
    du, ds = ops.add_relu_backward(dy, cache)
    if block.se_module is not None:
        du = block.se_module.backward(du)
    if isinstance(block, nn.BasicBlock):
        dh = ops.relu_backward(block.conv2.backward(block.bn2.backward(du)), c1)
    else:
        dh = ops.relu_backward(block.conv3.backward(block.bn3.backward(du)), c2)
        dh = ops.relu_backward(block.conv2.backward(block.bn2.backward(dh)), c1)
    dx = block.conv1.backward(block.bn1.backward(dh))
    dx = dx + (block.downsample.backward(ds) if block.downsample is not None else ds)
    return y, dx


@pytest.mark.parametrize("kind", ["basic", "bottleneck"])
@pytest.mark.parametrize("se", [None, {"reduction": 2}, {"reduction": 2, "gate": "tanh"}], ids=["plain", "se", "se-tanh"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_block_equals_the_ops_one_by_one(family, kind, se, training):
    fused = _block(kind, se, training)
    reference = copy.deepcopy(fused)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, fused.in_channels, 6, 6))
    y = fused(x)
    dy = rng.standard_normal(y.shape)
    dx = fused.backward(dy)
    y_ref, dx_ref = _unfused(reference, x, dy)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-9, atol=1e-11)
    params = dict(reference.named_parameters())
    for name, p in fused.named_parameters():
        np.testing.assert_allclose(p.grad, params[name].grad, rtol=1e-9, atol=1e-11, err_msg=name)
    buffers = dict(reference.state_dict())
    for name, value in fused.state_dict().items():
        np.testing.assert_allclose(value, buffers[name], rtol=1e-12, atol=1e-12, err_msg=name)
    if se is not None:
        np.testing.assert_allclose(fused.se_module.excitation, reference.se_module.excitation, rtol=1e-12)


def test_a_max_squeeze_runs_the_ops_one_by_one(family):
    """The fused tail reads the average off batch norm's statistics; a max squeeze cannot."""
    block = _block("basic", {"reduction": 2, "squeeze": "max"}, True)
    assert not block.se_module.fused_with_bn_available()
    reference = copy.deepcopy(block)
    x = np.random.default_rng(4).standard_normal((2, 4, 6, 6))
    y = block(x)
    dy = np.random.default_rng(5).standard_normal(y.shape)
    y_ref, dx_ref = _unfused(reference, x, dy)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(block.backward(dy), dx_ref, rtol=1e-9, atol=1e-11)


def test_each_batch_norm_forward_has_its_own_backward():
    bn = nn.BatchNorm2d(3).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    bn.forward_relu(x)
    with pytest.raises(RuntimeError, match=r"BatchNorm2d.backward: the last forward was forward_relu\(\); "
                                           r"backward\(\) is the backward of forward\(\)"):
        bn.backward(x)
    bn(x)
    with pytest.raises(RuntimeError, match=r"backward_add_relu: the last forward was forward\(\)"):
        bn.backward_add_relu(x)
    with pytest.raises(RuntimeError, match=r"backward_relu: the last forward was no forward"):
        nn.BatchNorm2d(3).backward_relu(x)


@pytest.mark.parametrize("squeeze", ["avg", "max"], ids=["fused", "separate"])
def test_keep_input_gives_the_maps_the_se_block_recalibrated(family, squeeze):
    """The fused tail never stores U = BN(x); SEBlock.keep_input asks for it, on either path."""
    block = _block("basic", {"reduction": 2, "squeeze": squeeze}, False)
    x = np.random.default_rng(6).standard_normal((2, 4, 6, 6))
    block(x)
    assert block.se_module.input is None  # not kept unless asked
    block.se_module.keep_input = True
    y = block(x)
    u = block.bn2(block.conv2(ops.relu_forward(block.bn1(block.conv1(x)))[0]))  # eval mode: no state changes
    np.testing.assert_allclose(block.se_module.input, u, rtol=1e-12, atol=1e-12)
    s = block.se_module.excitation[:, :, None, None]
    np.testing.assert_allclose(y, np.maximum(u * s + block.downsample(x), 0), rtol=1e-10, atol=1e-12)
