"""``sescratch export``: a checkpoint's input size, arguments checked before the work, every family.

Each family's graph must compute our forward in onnxruntime (float32, <= 1e-4 relative), as
tests/interop/test_onnx_export.py checks for the ResNets.
"""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from sescratch import models, nn  # noqa: E402
from sescratch.cli import main  # noqa: E402
from sescratch.interop.onnx_export import export_onnx, supported_opsets, to_onnx  # noqa: E402
from sescratch.models.parts import Flatten  # noqa: E402
from tests.interop.test_onnx_export import TOL, randomize_bn, run_onnx  # noqa: E402


def _relative_error(model, shape, seed=0):
    model = randomize_bn(model, seed).eval()
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    expected = np.asarray(model(x))
    got = run_onnx(to_onnx(model, shape[1:]), x)
    assert got.shape == expected.shape
    return np.abs(got - expected).max() / np.abs(expected).max()


@pytest.mark.parametrize("name, size", [
    ("bn_inception_cifar", 32), ("se_bn_inception_cifar", 32),
    ("inception_resnet_v2_cifar", 32), ("se_inception_resnet_v2_cifar", 32),
    ("shufflenet_v1_g3_cifar", 32), ("se_shufflenet_v1_g3_cifar", 28),
    ("bn_inception", 97),  # the ImageNet stem: ceil_mode pools on odd sizes
    ("se_shufflenet_v1_g3", 61),  # stride-2 units' padded average-pool shortcuts on odd sizes
    ("se_mobilenet_v1_cifar", 32), ("se_vgg16_bn_cifar", 32),
])
def test_the_families_beyond_resnet_match_onnxruntime(name, size):
    model = models.create(name, num_classes=10, seed=0)
    assert _relative_error(model, (2, 3, size, size)) <= TOL


@pytest.mark.parametrize("layer", [
    nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.AvgPool2d(3, 1, 1, ceil_mode=True),
    nn.ChannelShuffle(3), nn.ChannelShuffle(2),
])
def test_pooling_and_shuffle_layers_match_onnxruntime(layer):
    model = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), layer)
    assert _relative_error(model, (2, 3, 9, 11)) <= TOL


def test_vgg_flatten_matches_onnxruntime():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), Flatten(), nn.Linear(4 * 5 * 5, 6))
    assert _relative_error(model, (3, 3, 7, 7)) <= TOL


def test_every_family_builds_a_graph():
    """The families beyond the ResNets (whose exports test_onnx_export.py runs), at their default
    input (SE-VGG-16's 138 M weights left out: VGG-16's layers are its layers)."""
    from sescratch.interop.export_cli import _default_input

    skipped = ("resnet", "se_resnet", "resnext", "se_resnext", "senet", "se_vgg16_bn")
    for name in (n for n in models.list_models() if not n.startswith(skipped) or n == "se_vgg16_bn_cifar"):
        model = models.create(name, num_classes=10, init=False)
        to_onnx(model.eval(), _default_input(model))  # raises for a layer without an emitter


def test_inception_resnet_v2_defaults_to_its_299_input():
    from sescratch.interop.export_cli import _default_input

    for name in ("inception_resnet_v2", "se_inception_resnet_v2"):
        assert _default_input(models.create(name, num_classes=10, init=False)) == (3, 299, 299)
    assert _default_input(models.create("inception_resnet_v2_cifar", num_classes=10, init=False)) == (3, 32, 32)
    assert _default_input(models.create("se_resnet50", num_classes=10, init=False)) == (3, 224, 224)


def _checkpoint(tmp_path, **options):
    """A training checkpoint of a tiny SE-ResNet-20 (written by the library's save_checkpoint)."""
    from sescratch.train.checkpoint import save_checkpoint
    from sescratch.train.config import TrainConfig, build_model

    config = TrainConfig(model="se_resnet20", reduction=4, model_options={"width": 4}, pad_to=options.get("pad_to"),
                         seed=3)
    model = randomize_bn(build_model(config, 10, 1))
    meta = {"epoch": 1, "iteration": 0, "partial": None, "history": [], "best": None, "elapsed_s": 1.0,
            "normalization": {"mean": [0.29], "std": [0.35], "pad_to": options.get("pad_to")},
            "classes": [f"c{i}" for i in range(10)], "image_shape": [1, 28, 28]}
    path = save_checkpoint(tmp_path / "last.npz", model_state=model.state_dict(), optim_state={},
                           rng_state={"bit_generator": "PCG64"}, config=config.to_dict(), meta=meta)
    return model, path


@pytest.mark.parametrize("pad_to, side", [(None, 28), (32, 32)])
def test_a_checkpoint_exports_at_its_image_size(tmp_path, capsys, pad_to, side):
    model, ckpt = _checkpoint(tmp_path, pad_to=pad_to)
    out = tmp_path / "fm.onnx"
    assert main(["export", "se_resnet20", "--weights", str(ckpt), "--out", str(out)]) == 0
    assert f"input (N, 1, {side}, {side})" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((2, 1, side, side)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(out, x), model.eval()(x), rtol=1e-4, atol=1e-5)


def test_export_takes_pretrained_name_as_weights(tmp_path, capsys):
    from sescratch.train.pretrained import PRETRAINED, WEIGHTS_DIR

    if not (WEIGHTS_DIR / PRETRAINED["se_resnet20_fashion_mnist"]).is_file():
        pytest.skip("the shipped checkpoint is not installed")
    out = tmp_path / "shipped.onnx"
    assert main(["export", "se_resnet20", "--weights", "pretrained:se_resnet20_fashion_mnist",
                 "--out", str(out)]) == 0
    assert "input (N, 1, 28, 28)" in capsys.readouterr().out


def _no_model(*args, **kwargs):
    raise AssertionError("the model was built before the arguments were checked")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_num_classes_below_one_is_refused(tmp_path, capsys, monkeypatch, value):
    monkeypatch.setattr("sescratch.models.create", _no_model)
    out = tmp_path / "x.onnx"
    assert main(["export", "se_resnet20", "--num-classes", value, "--out", str(out)]) == 2
    assert f"--num-classes must be an integer >= 1, got {value}" in capsys.readouterr().err
    assert not out.exists()


def test_model_from_args_keeps_an_explicit_class_count():
    from types import SimpleNamespace

    from sescratch.errors import UsageError
    from sescratch.interop.cli import model_from_args

    model, _ = model_from_args(SimpleNamespace(weights=None, num_classes=7, model_option=None), "resnet20")
    assert model.last_linear.out_features == 7
    with pytest.raises(UsageError, match="got 0"):
        model_from_args(SimpleNamespace(weights=None, num_classes=0, model_option=None), "resnet20")


def test_opset_beyond_what_onnx_reads_is_refused(tmp_path, capsys, monkeypatch):
    newest = onnx.defs.onnx_opset_version()
    accepted = supported_opsets()
    assert accepted[0] == 17 and accepted[-1] <= newest
    resnet = models.create("resnet20", num_classes=10, init=False)
    monkeypatch.setattr("sescratch.models.create", _no_model)
    out = tmp_path / "x.onnx"
    for opset in (newest + 1, 99, 12):
        assert main(["export", "resnet20", "--num-classes", "10", "--out", str(out), "--opset", str(opset)]) == 2
        err = capsys.readouterr().err
        assert f"--opset {opset}: opset must be" in err and f"{accepted[0]} " in err and f"{accepted[-1]}" in err
    assert not out.exists()
    with pytest.raises(ValueError, match=f"between 17 and {accepted[-1]}"):
        to_onnx(resnet, (3, 32, 32), opset=99)


def test_the_newest_accepted_opset_loads_in_onnxruntime(tmp_path):
    model = randomize_bn(models.create("resnet20", num_classes=10)).eval()
    path = export_onnx(model, tmp_path / "new.onnx", (3, 32, 32), opset=supported_opsets()[-1])
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(path, x), model(x), rtol=1e-4, atol=1e-5)


def test_out_directory_or_path_under_a_file_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    resnet = models.create("resnet20", num_classes=10, init=False)
    monkeypatch.setattr("sescratch.models.create", _no_model)
    (tmp_path / "afile").write_text("x")
    cases = [(tmp_path, "is a directory; expected a file path"),
             (tmp_path / "afile" / "x.onnx", f"{tmp_path / 'afile'} is a file, not a directory")]
    for out, message in cases:
        assert main(["export", "resnet20", "--num-classes", "10", "--out", str(out)]) == 2
        assert f"--out {out}" in (err := capsys.readouterr().err) and message in err, err
    with pytest.raises(ValueError, match="is a directory"):
        export_onnx(resnet, tmp_path, (3, 32, 32))


def test_out_in_a_new_directory_is_created(tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "r20.onnx"
    assert main(["export", "resnet20", "--num-classes", "10", "--out", str(out), "--input", "3,32,32"]) == 0
    assert out.is_file()
