"""Whole-model float64 gradient checks of every CIFAR-scale exemplar (issue 11), and their parity
with PyTorch autograd through ``to_torch`` (logits, input gradient, every parameter gradient,
running statistics), with a random upstream gradient, BN in training mode.

The gradient check follows tests/nn/test_model_gradcheck.py: each parameter tensor and the input
are moved along one random unit direction ``d``, and ``<dL/da, d>`` from the backward is compared
with central differences of ``L = <dy, model(x)>`` (:func:`sescratch.gradcheck.numerical_gradients`),
so every entry of every tensor takes part, at two forwards per tensor and step. These nets stack
13-40 blocks of BN -> ReLU over thousands of units, so a step may cross a ReLU kink: the steps are
small (1e-7 and 3e-8) and a tensor's error is the smaller of the two (a kink closer than 3e-8 is
rare; round-off at 3e-8 stays below 1e-4). Errors are relative to the largest directional
derivative of the model times 1e-4 where a tensor's own is smaller (VGG's conv biases feed a BN:
their true gradient is 0). A wrong backward is off by O(1) (see the dropped-fan-out test).
Narrow options and 8x8 / 16x16 inputs keep each check to a few seconds.
"""
import numpy as np
import pytest

from sescratch import backend, models
from sescratch.gradcheck import numerical_gradients

pytestmark = pytest.mark.slow  # whole-model gradient checks and torch parity: CI runs them; the fast loop (-m 'not slow') does not

EPS = (1e-7, 3e-8)
FLOOR = 1e-4  # times the largest directional derivative of the model
TOL = 5e-4

# name: (narrow options, input shape, grouping): ``None`` checks every tensor on its own; ``2``
# moves the tensors of one module (first two parts of their names: ``inception_3a.branch_3x3``)
# along one joint direction, unit norm per tensor, so the 240-tensor Inception nets need ~45
# checks instead of 240 and ShuffleNet one per unit (each tensor still takes part)
SMALL = {
    "vgg16_bn_cifar": ({"width": 2}, (2, 3, 16, 16), None),
    "bn_inception_cifar": ({}, (2, 3, 16, 16), 2),
    "inception_resnet_v2_cifar": ({}, (2, 3, 16, 16), 2),
    "mobilenet_v1_cifar": ({"width_multiplier": 0.125}, (2, 3, 16, 16), None),
    "shufflenet_v1_g3_cifar": ({}, (4, 3, 8, 8), 2),
}
NAMES = [n for base in SMALL for n in (base, f"se_{base}")]


def _small(name, seed=0):
    base = name[3:] if name.startswith("se_") else name
    options, shape, grouping = SMALL[base]
    if name.startswith("se_"):
        options = {**options, "reduction": 4}
    return models.create(name, num_classes=3, seed=seed, **options), shape, grouping


def _check_model(model, x_shape, grouping=None, seed=0) -> dict[str, float]:
    """``{group name: error}`` of the directional derivatives, every parameter and the input."""
    rng = np.random.default_rng(seed)
    model.astype(np.float64).train()
    x = rng.standard_normal(x_shape)
    params = list(model.named_parameters())
    arrays = [p.data for _, p in params] + [x]  # the model's own arrays, written in place
    bases = [a.copy() for a in arrays]
    dirs = [d / np.linalg.norm(d) for d in (rng.standard_normal(a.shape) for a in arrays)]
    names = [n for n, _ in params] + ["input"]
    keys = names if grouping is None else [".".join(n.split(".")[:grouping]) for n in names]
    groups = list(dict.fromkeys(keys))
    member = [groups.index(k) for k in keys]  # the group of each tensor

    def forward(*ts):
        for array, base, d, g in zip(arrays, bases, dirs, member):
            array[...] = base + ts[g][0] * d
        return model(x)

    coefficients = [np.zeros(1) for _ in groups]
    y = forward(*coefficients)
    dy = rng.standard_normal(y.shape)  # random upstream gradient
    model.zero_grad()
    dx = model.backward(dy)
    analytic = [0.0] * len(groups)
    for d, grad, g in zip(dirs, [p.grad for _, p in params] + [dx], member):
        analytic[g] += np.vdot(d, grad)
    floor = FLOOR * max(abs(a) for a in analytic)
    errors = []
    for eps in EPS:
        numeric = [float(g[0]) for g in numerical_gradients(forward, coefficients, dy, eps=eps)]
        errors.append([abs(a - g) / max(abs(a), abs(g), floor) for a, g in zip(analytic, numeric)])
    return {n: min(e) for n, e in zip(groups, zip(*errors))}  # the step that met no kink


@pytest.fixture(autouse=True)
def _numpy_kernels():
    with backend.use("numpy"):  # tiny arrays: the NumPy reference is what we check
        yield


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_whole_model_gradient(name):
    model, shape, grouping = _small(name)
    errors = _check_model(model, shape, grouping)
    if grouping is None:
        assert len(errors) == len(list(model.named_parameters())) + 1
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"{name}: gradient check failed (rel err > {TOL}): {bad}"


def test_the_check_catches_a_dropped_fan_out():
    """A ShuffleNet unit whose backward forgets the identity's share of ``dx`` fails the check."""
    model, shape, _ = _small("se_shufflenet_v1_g3_cifar")
    unit = model.layer1[1]  # stride 1: dx = dy_identity + dx_branch
    original = unit.backward
    unit.backward = lambda dy: original(dy) - unit.relu.backward(dy)  # drop the identity share
    errors = _check_model(model, shape, grouping=1)  # one direction per stage is enough to see it
    assert max(errors.values()) > 1e-3


# -- parity with torch autograd --------------------------------------------------------------


def _rel(ours, theirs, floor=1e-300):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), floor))


@pytest.mark.parametrize("name", NAMES)
def test_equals_torch(name):
    torch = pytest.importorskip("torch")
    from sescratch.interop.torch import to_torch

    model, shape, _ = _small(name, seed=1)
    model.astype(np.float64).train()
    reference = to_torch(model)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    y = model(x)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = reference(xt)
    yt.backward(torch.from_numpy(dy))
    errors = {"logits": _rel(y, yt), "input": _rel(dx, xt.grad)}
    theirs = dict(reference.named_parameters())
    assert set(theirs) == {n for n, _ in model.named_parameters()}
    # gradients of biases before a BN and means after a BN are 0 up to round-off: errors relative
    # to the largest entry of their kind where their own are smaller
    floor = 1e-3 * max(np.abs(p.grad).max() for _, p in model.named_parameters())
    errors.update({n: _rel(p.grad, theirs[n].grad, floor) for n, p in model.named_parameters()})
    buffers = dict(reference.named_buffers())
    ours = {n: b for n, b in model.named_buffers() if b.dtype == np.float64}
    floors = {kind: 1e-3 * max(np.abs(b).max() for n, b in ours.items() if n.endswith(kind))
              for kind in ("running_mean", "running_var")}
    errors.update({n: _rel(b, buffers[n], floors[n.rsplit(".", 1)[1]]) for n, b in ours.items()})
    bad = {k: v for k, v in errors.items() if not v <= 1e-9}
    assert not bad, f"{name} differs from torch: {bad}"
    model.eval()
    reference.eval()
    assert _rel(model(x), reference(torch.from_numpy(x))) <= 1e-9
