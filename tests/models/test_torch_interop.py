"""PyTorch as the oracle of whole models: logits, every gradient, running statistics and SGD steps
equal torch autograd in float64 (``to_torch`` builds the equivalent module with the same weights)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sescratch import models, nn, ops  # noqa: E402
from sescratch.models import ResNet, cifar_resnet, imagenet  # noqa: E402
from sescratch.interop.torch import from_torch, to_torch  # noqa: E402
from sescratch.train import SGD  # noqa: E402

TOL = 1e-9


def _rel(ours, theirs):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-300))


def _compare_step(model, x_shape, seed=0):
    """One forward + backward in both frameworks (train mode, float64); return the worst errors."""
    rng = np.random.default_rng(seed)
    model.astype(np.float64).train()
    reference = to_torch(model)
    x = rng.standard_normal(x_shape)
    labels = rng.integers(0, model.last_linear.out_features, size=x_shape[0])

    logits = model(x)
    loss, dlogits = ops.softmax_cross_entropy(logits, labels)
    model.zero_grad()
    dx = model.backward(dlogits)

    xt = torch.from_numpy(x.copy()).requires_grad_()
    logits_t = reference(xt)
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.from_numpy(labels))
    loss_t.backward()

    errors = {"logits": _rel(logits, logits_t), "loss": _rel(np.asarray(loss), loss_t), "input": _rel(dx, xt.grad)}
    torch_params = dict(reference.named_parameters())
    assert set(torch_params) == {n for n, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        errors[name] = _rel(p.grad, torch_params[name].grad)
    torch_buffers = dict(reference.named_buffers())
    for name, b in model.named_buffers():
        if b.dtype == np.float64:
            errors[name] = _rel(b, torch_buffers[name])
        else:
            assert int(b) == int(torch_buffers[name])
    return errors


def _assert_close(errors, tol=TOL):
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"differs from torch (rel > {tol}): {bad}"


def test_se_resnet20_equals_torch():
    model = models.create("se_resnet20", num_classes=10, seed=0)
    _assert_close(_compare_step(model, (4, 3, 32, 32)))


@pytest.mark.slow
def test_se_resnext50_32x4d_equals_torch():
    model = models.create("se_resnext50_32x4d", num_classes=10, seed=0)
    _assert_close(_compare_step(model, (4, 3, 32, 32)))  # 4 values per channel in layer4 BN


VARIANTS = [
    {"placement": "pre"},
    {"placement": "post"},
    {"placement": "identity"},
    {"placement": "after_3x3"},
    {"squeeze": "max"},
    {"gate": "tanh"},
    {"gate": "relu"},
    {"gate": "hard_sigmoid"},
    {"shortcut": "A"},
    {"reduction": 4},
]


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_se_variants_equal_torch(options):
    model = models.create("se_resnet20", num_classes=5, width=8, seed=1, **options)
    _assert_close(_compare_step(model, (3, 3, 16, 16), seed=1))


@pytest.mark.parametrize("stride_on", ["1x1", "3x3"])
def test_bottleneck_stride_placements_equal_torch(stride_on):
    nn.init.manual_seed(2)
    model = cifar_resnet("se_bottleneck", 1, num_classes=4, width=4, block=nn.Bottleneck, stride_on=stride_on,
                         se={"reduction": 4})
    assert model.layer2[0].conv1.stride == ((2, 2) if stride_on == "1x1" else (1, 1))
    _assert_close(_compare_step(model, (3, 3, 16, 16), seed=2))


def test_senet154_stem_pool_and_kernel3_shortcut_equal_torch():
    """SENet-154's three-conv stem, the max pool and a kernel-3 shortcut conv, in a narrow network."""
    nn.init.manual_seed(4)
    stem, channels = imagenet._stem(3, three_conv=True)
    block = nn.BasicBlock(channels, 32, 2, downsample=nn.make_shortcut(channels, 32, 2, kernel_size=3),
                          se={"reduction": 8})
    model = ResNet("senet_stand_in", {"layer0": stem, "layer1": nn.Sequential(block),
                                      "avg_pool": nn.GlobalAvgPool(), "last_linear": nn.Linear(32, 4)}, 3)
    assert model.layer1[0].downsample[0].kernel_size == (3, 3)
    _assert_close(_compare_step(model, (2, 3, 32, 32), seed=4))


@pytest.mark.slow
def test_sgd_momentum_five_steps_equal_torch():
    model = models.create("se_resnet20", num_classes=10, width=8, seed=3).astype(np.float64)
    reference = to_torch(model)
    ours = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    theirs = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.standard_normal((8, 3, 16, 16))
        labels = rng.integers(0, 10, size=8)
        _, dlogits = ops.softmax_cross_entropy(model(x), labels)
        ours.zero_grad()
        model.backward(dlogits)
        ours.step()
        theirs.zero_grad()
        torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(labels)).backward()
        theirs.step()
    torch_state = reference.state_dict()
    errors = {n: _rel(v, torch_state[n]) for n, v in model.state_dict().items() if v.dtype == np.float64}
    _assert_close(errors, 1e-8)


def test_from_torch_round_trip():
    model = models.create("se_resnet20", num_classes=6, width=4, seed=5, gate="hard_sigmoid")
    back = from_torch(to_torch(model), "se_resnet20", width=4, gate="hard_sigmoid")
    assert back.last_linear.out_features == 6 and back.dtype == np.float32
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_from_torch_accepts_release_conv_se_weights_and_reports_mismatch():
    model = models.create("se_resnet20", num_classes=3, width=4, seed=6)
    reference = to_torch(model)
    state = reference.state_dict()
    state = {k: (v[:, :, None, None] if ".se_module.fc" in k and k.endswith("weight") else v)
             for k, v in state.items()}

    class Holder(torch.nn.Module):
        def __init__(self, tensors):
            super().__init__()
            self.tensors = tensors

        def state_dict(self, *args, **kwargs):
            return self.tensors

    back = from_torch(Holder(state), "se_resnet20", width=4)
    np.testing.assert_array_equal(back.layer1[0].se_module.fc1.weight.data,
                                  model.layer1[0].se_module.fc1.weight.data)
    with pytest.raises(ValueError, match="shape mismatches: layer0.conv1.weight: expected"):
        from_torch(reference, "se_resnet20", width=8)
    with pytest.raises(ValueError, match="from_torch: expected 'last_linear.weight' and a first conv"):
        from_torch(torch.nn.Linear(2, 2), "se_resnet20")


@pytest.mark.parametrize("name", ["se_vgg16_bn_cifar", "se_mobilenet_v1_cifar", "se_bn_inception_cifar"])
def test_from_torch_round_trip_of_the_exemplars(name):
    model = models.create(name, num_classes=7, seed=2)
    back = from_torch(to_torch(model), name)
    for (key, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=key)


def test_every_model_has_a_first_conv_the_loaders_know():
    from sescratch.interop.loading import FIRST_CONVS

    small = [n for n in models.list_models() if models.native_input_size(n) == (32, 32)
             or n in ("resnet18", "vgg16_bn", "bn_inception", "inception_resnet_v2", "mobilenet_v1",
                      "shufflenet_v1_g3")]
    for name in small:
        state = models.create(name, num_classes=3, init=False).state_dict()
        first = next(k for k, v in state.items() if np.ndim(v) == 4)
        assert first in FIRST_CONVS, name
