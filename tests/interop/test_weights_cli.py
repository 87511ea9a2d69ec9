"""``--weights`` on ``sescratch train`` and ``sescratch eval``; ``create(name, weights=PATH)``."""
import numpy as np
import pytest

from sescratch import models
from sescratch.cli import main
from sescratch.data import load_dataset
from sescratch.interop.weights import save_weights
from sescratch.train import load_checkpoint

TRAIN = ["--dataset", "synthetic", "--subset", "64", "--test-subset", "40", "--epochs", "1",
         "--batch-size", "32", "--backend", "numpy", "--no-progress", "--model-option", "width=4"]


@pytest.fixture(scope="module")
def synthetic():
    data = load_dataset("synthetic")
    return data.image_shape[0], data.num_classes


def test_train_starts_an_se_resnet_from_plain_resnet_weights(tmp_path, capsys, synthetic):
    channels, classes = synthetic
    plain = models.create("resnet20", num_classes=classes, in_channels=channels, width=4, seed=5)
    path = save_weights(plain, tmp_path / "resnet20.npz")
    out = tmp_path / "run"
    argv = ["train", "--model", "se_resnet20", "--weights", str(path), *TRAIN, "--out", str(out),
            "--lr", "1e-30", "--weight-decay", "0"]
    assert main(argv) == 1 and "--init-missing" in capsys.readouterr().err  # SE keys missing: say so
    assert main(argv + ["--init-missing"]) == 0
    printed = capsys.readouterr().out
    assert "freshly initialised" in printed and "layer1.0.se_module.fc1.weight" in printed
    trained = load_checkpoint(out / "last.npz").model_state
    for key, value in plain.state_dict().items():  # lr ~ 0: the copied backbone is still the file's
        if key.endswith(".weight") and "bn" not in key:
            np.testing.assert_allclose(trained[key], value, rtol=1e-6, atol=1e-12, err_msg=key)


def test_init_missing_needs_weights_and_weights_do_not_resume(tmp_path, capsys):
    assert main(["train", "--init-missing", *TRAIN, "--out", str(tmp_path / "x")]) == 2
    assert "--init-missing goes with --weights" in capsys.readouterr().err
    path = save_weights(models.create("resnet20", num_classes=10), tmp_path / "w.npz")
    assert main(["train", "--weights", str(path), "--resume", *TRAIN, "--out", str(tmp_path / "x")]) == 2


def test_eval_a_weights_file(tmp_path, capsys, synthetic):
    channels, classes = synthetic
    model = models.create("se_resnet20", num_classes=classes, in_channels=channels, width=4, seed=2)
    path = save_weights(model, tmp_path / "w.safetensors")
    code = main(["eval", "--weights", str(path), "--model", "se_resnet20", "--model-option", "width=4",
                 "--dataset", "synthetic", "--backend", "numpy", "--out", str(tmp_path)])
    assert code == 0
    assert "top-1 error" in capsys.readouterr().out
    assert (tmp_path / "confusion_synthetic.png").is_file()
    assert main(["eval", "--weights", str(path)]) == 2
    assert "--model NAME and --dataset NAME" in capsys.readouterr().err


def test_create_with_weights_reads_the_sizes_from_the_file(tmp_path):
    model = models.create("se_resnet20", num_classes=7, in_channels=1, seed=3)
    path = save_weights(model, tmp_path / "w.npz")
    loaded = models.create("se_resnet20", weights=path)
    assert loaded.last_linear.out_features == 7 and loaded.in_channels == 1
    with pytest.raises(TypeError, match="num_classes is required"):
        models.create("se_resnet20")
    with pytest.raises(ValueError, match="init_missing=True needs weights"):
        models.create("se_resnet20", num_classes=3, init_missing=True)


def test_train_from_a_checkpoint_keeps_the_architecture_of_its_run(tmp_path, capsys):
    first = tmp_path / "first"
    argv = ["train", "--model", "se_resnet20", *TRAIN, "--model-option", "gate=hard_sigmoid", "--reduction", "2"]
    assert main(argv + ["--out", str(first)]) == 0
    second = tmp_path / "second"
    base = ["train", "--model", "se_resnet20", "--weights", str(first / "last.npz"), *TRAIN]
    assert main(base + ["--reduction", "2", "--out", str(second)]) == 0
    assert "checkpoint's training run" in capsys.readouterr().out
    config = load_checkpoint(second / "last.npz").config
    assert config["model_options"]["gate"] == "hard_sigmoid" and config["reduction"] == 2
    assert main(base + ["--out", str(tmp_path / "third")]) == 1  # the run's r = 2, the default r = 16 asked
    assert "need reduction=2, but reduction=16 was asked for" in capsys.readouterr().err
