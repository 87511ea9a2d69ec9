"""Whole-model gradient checks: the hand-composed backward of narrow SE-ResNets against central
differences (:func:`sescratch.gradcheck.gradcheck`), in float64, with a random upstream gradient on
the logits, BN in training mode.

Every parameter tensor and the input are checked along a few random directions each: for a tensor
``a`` with directions ``d_j`` the inputs handed to ``gradcheck`` are the coefficients ``t_j`` of
``a = a_0 + sum_j t_j d_j`` (at ``t = 0``, ``|d_j| = 1``), so the analytic gradient is ``<dL/da, d_j>`` and every
entry of every tensor takes part, at two forwards per direction.
"""
import numpy as np
import pytest

from sescratch import backend, models
from sescratch.gradcheck import gradcheck
from sescratch.models import cifar_resnet
from sescratch.nn import Bottleneck, ResNeXtBottleneck, init

pytestmark = pytest.mark.slow  # whole-model gradient checks: CI runs them; the fast loop (-m 'not slow') does not

TOL = 1e-6  # every entry, one at a time (sescratch.gradcheck's default step 1e-6)
# Along a unit direction the step is shared by all entries of a tensor: 3e-6 keeps every ReLU kink
# out of reach and the round-off of the loss (~1e-16 |L| / EPS) near 1e-7 of the smallest SE-FC
# directional derivatives (measured worst 9.4e-7 over this file); a wrong backward is off by > 1e-3.
EPS = 3e-6
TOL_DIRECTIONAL = 1e-5


def _unit_rows(d):
    """Unit-norm directions: a step moves the tensor as far as a one-entry step (ReLU kinks stay away)."""
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _check_model(model, x_shape=(2, 3, 8, 8), directions=2, seed=0):
    """Return {name: error} for every parameter and the input (``gradcheck`` along random directions)."""
    rng = np.random.default_rng(seed)
    model.astype(np.float64).train()
    x = rng.standard_normal(x_shape)
    params = list(model.named_parameters())
    arrays = [p.data for _, p in params] + [x]  # the model's own arrays, written in place
    bases = [a.copy() for a in arrays]
    dirs = [_unit_rows(rng.standard_normal((directions, a.size))).reshape((directions,) + a.shape) for a in arrays]

    def forward(*coefficients):
        for array, base, d, t in zip(arrays, bases, dirs, coefficients):
            array[...] = base + np.tensordot(t, d, axes=1)
        return model(x)

    def backward(dy):  # dy: gradcheck's random standard-normal upstream gradient
        model.zero_grad()
        dx = model.backward(dy)
        grads = [p.grad for _, p in params] + [dx]
        return [d.reshape(directions, -1) @ g.reshape(-1) for d, g in zip(dirs, grads)]

    names = [n for n, _ in params] + ["input"]
    errors = gradcheck(forward, backward, [np.zeros(directions) for _ in arrays], names=names, seed=seed, eps=EPS)
    assert set(errors) == set(names) and len(names) == len(params) + 1
    return errors


def _assert_small(errors, tol=TOL_DIRECTIONAL):
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"gradient check failed (rel err > {tol}): {bad}"


@pytest.fixture(autouse=True)
def _numpy_kernels():
    # tiny arrays: the NumPy reference is faster than kernel launches, and is what we check
    with backend.use("numpy"):
        yield


def test_se_resnet20_whole_model():
    model = models.create("se_resnet20", num_classes=5, width=4, reduction=2, seed=1)
    _assert_small(_check_model(model))


def test_se_resnet20_input_and_one_se_block_every_entry():
    """sescratch.gradcheck over every entry of the input and of the last SE block's FCs."""
    model = models.create("se_resnet20", num_classes=5, width=4, reduction=4, seed=7).astype(np.float64)
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
    _assert_small(errors, TOL)


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


def test_the_check_catches_a_wrong_backward():
    """A block whose backward forgets the shortcut's gradient must fail the check (no vacuous pass)."""
    model = models.create("se_resnet20", num_classes=5, width=4, reduction=2, seed=1)
    block = model.layer2[1]  # identity shortcut: dx = dx_branch + dy_total
    block._shortcut_backward = lambda ds: 0.0 * ds
    errors = _check_model(model)
    assert errors["input"] > 1e-2 and errors["layer1.0.conv1.weight"] > 1e-2
    assert errors["last_linear.weight"] < TOL_DIRECTIONAL  # above the broken block: still right
