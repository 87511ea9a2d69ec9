"""`sescratch train` and `sescratch eval`: exit codes, messages, files."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sescratch.cli import main
from sescratch.train import TrainConfig, load_checkpoint
from sescratch.train.cli import config_from_args

ROOT = Path(__file__).resolve().parents[2]
TINY_ARGS = ["--model", "se_resnet20", "--model-option", "width=4", "--reduction", "2",
             "--dataset", "synthetic", "--subset", "64", "--test-subset", "40", "--epochs", "1",
             "--batch-size", "32", "--lr", "0.05", "--backend", "numpy", "--no-progress"]


def parse(argv):
    from sescratch.cli import build_parser

    return build_parser().parse_args(argv)


def test_no_arguments_is_the_default_recipe():
    config = config_from_args(parse(["train"]))
    assert config == TrainConfig()
    assert config.model == "se_resnet20" and config.dataset == "fashion-mnist-subset"


def test_options_reach_the_config():
    config = config_from_args(parse(["train", "--model", "resnet20", "--epochs", "7", "--lr", "0.3",
                                     "--schedule", "step", "--weight-decay", "1e-4", "--seed", "3",
                                     "--model-option", "shortcut=\"A\"", "--milestones", "2,4",
                                     "--no-augment", "--nesterov", "--pad-to", "32"]))
    assert (config.model, config.epochs, config.lr, config.schedule, config.seed) == (
        "resnet20", 7, 0.3, "step", 3)
    assert config.model_options == {"shortcut": "A"} and config.milestones == [2, 4]
    assert config.augment is False and config.nesterov and config.pad_to == 32
    assert config.out_dir == "runs/resnet20"


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "se_resnet21"], "unknown model 'se_resnet21'; valid names: resnet20"),
    (["train", "--dataset", "imagenet"], "unknown dataset 'imagenet'; valid names: fashion-mnist-subset"),
    (["train", "--epochs", "0"], "--epochs 0: expected an integer in [1, "),
    (["train", "--model-option", "width"], "expected KEY=VALUE"),
    (["eval", "--checkpoint", "x.npz", "--dataset", "nope"], "unknown dataset 'nope'"),
])
def test_usage_errors_exit_2_without_traceback(argv, message, capsys, tmp_path):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_list_names(capsys):
    assert main(["train", "--model", "list"]) == 0
    assert "se_resnet20" in capsys.readouterr().out.split()
    assert main(["train", "--dataset", "list"]) == 0
    assert "fashion-mnist-subset" in capsys.readouterr().out.split()


def test_resume_without_checkpoint_exits_2(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--epochs", "many"])
    assert info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_missing_or_corrupt_checkpoint_says_which_and_why(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "gone.npz")]) == 1
    assert "gone.npz: file not found" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert main(["eval", "--checkpoint", str(tmp_path / "bad.npz")]) == 1
    assert "bad.npz: corrupt" in capsys.readouterr().err


def test_train_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "done: test top-1 error" in printed
    for name in ("last.npz", "best.npz", "metrics.jsonl", "metrics.csv", "curves.png"):
        assert (out / name).exists(), name
    assert main(["eval", "--checkpoint", str(out / "best.npz"), "--backend", "numpy"]) == 0
    report = capsys.readouterr().out
    assert "top-1 error" in report and "top-5 error" in report and "class_9" in report
    best = load_checkpoint(out / "best.npz").meta["best"]["test_top1_error"]
    assert f"top-1 error {100 * best:.2f}%" in report  # the same test subset as the training run
    assert (out / "confusion_synthetic.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "file").write_text("x")  # --out is checked before the evaluation runs
    for bad, why in ((tmp_path / "file", "exists and is not a directory"), (tmp_path / "file" / "sub", "cannot write")):
        assert main(["eval", "--checkpoint", str(out / "best.npz"), "--out", str(bad)]) == 2
        err = capsys.readouterr()
        assert f"--out {bad}: {why}" in err.err and "top-1 error" not in err.out
    # a continued run keeps the stored options and goes on from epoch 1
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert load_checkpoint(out / "last.npz").epoch == 2


def test_eval_on_a_missing_dataset_says_where_it_looked(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_ARGS, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "last.npz"), "--dataset", "cifar10",
                 "--no-download", "--data-dir", str(tmp_path)]) == 1  # not found: DataError
    assert "cifar-10-python.tar.gz" in capsys.readouterr().err


@pytest.mark.slow  # a subprocess that imports and compiles everything
def test_ctrl_c_in_the_cli_saves_and_exits_130(tmp_path):
    out = tmp_path / "run"
    argv = [a for a in TINY_ARGS if a != "--no-progress"]
    argv[argv.index("--epochs") + 1] = "50"
    proc = subprocess.Popen([sys.executable, "-m", "sescratch.cli", "train", *argv, "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "last.npz").exists():  # after epoch 1, the SIGINT handler is surely installed
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted: saved" in stdout or "Ctrl-C" in stdout
    assert load_checkpoint(out / "last.npz").epoch >= 1


def test_eval_refuses_a_checkpoint_with_weights_or_a_model(tmp_path, capsys):
    ckpt = str(tmp_path / "best.npz")
    assert main(["eval", "--checkpoint", ckpt, "--weights", str(tmp_path / "w.npz")]) == 2
    assert "--checkpoint CKPT (a training run's file, its model and test set) or --weights" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", ckpt, "--model", "resnet50"]) == 2
    assert "--model resnet50 does not go with a checkpoint" in capsys.readouterr().err
