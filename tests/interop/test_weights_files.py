"""Weight files: .npz, .safetensors (no torch), .pth/.pt (weights_only=True only); clear errors."""
import pickle

import numpy as np
import pytest

from sescratch import models
from sescratch.interop.weights import WeightsError, read_weights, save_weights


def small_state():
    model = models.create("se_resnet20", num_classes=10, seed=3)
    return model, model.state_dict()


def _assert_same(a: dict, b: dict):
    assert list(a) == list(b) or set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_save_and_read_round_trip(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    model, state = small_state()
    path = save_weights(model, tmp_path / f"w{suffix}")
    _assert_same(read_weights(path), state)


def test_safetensors_written_by_the_numpy_api_needs_no_torch(tmp_path, monkeypatch):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    _, state = small_state()
    path = tmp_path / "w.safetensors"
    safetensors_numpy.save_file({k: np.array(v, order="C") for k, v in state.items()}, str(path))
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # importing torch now fails
    _assert_same(read_weights(path), state)
    model = models.create("se_resnet20", weights=path)
    _assert_same(model.state_dict(), state)


def test_training_checkpoint_gives_its_model_weights(tmp_path):
    from sescratch.train.checkpoint import save_checkpoint

    _, state = small_state()
    path = save_checkpoint(tmp_path / "last.npz", model_state=state, optim_state={"step": np.array(3)},
                           rng_state={"a": 1}, config={"model": "se_resnet20"}, meta={"epoch": 2})
    _assert_same(read_weights(path), state)


def test_pth_state_dict_and_wrappers(tmp_path):
    torch = pytest.importorskip("torch")
    _, state = small_state()
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    plain, wrapped = tmp_path / "plain.pth", tmp_path / "wrapped.pt"
    torch.save(tensors, plain)
    torch.save({"epoch": 90, "arch": "se_resnet20",
                "state_dict": {f"module.{k}": v for k, v in tensors.items()}}, wrapped)
    _assert_same(read_weights(plain), state)
    _assert_same(read_weights(wrapped), state)


def test_half_precision_becomes_float32(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(3, dtype=torch.float16), "b": torch.ones(2, dtype=torch.bfloat16)},
               tmp_path / "h.pth")
    state = read_weights(tmp_path / "h.pth")
    assert state["w"].dtype == np.float32 and state["b"].dtype == np.float32


class Payload:
    """Unpickling this would run code: weights_only=True must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pth_with_arbitrary_objects_is_refused(tmp_path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Payload()}, f, protocol=2)
    with pytest.raises(WeightsError, match="weights_only=True"):
        read_weights(path)
    assert "unpickled!" not in capsys.readouterr().out


@pytest.mark.parametrize("suffix, content", [
    (".pth", b"this is a text file, not weights\n"),
    (".npz", b"PK\x03\x04 broken zip"),
    (".safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}"),
])
def test_file_that_is_not_a_weights_file_says_so(tmp_path, suffix, content):
    if suffix == ".pth":
        pytest.importorskip("torch")
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    path = tmp_path / f"notes{suffix}"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=r"not a .*(weights|\.npz|\.safetensors)"):
        read_weights(path)


def test_pth_holding_no_tensors_says_so(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth")
    with pytest.raises(WeightsError, match="not a weights file"):
        read_weights(tmp_path / "meta.pth")
    torch.save([torch.ones(2)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="holds a list"):
        read_weights(tmp_path / "list.pth")


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(WeightsError, match="file not found"):
        read_weights(tmp_path / "nope.npz")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unknown format '.h5'"):
        read_weights(tmp_path / "w.h5")
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(WeightsError, match="no named arrays"):
        read_weights(tmp_path / "empty.npz")


def test_save_refuses_other_formats(tmp_path):
    _, state = small_state()
    with pytest.raises(WeightsError, match=".npz or .safetensors"):
        save_weights(state, tmp_path / "w.pth")


def test_a_training_checkpoint_rebuilds_the_network_of_its_run(tmp_path):
    """Options that change no shape (gate, placement) cannot be read off the weights: a checkpoint
    used as weights takes them from its run's configuration, and refuses contradicting ones."""
    from sescratch.interop.loading import load_pretrained
    from sescratch.interop.weights import read_run_options
    from sescratch.train import TrainConfig
    from sescratch.train.checkpoint import save_checkpoint

    options = {"gate": "hard_sigmoid", "placement": "pre", "width": 4}
    trained = models.create("se_resnet20", num_classes=10, seed=3, reduction=2, **options).eval()
    config = TrainConfig(model="se_resnet20", dataset="cifar10", reduction=2, model_options=options)
    path = save_checkpoint(tmp_path / "last.npz", model_state=trained.state_dict(), optim_state={},
                           rng_state={"a": 1}, config=config.to_dict(), meta={"epoch": 1})
    assert read_run_options(path) == {**options, "reduction": 2}
    assert read_run_options(save_weights(trained, tmp_path / "plain.npz")) is None
    model, report = load_pretrained("se_resnet20", path)
    assert report.from_run and report.options == {**options, "reduction": 2}
    assert "checkpoint's training run: gate=hard_sigmoid" in str(report)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(model.eval()(x), trained(x))
    with pytest.raises(WeightsError, match="training run's.*need gate='hard_sigmoid', but gate='sigmoid'"):
        load_pretrained("se_resnet20", path, gate="sigmoid")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
@pytest.mark.parametrize("name", ["se_inception_resnet_v2_cifar", "se_bn_inception_cifar", "se_vgg16_bn_cifar",
                                  "se_mobilenet_v1_cifar", "se_shufflenet_v1_g3_cifar"])
def test_every_family_reloads_its_own_files(tmp_path, name, suffix):
    """The input channels come from the family's first conv, not from the file's first 4-D
    tensor: safetensors sorts its keys (Inception-ResNet-v2's ``block8`` comes first)."""
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    from sescratch.interop.loading import load_pretrained

    model = models.create(name, num_classes=10, seed=1, in_channels=1)
    back, _ = load_pretrained(name, save_weights(model, tmp_path / f"w{suffix}"))
    assert back.in_channels == 1
    _assert_same(back.state_dict(), model.state_dict())


def test_a_file_of_another_architecture_says_so(tmp_path):
    from sescratch.interop.loading import load_pretrained

    path = tmp_path / "densenet.npz"
    np.savez(path, **{"features.conv0.weight": np.zeros((8, 3, 7, 7), np.float32),
                      "classifier.weight": np.zeros((10, 8), np.float32)})
    with pytest.raises(WeightsError, match="may hold another architecture; its keys: features.conv0.weight"):
        load_pretrained("se_resnet20", path)


def test_bfloat16_safetensors_become_float32(tmp_path):
    """NumPy has no bfloat16: those files are read from their layout, each value widened exactly."""
    pytest.importorskip("safetensors")
    import json
    import struct

    values = np.array([[1.0, -2.5], [3.140625, 1e-3]], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()  # the upper halves: bfloat16
    steps = np.array([7], dtype="<i8").tobytes()
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
                         "n": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]},
                         "__metadata__": {"format": "pt"}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bf16 + steps)
    state = read_weights(path)
    assert state["w"].dtype == np.float32 and state["n"].tolist() == [7]
    np.testing.assert_array_equal(state["w"], (values.view(np.uint32) & 0xFFFF0000).view(np.float32))
