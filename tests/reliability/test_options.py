"""Every option is checked before any work starts: fuzzed values, exit 2 naming option and range."""
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sescratch import models
from sescratch.cli import build_parser, main
from sescratch.errors import UsageError
from sescratch.train import TrainConfig, make_schedule
from sescratch.train.cli import config_from_args
from sescratch.train.config import model_options
from tests.reliability.conftest import TINY

NUMERIC_OPTIONS = ["--epochs", "--batch-size", "--lr", "--momentum", "--step-size", "--milestones",
                   "--gamma", "--warmup-epochs", "--weight-decay", "--label-smoothing", "--reduction",
                   "--crop-padding", "--pad-to", "--subset", "--test-subset", "--seed", "--save-every"]
MODEL_OPTIONS = ["reduction", "width", "placement", "squeeze", "gate", "shortcut", "dropout", "init",
                 "seed", "stride_on", "colour"]
HOSTILE_TEXTS = ["0", "-1", "nan", "inf", "-inf", "1e309", "1e-320", "3.5", "abc", "", "1,2", "2,1", "5,5",
                 "0,3", "true", "[]", "{}", "null", " 7", "99999999999999999999", "-0", "1e3", "0.999999"]
values = st.one_of(st.sampled_from(HOSTILE_TEXTS), st.integers(-10**6, 10**6).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=6))
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**5, 10**5) | st.floats()
                           | st.sampled_from(["avg", "max", "sigmoid", "relu", "pre", "A", "B", "1x1"])
                           | st.text(max_size=4),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
                           max_leaves=4)


def outcome(argv):
    """('argparse', None) | ('usage', message) | ('valid', config) for ``sescratch train ARGV``."""
    try:
        args = build_parser().parse_args(["train", *argv])
    except SystemExit as exc:
        assert exc.code == 2
        return "argparse", None
    try:
        return "valid", config_from_args(args)
    except UsageError as exc:
        return "usage", str(exc)


def assert_trainable(config: TrainConfig):
    """What a valid config promises: a positive, finite learning rate all along, a buildable model."""
    schedule = make_schedule(config.schedule, config.lr, config.epochs, step_size=config.step_size,
                             milestones=config.milestones, gamma=config.gamma,
                             warmup_epochs=config.warmup_epochs)
    for k in range(41):
        lr = schedule(config.epochs * k / 40)
        assert math.isfinite(lr) and lr >= 0, (config, lr)
    assert schedule(0) > 0
    models.check_options(config.model, model_options(config))


@settings(max_examples=300, deadline=None)
@given(option=st.sampled_from(NUMERIC_OPTIONS), text=values,
       schedule=st.sampled_from(["cosine", "step", "multistep", "constant"]))
def test_fuzzed_option_values_are_refused_or_trainable(option, text, schedule):
    kind, result = outcome(["--schedule", schedule, f"{option}={text}"])
    if kind == "usage":
        assert result.startswith(option) and "expected" in result, result  # option, value, range
    elif kind == "valid":
        assert_trainable(result)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(MODEL_OPTIONS), value=st.one_of(json_values.map(json.dumps), values),
       model=st.sampled_from(["se_resnet20", "resnet20", "se_resnet50"]))
def test_fuzzed_model_options_are_refused_or_build(key, value, model):
    kind, result = outcome(["--model", model, "--model-option", f"{key}={value}"])
    if kind == "usage":
        assert key in result, result
    elif kind == "valid":
        assert_trainable(result)
        options = model_options(result)
        if model == "se_resnet20" and options.get("width", 16) <= 64:
            models.create(model, num_classes=10, in_channels=1, init=False, **options)
    assert kind != "argparse"


ISSUE_CASES = [  # issue 16, item 4, one by one
    (["--model-option", "init=false"], "model option init"),
    (["--step-size", "0", "--schedule", "step"], "--step-size 0: expected an integer in [1, "),
    (["--gamma", "-1"], "--gamma -1.0: expected a finite number > 0"),
    (["--warmup-epochs", "-1"], "--warmup-epochs -1.0: expected a finite number in [0, epochs"),
    (["--warmup-epochs", "nan"], "--warmup-epochs nan"),
    (["--milestones", "5,3", "--schedule", "multistep"], "expected strictly increasing epochs"),
    (["--lr", "inf"], "--lr inf: expected a finite number > 0"),
    (["--model-option", "reduction=true"], "option reduction must be an int in [1, 4096], got True"),
    (["--model-option", "seed=abc"], "model option seed"),
    (["--model-option", "gate={}"], "option gate must be one of 'sigmoid'"),
    (["--model-option", "width=100000"], "option width must be an int in [1, 1024], got 100000"),
    (["--pad-to", "0"], "--pad-to 0: expected an integer in [1, 4096]"),
    (["--pad-to", "4"], "pad_to=4: expected an integer >= the image size 8"),
    (["--save-every", "-3"], "--save-every -3"),
    (["--data-dir", "/nonexistent/typo"], "--data-dir /nonexistent/typo: no such directory"),
]


@pytest.mark.parametrize("extra, message", ISSUE_CASES)
def test_bad_values_exit_2_before_any_work(tmp_path, capsys, monkeypatch, extra, message):
    import sescratch.train.trainer as trainer

    built = []
    monkeypatch.setattr(trainer, "build_model", lambda *a, **k: built.append(1))
    out = tmp_path / "run"
    assert main(["train", *TINY, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert built == [] and not (out / "last.npz").exists()


def test_the_api_checks_as_the_cli_does():
    for changes in ({"step_size": 0}, {"gamma": -1.0}, {"lr": math.inf}, {"seed": "abc"},
                    {"milestones": [5, 3]}, {"model_options": {"gate": {}}}, {"batch_size": True},
                    {"epochs": 2.5}, {"model_options": {"init": False}}, {"momentum": 1.0}):
        with pytest.raises(UsageError):
            TrainConfig(**changes).validate()
    with pytest.raises(ValueError, match="option reduction must be an int"):
        models.create("se_resnet20", num_classes=10, reduction=True)
    with pytest.raises(ValueError, match="option gate must be one of"):
        models.create("se_resnet20", num_classes=10, gate={})


def test_resume_with_other_epochs_says_the_schedule_is_stretched(tmp_path, capsys):
    # item 9: --resume --epochs K re-stretched the cosine schedule silently
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "note: --epochs 1 -> 2: the cosine schedule is stretched over 2 epochs" in captured.err
    assert "from synthetic" in captured.out  # says where the data came from


@pytest.mark.parametrize("extra, message", [
    (["--data-dir", "/nonexistent/typo"], "--data-dir /nonexistent/typo: no such directory"),
    (["--batch-size", "0"], "--batch-size 0: expected an integer >= 1"),
])
def test_eval_checks_its_options_too(tmp_path, capsys, extra, message):
    path = tmp_path / "last.npz"
    assert main(["eval", "--checkpoint", str(path), *extra]) == 2
    assert message in capsys.readouterr().err
