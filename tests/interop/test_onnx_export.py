"""ONNX export: the graph onnxruntime runs computes our forward (float32, <= 1e-4 relative)."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from sescratch import models, nn  # noqa: E402
from sescratch.cli import main  # noqa: E402
from sescratch.interop.onnx_export import export_onnx, to_onnx  # noqa: E402
from sescratch.interop.weights import save_weights  # noqa: E402

TOL = 1e-4


def randomize_bn(model, seed=0):
    """Non-trivial BN statistics and affine parameters, so BatchNormalization is really tested."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.normal(0, 0.1, c)
            m.running_mean[...] = rng.normal(0, 0.1, c)
            m.running_var[...] = rng.uniform(0.5, 2.0, c)
    return model


def run_onnx(proto_or_path, x):
    source = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") else str(proto_or_path)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def _check(model, shape, seed=0):
    model = randomize_bn(model, seed).eval()
    proto = to_onnx(model, shape[1:])
    assert proto.opset_import[0].version >= 17
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    expected = model(x)
    got = run_onnx(proto, x)
    assert got.shape == expected.shape
    rel = np.abs(got - expected).max() / np.abs(expected).max()
    assert rel <= TOL, f"onnxruntime differs from our forward by {rel:.2e}"


def test_se_resnet20_matches_onnxruntime():
    _check(models.create("se_resnet20", num_classes=10, seed=0), (3, 3, 32, 32))


def test_se_resnet50_matches_onnxruntime():
    _check(models.create("se_resnet50", num_classes=1000, seed=0), (1, 3, 64, 64))


@pytest.mark.parametrize("options", [
    {"placement": "pre", "shortcut": "A"},
    {"placement": "post", "squeeze": "max"},
    {"placement": "identity", "gate": "hard_sigmoid"},
    {"placement": "after_3x3", "gate": "tanh"},
])
def test_se_variants_match_onnxruntime(options):
    _check(models.create("se_resnet20", num_classes=10, seed=1, **options), (2, 3, 32, 32), seed=1)


def test_batch_dimension_is_symbolic(tmp_path):
    model = randomize_bn(models.create("resnet20", num_classes=10)).eval()
    path = export_onnx(model, tmp_path / "r20.onnx", (3, 32, 32))
    for n in (1, 4):
        x = np.random.default_rng(n).standard_normal((n, 3, 32, 32)).astype(np.float32)
        np.testing.assert_allclose(run_onnx(path, x), model(x), rtol=1e-4, atol=1e-5)


def test_low_opset_is_refused():
    with pytest.raises(ValueError, match="opset must be >= 17"):
        to_onnx(models.create("resnet20", num_classes=10), (3, 32, 32), opset=13)


def test_export_command(tmp_path, capsys):
    model = randomize_bn(models.create("se_resnet20", num_classes=10, seed=2))
    weights = save_weights(model, tmp_path / "w.npz")
    out = tmp_path / "se20.onnx"
    assert main(["export", "se_resnet20", "--weights", str(weights), "--format", "onnx",
                 "--out", str(out), "--input", "3,32,32"]) == 0
    assert "wrote" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(out, x), model.eval()(x), rtol=1e-4, atol=1e-5)


def test_export_command_bad_input_shape(tmp_path, capsys):
    code = main(["export", "se_resnet20", "--num-classes", "10", "--out", str(tmp_path / "x.onnx"),
                 "--input", "1,32,32"])
    assert code == 2 and "--input 1,32,32" in capsys.readouterr().err


@pytest.mark.parametrize("name, size", [("se_mobilenet_v1", 224), ("mobilenet_v1_cifar", 32), ("se_resnet50", 224),
                                        ("resnet56", 32), ("se_shufflenet_v1_g3", 224), ("bn_inception_cifar", 32),
                                        ("se_inception_resnet_v2", 299), ("inception_resnet_v2_cifar", 32)])
def test_export_default_input_is_the_models_native_size(name, size):
    from sescratch.interop.export_cli import _default_input

    assert models.native_input_size(name) == (size, size)
    assert _default_input(models.create(name, num_classes=10, init=False)) == (3, size, size)
