"""The Module contract: names, state_dict round trip and its errors, modes, dtypes, devices."""
import numpy as np
import pytest

from sescratch import backend, models, nn


@pytest.fixture(autouse=True)
def _numpy_kernels():
    with backend.use("numpy"):
        yield


def _small(**options):
    return models.create("se_resnet20", num_classes=4, width=4, **options)


def test_pytorch_dotted_names():
    model = _small()
    names = [n for n, _ in model.named_parameters()]
    assert names[:3] == ["layer0.conv1.weight", "layer0.bn1.weight", "layer0.bn1.bias"]
    assert "layer1.0.se_module.fc1.weight" in names and "layer2.0.downsample.0.weight" in names
    assert names[-2:] == ["last_linear.weight", "last_linear.bias"]
    buffers = [n for n, _ in model.named_buffers()]
    assert buffers[:3] == ["layer0.bn1.running_mean", "layer0.bn1.running_var", "layer0.bn1.num_batches_tracked"]
    modules = dict(model.named_modules())
    assert modules[""] is model and isinstance(modules["layer3.2.se_module"], nn.SEBlock)
    assert set(model.state_dict()) == set(names) | set(buffers)


def test_parameters_default_float32_and_no_decay_rule():
    model = _small()
    assert all(p.data.dtype == np.float32 and p.grad.shape == p.data.shape for p in model.parameters())
    no_decay = {n for n, p in model.named_parameters() if p.data.ndim <= 1}
    assert "layer0.bn1.weight" in no_decay and "layer1.0.se_module.fc1.bias" in no_decay
    assert "layer1.0.conv1.weight" not in no_decay


def test_state_dict_round_trip_and_copies():
    rng = np.random.default_rng(0)
    a, b = _small(seed=1), _small(seed=2)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    a(x)  # updates running statistics and num_batches_tracked
    state = a.state_dict()
    assert int(state["layer0.bn1.num_batches_tracked"]) == 1
    b.load_state_dict(state)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x), b(x))
    state["last_linear.bias"][...] = 123.0  # a copy: the model is untouched
    assert not np.any(a.last_linear.bias.data == 123.0)


def test_load_state_dict_lists_every_problem():
    model = _small()
    state = model.state_dict()
    del state["layer1.0.conv1.weight"]
    state["layer9.extra"] = np.zeros(3)
    state["last_linear.weight"] = np.zeros((5, 16))
    before = model.layer0.conv1.weight.data.copy()
    state["layer0.conv1.weight"] = np.ones_like(before)
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    msg = str(info.value)
    assert "missing keys: layer1.0.conv1.weight" in msg
    assert "unexpected keys: layer9.extra" in msg
    assert "last_linear.weight: expected (4, 16), got (5, 16)" in msg
    np.testing.assert_array_equal(model.layer0.conv1.weight.data, before)  # nothing copied


def test_load_state_dict_non_strict_ignores_unexpected():
    model, source = _small(seed=1), _small(seed=2)
    state = source.state_dict()
    state["extra"] = np.zeros(1)
    state["layer0.bn1.running_mean"][...] = 0.5
    model.load_state_dict(state, strict=False)  # the unexpected key is ignored ...
    for name, value in model.state_dict().items():  # ... and every known one was copied
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    assert "extra" not in model.state_dict() and not hasattr(model, "extra")
    with pytest.raises(ValueError, match="unexpected keys: extra$"):  # strict names it
        model.load_state_dict(state)
    del state["last_linear.bias"]
    before = model.layer0.conv1.weight.data.copy()
    state["layer0.conv1.weight"] = np.zeros_like(before)
    with pytest.raises(ValueError) as info:  # missing keys are an error even when not strict
        model.load_state_dict(state, strict=False)
    assert "missing keys: last_linear.bias" in str(info.value) and "unexpected" not in str(info.value)
    np.testing.assert_array_equal(model.layer0.conv1.weight.data, before)  # nothing copied


def test_gradients_accumulate_and_zero_grad():
    model = _small()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    model(x)
    model.backward(dy)
    g1 = model.layer1[0].conv1.weight.grad.copy()
    model(x)
    model.backward(dy)
    np.testing.assert_allclose(model.layer1[0].conv1.weight.grad, 2 * g1, rtol=1e-5, atol=1e-6)
    model.zero_grad()
    assert all(not np.any(p.grad) for p in model.parameters())


def test_train_eval_modes():
    model = _small()
    assert model.training and model.layer1[0].bn1.training
    model.eval()
    assert not any(m.training for m in model.modules())
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    before = model.layer0.bn1.running_mean.copy()
    model(x)
    np.testing.assert_array_equal(model.layer0.bn1.running_mean, before)  # eval: stats unchanged
    model.train()
    model(x)
    assert not np.array_equal(model.layer0.bn1.running_mean, before)


def test_astype_float64_everywhere():
    model = _small().astype(np.float64)
    assert model.dtype == np.float64
    assert all(p.data.dtype == p.grad.dtype == np.float64 for p in model.parameters())
    assert model.layer0.bn1.running_var.dtype == np.float64
    assert model.layer0.bn1.num_batches_tracked.dtype == np.int64
    y = model(np.zeros((2, 3, 8, 8)))
    assert y.dtype == np.float64


def test_to_cpu_keeps_numpy_and_gpu_needs_cupy():
    model = _small().to("cpu")
    assert all(isinstance(p.data, np.ndarray) for p in model.parameters())
    if not backend.cupy_available():
        with pytest.raises(ValueError, match="gpu"):
            model.to("gpu")
        return
    import cupy

    weights = model.state_dict()
    model.to("gpu")
    assert all(isinstance(p.data, cupy.ndarray) and isinstance(p.grad, cupy.ndarray) for p in model.parameters())
    assert isinstance(model.layer0.bn1.running_mean, cupy.ndarray)
    model.to("cpu")
    assert all(isinstance(p.data, np.ndarray) for p in model.parameters())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name], err_msg=name)


def test_sequential_backward_walks_in_reverse():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seq.astype(np.float64)
    x = np.random.default_rng(0).standard_normal((5, 3))
    y = seq(x)
    dy = np.random.default_rng(1).standard_normal(y.shape)  # random: all ones would hide a transposed w
    dx = seq.backward(dy)
    h = np.maximum(x @ seq[0].weight.data.T + seq[0].bias.data, 0)
    dh = (dy @ seq[2].weight.data) * (h > 0)
    np.testing.assert_allclose(dx, dh @ seq[0].weight.data)
    assert len(seq) == 3 and [n for n, _ in seq.named_parameters()][0] == "0.weight"


def test_se_block_hidden_width_and_errors():
    assert nn.SEBlock(64, 16).hidden == 4
    assert nn.SEBlock(16, 32).hidden == 1  # minimum 1
    assert nn.SEBlock(64, hidden=10).hidden == 10
    assert nn.SEBlock(64, 16, bias=False).fc1.bias is None
    with pytest.raises(ValueError, match="squeeze"):
        nn.SEBlock(8, squeeze="sum")
    with pytest.raises(ValueError, match="gate"):
        nn.SEBlock(8, gate="softmax")
    with pytest.raises(ValueError, match=r"SEBlock: expected u of shape \(N, 8, H, W\)"):
        nn.SEBlock(8, 2)(np.zeros((1, 4, 2, 2), np.float32))


def test_init_he_fan_out_and_bn():
    nn.init.manual_seed(0)
    conv = nn.Conv2d(64, 256, 3, bias=False)
    std = np.sqrt(2.0 / (256 * 9))
    assert abs(conv.weight.data.std() / std - 1) < 0.02
    bn = nn.BatchNorm2d(8)
    assert np.all(bn.weight.data == 1) and np.all(bn.bias.data == 0)
    lin = nn.Linear(100, 10)
    assert np.abs(lin.weight.data).max() <= 0.1 and np.abs(lin.bias.data).max() <= 0.1


def test_seed_makes_models_reproducible():
    a, b = _small(seed=7), _small(seed=7)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    zeros = models.create("se_resnet20", num_classes=4, init=False)
    assert not np.any(zeros.layer1[0].conv1.weight.data)
