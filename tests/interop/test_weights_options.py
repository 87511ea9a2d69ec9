"""What the tensors cannot tell travels with them: the architecture options ``save_weights``
records, a training run's defaults, Cadene's background class, torchvision's VGG names.

* ``save_weights`` of a model records its name and the options that change no shape (``gate``,
  ``stride_on``, ``stem_pool``, ...), in ``.npz`` and ``.safetensors``; ``create(weights=)``
  rebuilds that network and refuses a contradicting option; files without the record load as
  before.
* a training checkpoint compares every architecture option, those its run left at the default too.
* Cadene's Inception-ResNet-v2 file (1001 classifier rows, row 0 "background") gives 1000 classes.
* torchvision's ``vgg16_bn`` names (``classifier.0/3/6``) load, checked against an independent
  PyTorch VGG-16-BN in float64.
"""
import json

import numpy as np
import pytest

from sescratch import models
from sescratch.interop.loading import load_pretrained
from sescratch.interop.naming import detect_naming, file_key, to_sescratch
from sescratch.interop.weights import (WeightsError, model_architecture, read_saved_options, read_weights,
                                       save_weights)


def _suffix(suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    return suffix


def _same_outputs(a, b, shape=(2, 3, 32, 32), seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    np.testing.assert_allclose(a.astype(np.float64).eval()(x), b.astype(np.float64).eval()(x), rtol=1e-12, atol=1e-12)


# -- 1. save_weights records the architecture -------------------------------------------------

SILENT = {"gate": "hard_sigmoid", "squeeze": "max", "placement": "identity"}  # same tensors, other numbers
TOLD_BY_SHAPES = {"shortcut": "A", "reduction": 4}  # before: an error listing the missing / mis-shaped keys


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
@pytest.mark.parametrize("options", [SILENT, {**SILENT, **TOLD_BY_SHAPES}], ids=["shapeless", "with-shapes"])
def test_architecture_options_survive_save_and_load(tmp_path, suffix, options):
    """Before the record, the shapeless options reloaded as the default network (sigmoid gate,
    avg squeeze, standard placement): the same tensors, other numbers, no warning."""
    model = models.create("se_resnet20", num_classes=10, seed=2, **options)
    path = save_weights(model, tmp_path / f"w{_suffix(suffix)}")
    back = models.create("se_resnet20", weights=path)
    _same_outputs(model, back)
    recorded = {"reduction": 16, "shortcut": "B", **options}
    assert model_architecture(back) == recorded
    assert read_saved_options(path) == ("se_resnet20", recorded)
    _, report = load_pretrained("se_resnet20", path)
    assert report.saved_from == "se_resnet20" and report.options == recorded
    assert "architecture of the file's record (se_resnet20): " in str(report)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_imagenet_options_are_recorded_resolved(tmp_path, suffix):
    """``stride_on`` and ``stem_pool`` change no tensor's shape; the default ``stride_on=None``
    is recorded as what it built ("1x1" in an SE-ResNet)."""
    asked = {"stride_on": "3x3", "stem_pool": "pad", "se_divisor": 8, "gate": "tanh"}
    model = models.create("se_resnet50", num_classes=5, seed=1, **asked)
    path = save_weights(model, tmp_path / f"w{_suffix(suffix)}")
    back = models.create("se_resnet50", weights=path)
    _same_outputs(model, back, shape=(1, 3, 65, 63))
    assert back.layer2[0].stride_on == "3x3" and back.layer0.pool.padding == (1, 1)
    model_name, options = read_saved_options(path)
    assert model_name == "se_resnet50"
    # 256 / 16 ... 2048 / 16 are multiples of 8 already: the same widths as C // r, recorded None
    assert options == {"reduction": 16, "placement": "standard", "squeeze": "avg", "gate": "tanh",
                       "stride_on": "3x3", "stem_pool": "pad", "se_divisor": None}
    default = models.create("se_resnet50", num_classes=5, seed=1)
    assert model_architecture(default)["stride_on"] == "1x1"
    assert model_architecture(default)["stem_pool"] == "ceil"


def test_a_contradicting_option_is_refused_naming_the_record(tmp_path):
    model = models.create("se_resnet20", num_classes=10, gate="tanh")
    path = save_weights(model, tmp_path / "w.npz")
    with pytest.raises(WeightsError, match=r"recorded by save_weights for se_resnet20\) need gate='tanh', "
                                           r"but gate='sigmoid' was asked for"):
        models.create("se_resnet20", weights=path, gate="sigmoid")
    assert model_architecture(models.create("se_resnet20", weights=path, gate="tanh"))["gate"] == "tanh"


def test_only_the_options_the_loaded_model_accepts_apply(tmp_path):
    """A plain ResNet-50's file starts an SE-ResNet-50 (``init_missing``): its stride and stem
    options apply, and the SE options of the SE model keep their defaults."""
    plain = models.create("resnet50", num_classes=3, init=False, stride_on="3x3", stem_pool="pad")
    path = save_weights(plain, tmp_path / "resnet50.npz")
    assert read_saved_options(path) == ("resnet50", {"stride_on": "3x3", "stem_pool": "pad"})
    model, report = load_pretrained("se_resnet50", path, init_missing=True)
    assert report.options == {"stride_on": "3x3", "stem_pool": "pad"}
    assert model_architecture(model)["stride_on"] == "3x3" and len(report.new_keys) == 64


@pytest.mark.parametrize("name, options, shape_options", [
    ("se_mobilenet_v1_cifar", {"gate": "tanh", "squeeze": "max", "reduction": 8}, {}),
    ("se_vgg16_bn_cifar", {"gate": "relu", "squeeze": "avg", "reduction": 16}, {"width": 4}),
    ("vgg16_bn_cifar", {}, {"width": 4}),
])
def test_every_family_records_its_se_options(tmp_path, name, options, shape_options):
    """The exemplars record their SE options (no ``placement``: each family fixes it); options
    the shapes tell (``width``) are not recorded and still go with the call."""
    model = models.create(name, num_classes=4, **options, **shape_options)
    path = save_weights(model, tmp_path / "w.npz")
    assert read_saved_options(path) == (name, options)
    _same_outputs(model, load_pretrained(name, path, **shape_options)[0])


def test_files_without_the_record_load_as_before(tmp_path):
    """A bare state_dict records nothing (and an older file has no record): the defaults apply,
    exactly as before; the record is never taken for a tensor."""
    model = models.create("se_resnet20", num_classes=10, gate="tanh", seed=4)
    bare = save_weights(model.state_dict(), tmp_path / "bare.npz")
    legacy = tmp_path / "legacy.npz"
    np.savez(legacy, **model.state_dict())
    for path in (bare, legacy):
        assert read_saved_options(path) is None
        back, report = load_pretrained("se_resnet20", path)
        assert report.options == {} and not report.saved_from
        assert model_architecture(back)["gate"] == "sigmoid"  # what such a file always gave
    recorded = save_weights(model, tmp_path / "recorded.npz")
    assert set(read_weights(recorded)) == set(model.state_dict())  # no '__sescratch__' tensor


def test_the_safetensors_record_is_header_metadata_torch_users_do_not_see(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors import safe_open

    model = models.create("se_resnet20", num_classes=10, squeeze="max")
    path = save_weights(model, tmp_path / "w.safetensors")
    with safe_open(str(path), framework="np") as f:
        record = json.loads(f.metadata()["sescratch"])
        assert set(f.keys()) == set(model.state_dict())
    assert record["format"] == 1 and record["model"] == "se_resnet20" and record["options"]["squeeze"] == "max"
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    tensors = load_file(str(path))  # what a PyTorch user gets: tensors only
    assert all(isinstance(v, torch.Tensor) for v in tensors.values()) and len(tensors) == len(model.state_dict())


def test_an_unreadable_record_says_so(tmp_path):
    model = models.create("se_resnet20", num_classes=10)
    path = tmp_path / "w.npz"
    np.savez(path, **model.state_dict(), __sescratch__=np.array("{not json"))
    with pytest.raises(WeightsError, match=r"w.npz: its sescratch record .* cannot be read .*'\{not json'"):
        load_pretrained("se_resnet20", path)
    np.savez(path, **model.state_dict(), __sescratch__=np.array(json.dumps({"format": 99, "model": "x",
                                                                             "options": {}})))
    with pytest.raises(WeightsError, match="expected format 1"):
        read_saved_options(path)


def test_save_weights_refuses_pth_and_says_what_to_write_instead(tmp_path):
    with pytest.raises(WeightsError, match=r"\.npz or \.safetensors, got '\.pth' .*safetensors\.torch\.load_file"):
        save_weights(models.create("se_resnet20", num_classes=10), tmp_path / "w.pth")


def test_timm_weights_saved_and_reloaded_compute_what_timm_computes(tmp_path):
    """The review's case, at ResNet-18 size: timm's SE-ResNet-18 (stem pool padded, SE widths
    rounded up to 8) loaded, saved by us, reloaded: the same logits as the PyTorch network in
    float64. Before the record the reload built ``C // r`` widths and the default stem pool."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from tests.interop.release_senet import randomize
    from tests.interop.zoo_resnet import ZooResNet

    net = randomize(ZooResNet("resnet18", num_classes=7, se=True), 5)
    torch.save(net.state_dict(), tmp_path / "timm.pth")
    loaded, report = load_pretrained("se_resnet18", tmp_path / "timm.pth")
    assert report.naming == "timm"
    path = save_weights(loaded, tmp_path / "resaved.safetensors")
    back = models.create("se_resnet18", weights=path)
    x = np.random.default_rng(1).standard_normal((2, 3, 65, 63))
    with torch.no_grad():
        expected = net.double().eval()(torch.from_numpy(x)).numpy()
    got = back.astype(np.float64).eval()(x)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-10
    assert read_saved_options(path)[1] == {"reduction": 16, "placement": "standard", "squeeze": "avg",
                                           "gate": "sigmoid", "stem_pool": "pad", "se_divisor": 8}


# -- 2. a training run's defaults are compared too --------------------------------------------

def _checkpoint(tmp_path, model_name, model, **config_fields):
    from sescratch.train import TrainConfig
    from sescratch.train.checkpoint import save_checkpoint

    config = TrainConfig(model=model_name, dataset="cifar10", **config_fields)
    return save_checkpoint(tmp_path / "last.npz", model_state=model.state_dict(), optim_state={},
                           rng_state={"a": 1}, config=config.to_dict(), meta={"epoch": 1})


def test_an_option_the_run_left_at_its_default_is_compared(tmp_path):
    """Before: ``gate="tanh"`` on a checkpoint of a sigmoid run was accepted (and computed another
    network), while ``gate="sigmoid"`` on a tanh run was refused."""
    trained = models.create("se_resnet20", num_classes=10, seed=3, reduction=4)
    path = _checkpoint(tmp_path, "se_resnet20", trained, reduction=4)
    for option in ({"gate": "tanh"}, {"squeeze": "max"}, {"placement": "pre"}, {"shortcut": "A"}):
        key, value = next(iter(option.items()))
        with pytest.raises(WeightsError, match=rf"the training run's default for se_resnet20\) need "
                                               rf"{key}='\w+', but {key}='{value}' was asked for"):
            load_pretrained("se_resnet20", path, **option)
    model, report = load_pretrained("se_resnet20", path, gate="sigmoid")  # the run's own value: fine
    assert report.from_run and report.options == {"reduction": 4}  # built with what the run set
    _same_outputs(model, trained)


def test_the_command_line_path_refuses_it_too(tmp_path):
    from sescratch.interop.cli import weights_for_training
    from sescratch.train import TrainConfig

    path = _checkpoint(tmp_path, "se_resnet20", models.create("se_resnet20", num_classes=10, init=False))
    config = TrainConfig(model="se_resnet20", dataset="cifar10", model_options={"gate": "tanh"})
    with pytest.raises(WeightsError, match="training run's default.*need gate='sigmoid', but gate='tanh'"):
        weights_for_training(config, path)


def test_a_default_that_depends_on_the_model_is_compared_as_built(tmp_path):
    """``stride_on=None`` is "1x1" in an SE-ResNet-50: asking "1x1" agrees with the run, "3x3" not."""
    trained = models.create("se_resnet50", num_classes=10, init=False)
    path = _checkpoint(tmp_path, "se_resnet50", trained)
    load_pretrained("se_resnet50", path, stride_on="1x1", stem_pool="ceil")
    with pytest.raises(WeightsError, match="need stride_on='1x1', but stride_on='3x3' was asked for"):
        load_pretrained("se_resnet50", path, stride_on="3x3")


# -- 3. Cadene's Inception-ResNet-v2: the background row ----------------------------------------

@pytest.fixture(scope="module")
def cadene_irv2(tmp_path_factory):
    """An ``inceptionresnetv2-520b38e4.pth``-shaped file: 1001 rows, row 0 the background class
    (written as .npz: the rows are the point here, not the format; read_weights is tested elsewhere)."""
    model = models.create("inception_resnet_v2", num_classes=1001, seed=6)
    path = tmp_path_factory.mktemp("irv2") / "inceptionresnetv2.npz"
    save_weights(model.state_dict(), path)
    return model, path


@pytest.mark.slow
def test_the_background_row_is_dropped_for_1000_classes(cadene_irv2):
    full, path = cadene_irv2
    x = np.random.default_rng(0).standard_normal((1, 3, 107, 107))
    expected = full.astype(np.float64).eval()(x)[:, 1:]  # the file's network, without "background"
    for kwargs in ({}, {"num_classes": 1000}, {"num_classes": 1000, "init_missing": True}):
        model, report = load_pretrained("inception_resnet_v2", path, **kwargs)
        assert model.last_linear.weight.shape[0] == 1000 and not report.new_keys, kwargs
        assert "row 0 the background class" in str(report) and "dropped" in str(report)
        # the same numbers up to the summation order of a 1000- vs 1001-row matrix product
        np.testing.assert_allclose(model.astype(np.float64).eval()(x), expected, rtol=1e-12, atol=1e-12)
    model, report = load_pretrained("inception_resnet_v2", path, num_classes=1001)
    assert model.last_linear.weight.shape[0] == 1001 and not report.notes


@pytest.mark.slow
def test_another_class_count_still_gets_the_init_missing_hint(cadene_irv2):
    _, path = cadene_irv2
    with pytest.raises(WeightsError, match=r"last_linear.weight is \(1001, 1536\) in the file, \(10, 1536\) "
                                           r"in the model.*init_missing=True"):
        load_pretrained("inception_resnet_v2", path, num_classes=10)
    _, report = load_pretrained("inception_resnet_v2", path, num_classes=10, init_missing=True)
    assert report.new_keys == ["last_linear.weight", "last_linear.bias"] and not report.notes


def test_a_1001_row_file_of_another_model_keeps_its_rows(tmp_path):
    model = models.create("se_resnet20", num_classes=1001, init=False)
    path = save_weights(model, tmp_path / "w.npz")
    back, report = load_pretrained("se_resnet20", path)
    assert back.last_linear.weight.shape[0] == 1001 and not report.notes


# -- 4. torchvision's VGG-16-BN names ---------------------------------------------------------

TORCHVISION_CLASSIFIER = {"classifier.0": "linear0", "classifier.3": "linear1", "classifier.6": "last_linear"}


def _torchvision_name(ours: str) -> str:
    for theirs, mine in TORCHVISION_CLASSIFIER.items():
        if ours.startswith(mine + "."):
            return theirs + ours[len(mine):]
    return ours


def test_torchvision_vgg_names_are_detected_and_mapped():
    """Every key of our ``vgg16_bn`` under torchvision's name maps back to it (shapes aside: this
    is the naming alone; the numbers are checked against PyTorch below)."""
    ours = list(models.create("vgg16_bn", num_classes=1000, init=False).state_dict())
    theirs = {_torchvision_name(k): np.zeros(1) for k in ours}
    assert "classifier.6.weight" in theirs and "features.41.running_var" in theirs
    assert detect_naming(theirs) == "torchvision_vgg"
    assert list(to_sescratch(theirs, "torchvision_vgg")) == ours
    assert [file_key(k, "torchvision_vgg") for k in ours] == list(theirs)
    assert detect_naming({k: np.zeros(1) for k in ours}) == "sescratch"  # Cadene's port: ours already


def _torch_vgg16_bn(torch, num_classes):
    """VGG-16-BN written from the paper and torchvision's layout (``features``: conv, BN, ReLU per
    conv, max pool per block; ``avgpool`` to 7x7; ``classifier``: FC, ReLU, dropout x2, FC)."""
    nn = torch.nn
    layers, channels = [], 3
    for width, convs in zip((64, 128, 256, 512, 512), (2, 2, 3, 3, 3)):
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.MaxPool2d(2, 2))

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                                            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                                            nn.Linear(4096, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return VGG()


@pytest.mark.slow  # 138 M parameters at 224x224, the only size vgg16_bn takes (its first FC reads 512x7x7)
def test_torchvision_vgg16_bn_loads_and_computes_the_same(tmp_path):
    torch = pytest.importorskip("torch")
    from tests.interop.release_senet import randomize

    net = randomize(_torch_vgg16_bn(torch, num_classes=10), 7).eval()
    state = net.state_dict()
    path = tmp_path / "vgg16_bn.pth"
    torch.save(state, path)
    model, report = load_pretrained("vgg16_bn", path)
    assert report.naming == "torchvision_vgg" and report.loaded == len(state) and not report.new_keys
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224))
    with torch.no_grad():
        expected = net.double()(torch.from_numpy(x)).numpy()
    got = model.astype(np.float64).eval()(x)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-10
    del state["classifier.6.bias"]
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"torchvision VGG .* naming\) do not fit vgg16_bn: 1 missing: "
                                           r"classifier\.6\.bias"):
        load_pretrained("vgg16_bn", path)


def test_zero_classes_or_channels_with_weights_is_refused_not_replaced(tmp_path):
    from sescratch import models
    from sescratch.interop.weights import save_weights

    path = save_weights(models.create("se_resnet20", num_classes=10, width=4), tmp_path / "w.npz")
    for option in ("num_classes", "in_channels"):
        with pytest.raises(ValueError, match=rf"{option} must be a positive int, got 0"):
            models.create("se_resnet20", weights=str(path), **{option: 0})
