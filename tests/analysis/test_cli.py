"""The commands end to end through ``sescratch.cli.main``: files written and exit codes."""
import json

import pytest

from sescratch.train import TrainConfig, fit

from .conftest import TINY_ARGS

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name, extra, rows", [
    ("se-vs-plain", ["--depths", "20"], 2),
    pytest.param("reduction", ["--ratios", "8,16"], 3, marks=pytest.mark.slow),
    pytest.param("variants", ["--tables", "gate"], 3, marks=pytest.mark.slow),
])
def test_experiment_commands(cli, tmp_path, capsys, name, extra, rows):
    out = tmp_path / "exp"
    assert cli(["experiment", name, *TINY_ARGS, "--seeds", "1", "--out", str(out), *extra]) == 0
    report = json.loads((out / f"{name}.json").read_text())
    assert report["complete"] and len(report["rows"]) == rows
    assert report["command"].startswith(f"sescratch experiment {name} --budget small")
    assert (out / f"{name}.png").read_bytes()[:8] == PNG
    assert "| top-1 error % (mean ± std) |" in (out / f"{name}.md").read_text()
    printed = capsys.readouterr().out
    assert ": training " in printed and "(n=1)" in printed
    assert cli(["experiment", name, *TINY_ARGS, "--seeds", "1", "--out", str(out), *extra]) == 0
    printed = capsys.readouterr().out
    assert ": training " not in printed and ": done (" in printed  # every cell was finished


def test_experiment_usage_errors(cli, tmp_path, capsys):
    assert cli(["experiment"]) == 2
    assert "name an experiment" in capsys.readouterr().err
    assert cli(["experiment", "reduction", "--dataset", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert cli(["experiment", "variants", *TINY_ARGS, "--tables", "nope", "--out", str(tmp_path)]) == 2
    assert cli(["experiment", "reduction", "--subset", "-1", "--out", str(tmp_path)]) == 2
    assert cli(["experiment", "se-vs-plain", "--depths", "20,18", "--dry-run", "--out", str(tmp_path)]) == 2
    assert "--depths 18 is not a CIFAR ResNet depth; valid: 20, 32, 44, 56, 110" in capsys.readouterr().err
    assert cli(["experiment", "reduction", "--depth", "50", "--dry-run", "--out", str(tmp_path)]) == 2
    assert "--depth 50 is not a CIFAR ResNet depth" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli(["experiment", "reduction", "--seeds", "zero"])
    assert exc.value.code == 2
    assert cli(["experiment", "reduction", *TINY_ARGS, "--dry-run", "--out", str(tmp_path)]) == 0
    assert "to run" in capsys.readouterr().out and not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny SE-ResNet-20 and a plain ResNet-20 trained for one epoch on 4-class synthetic data."""
    root = tmp_path_factory.mktemp("runs")
    data = {"n_train": 64, "n_test": 48, "size": 8, "num_classes": 4}
    common = dict(dataset="synthetic", dataset_options=data, epochs=1, batch_size=32, backend="numpy",
                  progress=False, model_options={"width": 4})
    fit(TrainConfig(model="se_resnet20", reduction=2, out_dir=str(root / "se"), **common))
    fit(TrainConfig(model="resnet20", out_dir=str(root / "plain"), **common))
    return root


@pytest.mark.slow  # draws the two figures
def test_excitations_command(cli, trained, tmp_path, capsys):
    out = tmp_path / "fig6"
    argv = ["excitations", "--checkpoint", str(trained / "se" / "best.npz"), "--classes", "class_1,3",
            "--distribution-class", "3", "--channels", "8", "--backend", "numpy", "--out", str(out)]
    assert cli(argv) == 0
    stats = json.loads((out / "excitations.json").read_text())
    assert stats["classes"] == ["class_1", "class_3"] and stats["distribution_class"] == "class_3"
    assert list(stats["blocks"]) == ["SE_2_3", "SE_3_3", "SE_4_1", "SE_4_2", "SE_4_3"]
    block = stats["blocks"]["SE_4_3"]  # 16 channels, 8 of them reported
    assert len(block["channels"]) == 8 and len(block["per_class"]["class_1"]) == 8
    assert len(stats["blocks"]["SE_2_3"]["channels"]) == 4  # a 4-channel block keeps all
    assert block["width"] == 16 and block["channels"][-1] == 15  # the channels' own indices, 0 to 15
    for png in ("excitations.png", "excitations_distribution.png"):
        assert (out / png).read_bytes()[:8] == PNG
    assert "SE_4_3: 8 of 16 channels plotted; over all 16: mean excitation" in capsys.readouterr().out
    assert cli(argv[:-1] + [str(out), "--blocks", "all", "--images-per-class", "5"]) == 0
    stats = json.loads((out / "excitations.json").read_text())
    assert len(stats["blocks"]) == 9 and stats["images_per_class"] == {"class_1": 5, "class_3": 5}


def test_excitations_errors(cli, trained, tmp_path, capsys, monkeypatch):
    se = str(trained / "se" / "best.npz")
    assert cli(["excitations", "--checkpoint", se, "--classes", "dog", "--backend", "numpy",
                "--out", str(tmp_path)]) == 2
    assert "unknown class 'dog'" in capsys.readouterr().err
    assert cli(["excitations", "--checkpoint", se, "--blocks", "SE_9_9", "--backend", "numpy",
                "--out", str(tmp_path)]) == 2
    assert "unknown SE block(s) SE_9_9" in capsys.readouterr().err
    assert cli(["excitations", "--checkpoint", str(trained / "plain" / "best.npz"), "--backend", "numpy",
                "--out", str(tmp_path)]) == 2
    assert "has no SE blocks" in capsys.readouterr().err
    assert cli(["excitations", "--checkpoint", str(tmp_path / "missing.npz")]) == 1
    assert "file not found" in capsys.readouterr().err
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    collected = []
    monkeypatch.setattr("sescratch.analysis.excitations.collect_excitations", lambda *a, **k: collected.append(1))
    assert cli(["excitations", "--checkpoint", se, "--backend", "numpy", "--out", str(a_file)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err and collected == []  # checked first
    def disk_trouble(*args, **kwargs):
        raise IsADirectoryError(21, "Is a directory", "somewhere.json")

    monkeypatch.setattr("sescratch.analysis.excitations.collect_excitations", disk_trouble)
    assert cli(["excitations", "--checkpoint", se, "--backend", "numpy", "--out", str(tmp_path / "x")]) == 1
    assert "error: 'somewhere.json' Is a directory" in capsys.readouterr().err  # no traceback
    with pytest.raises(SystemExit):
        cli(["excitations", "--checkpoint", se, "--channels", "0"])
    assert "--channels: expected an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("typed, seeds", [("7,", (7,)), ("1", (0,)), ("3", (0, 1, 2)), ("2,5", (2, 5))])
def test_the_recorded_command_replays_the_same_seeds(typed, seeds):
    """A report's command, parsed again, runs the seeds the run did: one seed keeps its comma
    (written ``--seeds 7`` it would mean seeds 0-6, and ``--seeds 0`` is refused)."""
    import shlex

    from sescratch.analysis.cli import command_line
    from sescratch.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["experiment", "reduction", "--seeds", typed])
    assert args.seeds == seeds
    replayed = parser.parse_args(shlex.split(command_line(args))[1:])
    assert replayed.seeds == seeds
