"""Whole-model gradient checks: the hand-composed backward of narrow SE-ResNets against central
differences, in float64, with a random upstream gradient on the logits, BN in training mode.

Every parameter tensor and the input are checked. To stay fast, each tensor is probed at a few
random entries (all entries when it is small); the error is normwise against the whole analytic
gradient of that tensor: ``max_i |analytic_i - numeric_i| / max |analytic|``.
"""
import numpy as np
import pytest

from sescratch import backend, models
from sescratch.gradcheck import gradcheck
from sescratch.models import cifar_resnet
from sescratch.nn import Bottleneck, ResNeXtBottleneck, init

TOL = 1e-6
EPS = 1e-6


def _check_model(model, x_shape=(2, 3, 8, 8), probes=4, seed=0):
    """Return {name: error} for every parameter and the input."""
    rng = np.random.default_rng(seed)
    model.astype(np.float64).train()
    x = rng.standard_normal(x_shape)
    y = model(x)
    dy = rng.standard_normal(y.shape)  # random upstream gradient, never all-ones
    model.zero_grad()
    dx = model.backward(dy)

    def loss():
        return float(np.sum(dy * model(x)))

    def probe(array, analytic):
        flat, flat_grad = array.reshape(-1), analytic.reshape(-1)
        idx = np.arange(flat.size) if flat.size <= probes else rng.choice(flat.size, probes, replace=False)
        worst = 0.0
        for i in idx:
            saved = flat[i]
            flat[i] = saved + EPS
            up = loss()
            flat[i] = saved - EPS
            down = loss()
            flat[i] = saved
            worst = max(worst, abs((up - down) / (2 * EPS) - flat_grad[i]))
        return worst / max(np.abs(analytic).max(), 1e-30)

    errors = {name: probe(p.data, p.grad.copy()) for name, p in model.named_parameters()}
    errors["input"] = probe(x, dx)
    assert set(errors) == {n for n, _ in model.named_parameters()} | {"input"}
    return errors


def _assert_small(errors):
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"gradient check failed (rel err > {TOL}): {bad}"


@pytest.fixture(autouse=True)
def _numpy_kernels():
    # tiny arrays: the NumPy reference is faster than kernel launches, and is what we check
    with backend.use("numpy"):
        yield


def test_se_resnet20_whole_model():
    init.manual_seed(1)
    model = models.create("se_resnet20", num_classes=5, width=4, reduction=2)
    _assert_small(_check_model(model, probes=3))


def test_se_resnet20_input_and_one_se_block_every_entry():
    """sescratch.gradcheck over every entry of the input and of the last SE block's FCs."""
    init.manual_seed(7)
    model = models.create("se_resnet20", num_classes=5, width=4, reduction=4).astype(np.float64)
    se = model.se_blocks()["SE_4_3"]
    params = [se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias]
    x = np.random.default_rng(7).standard_normal((2, 3, 8, 8))

    def forward(x, *weights):  # the weights are the parameters' own arrays, perturbed in place
        return model(x)

    def backward(dy):
        model.zero_grad()
        dx = model.backward(dy)
        return [dx] + [p.grad.copy() for p in params]

    names = ["x", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    errors = gradcheck(forward, backward, [x] + [p.data for p in params], names=names, seed=7)
    assert set(errors) == set(names)
    _assert_small(errors)


@pytest.mark.parametrize("placement", ["standard", "pre", "post", "identity", "after_3x3"])
def test_basic_block_placements(placement):
    init.manual_seed(2)
    model = cifar_resnet("se_test", 1, num_classes=3, width=4, se={"reduction": 2}, placement=placement)
    _assert_small(_check_model(model))


@pytest.mark.parametrize("squeeze,gate", [("max", "sigmoid"), ("avg", "tanh"), ("avg", "relu"),
                                          ("avg", "hard_sigmoid")])
def test_squeeze_and_gate_variants(squeeze, gate):
    init.manual_seed(3)
    se = {"reduction": 2, "squeeze": squeeze, "gate": gate}
    model = cifar_resnet("se_test", 1, num_classes=3, width=4, se=se)
    _assert_small(_check_model(model))


def test_shortcut_a_and_plain():
    init.manual_seed(4)
    model = cifar_resnet("resnet_test", (1, 2, 1), num_classes=3, width=4, shortcut="A")
    _assert_small(_check_model(model))


@pytest.mark.parametrize("stride_on", ["1x1", "3x3"])
@pytest.mark.parametrize("placement", ["standard", "after_3x3"])
def test_bottleneck(stride_on, placement):
    init.manual_seed(5)
    model = cifar_resnet("se_bottleneck_test", 1, num_classes=3, width=2, block=Bottleneck, stride_on=stride_on,
                         se={"reduction": 4}, placement=placement)
    _assert_small(_check_model(model))


@pytest.mark.parametrize("placement", ["standard", "pre", "post", "identity"])
def test_resnext_bottleneck(placement):
    init.manual_seed(6)
    model = cifar_resnet("se_resnext_test", 1, num_classes=3, width=4, block=ResNeXtBottleneck, groups=2,
                         base_width=32, se={"reduction": 4}, placement=placement)
    assert model.layer1[0].conv2.groups == 2
    _assert_small(_check_model(model))
