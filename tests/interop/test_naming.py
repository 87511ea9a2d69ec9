"""Key namings detected and mapped: ours, the release's, torchvision's, timm's; every error listed.

torchvision and timm networks (independent definitions in :mod:`tests.interop.zoo_resnet`) load
into the matching variant of our models (stride on the 3x3, stem pool padded by 1, timm's rounded
SE widths) and compute the same logits in float64.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sescratch import models  # noqa: E402
from sescratch.interop.loading import load_pretrained  # noqa: E402
from sescratch.interop.naming import detect_naming, file_key, to_sescratch  # noqa: E402
from sescratch.interop.weights import WeightsError  # noqa: E402
from tests.interop.release_senet import randomize  # noqa: E402
from tests.interop.zoo_resnet import ZooResNet, timm_se_width  # noqa: E402

pytestmark = pytest.mark.slow  # builds and loads ImageNet-size models: CI runs them; the fast loop (-m 'not slow') does not

TOL = 1e-10


def save(net, path):
    torch.save(net.state_dict(), path)
    return path


def _logits_agree(net, model, shape=(2, 3, 64, 64), seed=0, tol=TOL):
    x = np.random.default_rng(seed).standard_normal(shape)
    with torch.no_grad():
        expected = net.double().eval()(torch.from_numpy(x)).numpy()
    got = model.astype(np.float64).eval()(x)
    rel = np.abs(got - expected).max() / np.abs(expected).max()
    assert rel < tol, f"logits differ by {rel:.2e}"


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_torchvision_resnets_load_and_compute_the_same(tmp_path, name):
    net = randomize(ZooResNet(name, num_classes=1000), 1)
    model, report = load_pretrained(name, save(net, tmp_path / f"{name}.pth"))
    assert report.naming == "torchvision" and not report.new_keys
    assert report.options.get("stem_pool") == "pad"
    if name != "resnet18":
        assert report.options["stride_on"] == "3x3"
    _logits_agree(net, model, shape=(2, 3, 65, 63))  # odd sizes: padded stem pool, not ceil_mode


@pytest.mark.parametrize("name, ours", [
    ("resnet18", "se_resnet18"),
    pytest.param("resnet50", "se_resnet50", marks=pytest.mark.slow),
])
def test_timm_seresnet_loads_with_rounded_se_widths(tmp_path, name, ours):
    net = randomize(ZooResNet(name, num_classes=1000, se=True), 2)
    state = net.state_dict()
    assert detect_naming({k: v.numpy() for k, v in state.items()}) == "timm"
    model, report = load_pretrained(ours, save(net, tmp_path / f"se{name}.pth"))
    assert report.naming == "timm"
    for block_name, se in ((n, m.se_module) for n, m in model.named_modules() if getattr(m, "se_module", None)):
        assert se.hidden == timm_se_width(se.channels), block_name
    assert report.options["se_divisor"] == 8
    if name == "resnet18":
        assert model.layer1[0].se_module.hidden == 8  # 64 / 16 = 4, rounded up to timm's 8
    _logits_agree(net, model)


def test_plain_resnet_initialises_an_se_resnet_with_init_missing(tmp_path):
    net = randomize(ZooResNet("resnet50", num_classes=1000), 3)
    path = save(net, tmp_path / "resnet50.pth")
    with pytest.raises(WeightsError) as info:
        load_pretrained("se_resnet50", path)
    message = str(info.value)
    assert "torchvision" in message and "64 missing" in message and "layer4.2.se.fc2.bias" in message
    assert "--init-missing" in message

    model, report = load_pretrained("se_resnet50", path, init_missing=True)
    assert len(report.new_keys) == 64 and all(".se_module." in k for k in report.new_keys)
    assert "freshly initialised" in str(report)
    theirs = to_sescratch({k: v.numpy() for k, v in net.state_dict().items()}, "torchvision")
    ours = model.state_dict()
    for key, value in theirs.items():  # every backbone tensor copied
        np.testing.assert_array_equal(ours[key], value.astype(ours[key].dtype), err_msg=key)
    fc1 = model.layer1[0].se_module.fc1.weight.data
    assert np.abs(fc1).max() > 0  # SE blocks initialised, not left at zero


def test_errors_list_every_unexpected_and_misshaped_key(tmp_path):
    net = randomize(ZooResNet("resnet18", num_classes=10), 4)
    state = net.state_dict()
    state["extra.weight"] = torch.zeros(3)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    del state["layer2.1.bn2.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as info:
        load_pretrained("resnet18", tmp_path / "bad.pth")
    message = str(info.value)
    for part in ("torchvision ResNet", "1 missing: layer2.1.bn2.bias", "1 unexpected: extra.weight",
                 "layer1.0.conv1.weight is (64, 64, 1, 1) in the file, (64, 64, 3, 3) in the model"):
        assert part in message


def test_wrong_model_for_the_weights_is_a_clear_error(tmp_path):
    net = randomize(ZooResNet("resnet18", num_classes=10), 5)
    with pytest.raises(WeightsError, match=r"do not fit resnet34: \d+ missing"):
        load_pretrained("resnet34", save(net, tmp_path / "resnet18.pth"))


def test_contradicting_option_is_refused(tmp_path):
    net = randomize(ZooResNet("resnet50", num_classes=10), 6)
    with pytest.raises(WeightsError, match="stride_on='3x3'"):
        load_pretrained("resnet50", save(net, tmp_path / "r50.pth"), stride_on="1x1")


def test_timm_widths_of_another_rule_are_an_error_not_a_reshape(tmp_path):
    net = randomize(ZooResNet("resnet18", num_classes=10, se=True), 7)
    state = net.state_dict()
    state["layer1.0.se.fc1.weight"] = torch.zeros(4, 64, 1, 1)  # C // 16, not timm's rounding
    state["layer1.0.se.fc1.bias"] = torch.zeros(4)
    state["layer1.0.se.fc2.weight"] = torch.zeros(64, 4, 1, 1)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(WeightsError, match=r"3 mis-shaped: layer1.0.se.fc1.weight is \(4, 64, 1, 1\) in the file, "
                                           r"\(8, 64, 1, 1\) in the model"):
        load_pretrained("se_resnet18", tmp_path / "odd.pth")


def test_timm_deep_stem_is_named_not_guessed():
    state = {"conv1.0.weight": np.zeros((32, 3, 3, 3)), "layer1.0.conv1.weight": np.zeros((64, 64, 1, 1))}
    with pytest.raises(ValueError, match="deep-stem"):
        detect_naming(state)


def test_our_own_npz_loads_back(tmp_path):
    from sescratch.interop.weights import save_weights

    model = models.create("se_resnext50_32x4d", num_classes=7, seed=1)
    path = save_weights(model, tmp_path / "ours.npz")
    loaded, report = load_pretrained("se_resnext50_32x4d", path)
    assert report.naming == "sescratch" and loaded.last_linear.out_features == 7
    got = loaded.state_dict()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(got[key], value)


def test_file_keys_in_messages_use_the_files_naming():
    assert file_key("layer0.conv1.weight", "torchvision") == "conv1.weight"
    assert file_key("last_linear.bias", "timm") == "fc.bias"
    assert file_key("layer3.1.se_module.fc1.weight", "timm") == "layer3.1.se.fc1.weight"
    assert file_key("layer3.1.se_module.fc1.weight", "release") == "layer3.1.se_module.fc1.weight"


def test_bn_inception_port_naming_maps_onto_our_modules(tmp_path):
    """Cadene's ``bninception`` names every conv flat and its BN ``<conv>_bn``; ours nest them."""
    from sescratch.interop.naming import NAMINGS

    model = models.create("bn_inception", num_classes=1000, seed=2)
    expected = {
        "conv1_7x7_s2.weight": "conv1_7x7_s2.conv.weight",
        "conv1_7x7_s2_bn.running_var": "conv1_7x7_s2.bn.running_var",
        "conv2_3x3_reduce_bn.bias": "conv2_3x3_reduce.bn.bias",
        "inception_3a_1x1.weight": "inception_3a.branch_1x1.conv.weight",
        "inception_3a_3x3_reduce_bn.weight": "inception_3a.branch_3x3.reduce.bn.weight",
        "inception_3a_3x3.bias": "inception_3a.branch_3x3.conv.conv.bias",
        "inception_3c_double_3x3_reduce.weight": "inception_3c.branch_double_3x3.reduce.conv.weight",
        "inception_4e_double_3x3_2_bn.running_mean": "inception_4e.branch_double_3x3.conv2.bn.running_mean",
        "inception_5b_pool_proj.weight": "inception_5b.branch_pool.proj.conv.weight",
        "last_linear.bias": "last_linear.bias",
    }
    ours = model.state_dict()
    for theirs, key in expected.items():
        assert file_key(key, "bninception") == theirs
    port = {file_key(k, "bninception"): torch.from_numpy(np.array(v)) for k, v in ours.items()
            if not k.endswith("num_batches_tracked")}  # the port's file, written from 2017 PyTorch
    assert set(expected) <= set(port)
    torch.save(port, tmp_path / "bn_inception-52deb4733.pth")
    loaded, report = load_pretrained("bn_inception", tmp_path / "bn_inception-52deb4733.pth")
    assert report.naming == "bninception" and "BN-Inception" in NAMINGS[report.naming]
    got = loaded.state_dict()
    for key, value in ours.items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_inception_resnet_v2_port_names_are_ours(tmp_path):
    """Cadene's ``inceptionresnetv2`` names (conv2d_1a.conv, mixed_5b.branch0.bn, repeat.0.conv2d,
    block8, last_linear) are the model's own: the file loads as is."""
    model = models.create("inception_resnet_v2", num_classes=1000, init=False)
    keys = set(model.state_dict())
    for key in ("conv2d_1a.conv.weight", "conv2d_1a.bn.running_mean", "mixed_5b.branch0.conv.weight",
                "mixed_5b.branch3.1.bn.bias", "repeat.0.branch2.2.conv.weight", "repeat.0.conv2d.bias",
                "mixed_6a.branch1.2.bn.weight", "repeat_1.19.conv2d.weight", "repeat_2.8.conv2d.weight", "block8.conv2d.weight",
                "conv2d_7b.bn.running_var", "last_linear.weight"):
        assert key in keys, key
