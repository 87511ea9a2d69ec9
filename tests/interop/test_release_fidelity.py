"""Every SE model of the SENet release computes what the release computes, layer for layer.

The release is defined independently in :mod:`tests.interop.release_senet` (PyTorch). Random
weights with non-trivial BN statistics go through the release's naming (``layer0.conv1``, SE FCs
as 1x1 convs) and our loader; in float64 and eval mode the logits agree to 1e-10 relative.
Equal parameter counts alone would not catch the stem's pooling (``ceil_mode``) or a stride on
the wrong conv: each of those moves the logits by percents.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sescratch import models  # noqa: E402
from sescratch.interop.loading import load_pretrained, load_state  # noqa: E402
from sescratch.interop.naming import detect_naming, to_sescratch  # noqa: E402
from tests.interop.release_senet import RELEASE, ReleaseSENet, randomize  # noqa: E402

pytestmark = pytest.mark.slow  # ImageNet-size models against the release: CI runs them; the fast loop (-m 'not slow') does not

TOL = 1e-10


def release_state(net) -> dict:
    return {k: v.detach().numpy() for k, v in net.state_dict().items()}


def ours_from_release(name, net):
    state = release_state(net)
    assert detect_naming(state) == "release"
    model = models.create(name, num_classes=net.last_linear.out_features, init=False).astype(np.float64)
    load_state(model, to_sescratch(state, "release"), naming="release")
    return model.eval()


def _rel(ours, theirs) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def _compare(name, shape, final_pool, seed=0):
    net = randomize(ReleaseSENet(name, num_classes=1000, final_pool=final_pool), seed).double().eval()
    model = ours_from_release(name, net)
    x = np.random.default_rng(seed).standard_normal(shape)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    got = model(x)
    assert np.isfinite(expected).all() and expected.std() > 1e-3  # the comparison means something
    assert _rel(got, expected) < TOL, f"{name}: logits differ from the release by {_rel(got, expected):.2e}"
    assert model.num_parameters() == sum(p.numel() for p in net.parameters())


# 64x64 input: the last map is 2x2, the release's 7x7 head pool becomes 2x2 (the whole map, as at 224)
@pytest.mark.parametrize("name", [
    "se_resnet50",
    "se_resnext50_32x4d",
    pytest.param("se_resnet101", marks=pytest.mark.slow),
    pytest.param("se_resnet152", marks=pytest.mark.slow),
    pytest.param("se_resnext101_32x4d", marks=pytest.mark.slow),
    pytest.param("senet154", marks=pytest.mark.slow),
])
def test_release_models_equal_the_release(name):
    _compare(name, (1, 3, 64, 64), final_pool=2)


@pytest.mark.slow
def test_se_resnet50_equals_the_release_at_224():
    """The release exactly as published: 224x224 input, its ``AvgPool2d(7, stride=1)`` head."""
    _compare("se_resnet50", (1, 3, 224, 224), final_pool=7, seed=1)


def test_odd_input_size_pools_like_the_release():
    """ceil_mode: the 7x7/2 conv maps 66 rows to 33, pooled to 16 (padding 1 would give 17)."""
    net = randomize(ReleaseSENet("se_resnet50", num_classes=10), 2).double().eval()
    model = ours_from_release("se_resnet50", net)
    x = np.random.default_rng(2).standard_normal((2, 3, 66, 90))
    with torch.no_grad():
        stem = net.layer0(torch.from_numpy(x))
        feats = net.layer4(net.layer3(net.layer2(net.layer1(stem))))
        expected = net.last_linear(feats.mean((2, 3))).numpy()  # the head's pool over the whole map
    assert tuple(stem.shape[2:]) == (16, 22)
    assert model.output_shape(x.shape) == (2, 10)
    assert _rel(model(x), expected) < TOL


def test_release_file_without_batch_counters_loads(tmp_path):
    """The release's .pth files predate ``num_batches_tracked``: they load, the counters start at 0."""
    net = randomize(ReleaseSENet("se_resnext50_32x4d", num_classes=1000, final_pool=2), 3).eval()
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "se_resnext50_32x4d-a260b3a4.pth"
    torch.save(state, path)
    model, report = load_pretrained("se_resnext50_32x4d", path)
    assert report.naming == "release" and not report.new_keys
    assert model.last_linear.out_features == 1000
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert _rel(model.eval()(x), expected) < 1e-4  # float32 both sides


def test_every_release_model_is_covered():
    assert set(RELEASE) <= set(models.list_models())
