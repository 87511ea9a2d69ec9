"""The checkpoints shipped as package data (sescratch.train.pretrained): present, loadable by every
reader of checkpoints, and what docs/pretrained.md says they are."""
import numpy as np
import pytest

from sescratch.cli import main
from sescratch.data import load_dataset
from sescratch.errors import DataError, UsageError
from sescratch.train import Trainer, evaluate, load_checkpoint, load_pretrained, pretrained_path
from sescratch.train.pretrained import PRETRAINED, export_pretrained, list_pretrained, resolve_checkpoint

NAME = "se_resnet20_fashion_mnist"


def test_every_shipped_checkpoint_is_present_small_and_without_optimiser_state():
    assert list_pretrained() == sorted(PRETRAINED) and NAME in PRETRAINED
    for name in PRETRAINED:
        path = pretrained_path(name)
        assert path.stat().st_size < 3 * 2**20  # "a few MB at most"
        ckpt = load_checkpoint(path)
        assert ckpt.optim_state == {}
        assert ckpt.meta["partial"] is None and ckpt.epoch == ckpt.config["epochs"]


def test_the_fashion_mnist_network_is_the_documented_one():
    net = load_pretrained(NAME, backend="numba")
    config = net.config
    assert (config.model, config.dataset, config.reduction, config.epochs) == ("se_resnet20", "fashion-mnist", 4, 15)
    assert config.subset is None  # the full 60,000 training images
    hidden = {name: block.hidden for name, block in net.model.se_blocks().items()}
    assert len(hidden) == 9 and min(hidden.values()) >= 4  # not the degenerate 1-2 hidden units
    assert not net.model.training
    assert net.classes == list(load_dataset("fashion-mnist-subset").classes)
    history = net.meta["history"]
    assert len(history) == 15 and history[-1]["test_top1_error"] < 0.08  # docs/pretrained.md: 93.9 %


@pytest.mark.slow
def test_it_classifies_the_embedded_test_images():
    """The embedded subset's 1,000 test images come from the official test split: unseen."""
    net = load_pretrained(NAME, backend="numba")
    data = load_dataset("fashion-mnist-subset")
    result = evaluate(net.model, data.x_test, data.y_test, net.transform, num_classes=10)
    assert result.accuracy > 0.9, result.accuracy


def test_unknown_name_and_the_pretrained_prefix():
    with pytest.raises(UsageError, match=f"unknown pretrained checkpoint 'resnet9000'; valid names: {NAME}"):
        pretrained_path("resnet9000")
    assert resolve_checkpoint(f"pretrained:{NAME}") == pretrained_path(NAME)
    assert str(resolve_checkpoint("runs/x/best.npz")) == "runs/x/best.npz"
    with pytest.raises(UsageError, match="backend must be numba or numpy"):
        load_pretrained(NAME, backend="cupy")


@pytest.mark.slow
def test_eval_cli_reads_the_shipped_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the confusion matrix goes to the current directory, not the package
    assert main(["eval", "--checkpoint", f"pretrained:{NAME}", "--dataset", "fashion-mnist-subset"]) == 0
    out = capsys.readouterr().out
    assert "top-1 error" in out and (tmp_path / "confusion_fashion-mnist-subset.png").is_file()
    assert main(["eval", "--checkpoint", "pretrained:nope"]) == 2
    assert "unknown pretrained checkpoint 'nope'" in capsys.readouterr().err


def test_export_drops_the_optimiser_and_keeps_the_weights(tiny_config, tmp_path):
    result = Trainer(tiny_config(epochs=1)).fit()
    src = result.out_dir / "last.npz"
    out = export_pretrained(src, tmp_path / "shipped.npz")
    full, shipped = load_checkpoint(src), load_checkpoint(out)
    assert full.optim_state and shipped.optim_state == {}
    assert out.stat().st_size < src.stat().st_size
    assert shipped.model_state.keys() == full.model_state.keys()
    for key, value in full.model_state.items():
        np.testing.assert_array_equal(shipped.model_state[key], value)
    assert shipped.config == {**full.config, "out_dir": "runs/shipped"}
    assert shipped.meta["history"] == full.meta["history"]
    run = tmp_path / "resumed"
    run.mkdir()
    (run / "last.npz").write_bytes(out.read_bytes())
    with pytest.raises(DataError, match="holds no optimiser state .* start a new run from its weights"):
        Trainer(tiny_config(out="resumed", epochs=2, resume=True))


def test_the_weight_decay_1e4_network_keeps_its_se_blocks():
    net = load_pretrained("se_resnet20_fashion_mnist_wd1e4", backend="numba")
    assert (net.config.reduction, net.config.epochs, net.config.weight_decay) == (4, 15, 1e-4)
    assert net.config.subset is None and net.meta["history"][-1]["test_top1_error"] < 0.08
    norms = [float(np.linalg.norm(b.fc1.weight.data)) for b in net.model.se_blocks().values()]
    assert min(norms) > 0.5  # docs/pretrained.md: no block's excitation decayed away (5e-4: 0.06)
