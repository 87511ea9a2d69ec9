"""The public names of sescratch.train, .data and .io exist (and nothing in __all__ is misspelt)."""
import importlib

import pytest

PUBLIC = {
    "sescratch.data": ["Dataset", "BatchIterator", "load_dataset", "list_datasets", "make_synthetic",
                       "Transform", "normalize", "pad_to", "random_crop", "random_hflip"],
    "sescratch.train": ["TrainConfig", "Trainer", "TrainResult", "TrainingDiverged", "fit",
                        "build_model", "SGD", "make_schedule", "Step", "MultiStep", "Cosine",
                        "LinearWarmup", "save_checkpoint", "load_checkpoint", "topk_correct",
                        "confusion_matrix", "plot_curves", "plot_confusion", "evaluate", "EvalResult",
                        "load_for_evaluation"],
    "sescratch.train.optim": ["SGD"],
    "sescratch.train.schedules": ["make_schedule", "Step", "MultiStep", "Cosine", "LinearWarmup"],
    "sescratch.train.cli": ["add_commands", "config_from_args"],
    "sescratch.train.checkpoint": ["save_checkpoint", "load_checkpoint"],
    "sescratch.train.metrics": ["topk_correct", "confusion_matrix", "plot_curves", "plot_confusion"],
    "sescratch.train.evaluation": ["evaluate", "EvalResult", "load_for_evaluation"],
    "sescratch.io": ["atomic_open", "atomic_write_text"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module):
    mod = importlib.import_module(module)
    for name in PUBLIC[module]:
        assert hasattr(mod, name), f"{module}.{name}"
    for name in getattr(mod, "__all__", []):
        assert hasattr(mod, name), f"{module}.__all__ lists missing {name}"


def test_a_reduction_given_twice_must_agree():
    from sescratch.errors import UsageError
    from sescratch.train import TrainConfig

    with pytest.raises(UsageError, match=r"model option reduction=4 differs from reduction=16 \(--reduction\)"):
        TrainConfig(model_options={"reduction": 4}).validate()
    TrainConfig(reduction=4, model_options={"reduction": 4}).validate()


def test_numpy_integers_and_paths_are_accepted_where_ints_and_strings_are():
    from pathlib import Path

    import numpy as np

    from sescratch import models, nn
    from sescratch.train import TrainConfig

    assert TrainConfig(out_dir=Path("runs") / "x").validate().out_dir == str(Path("runs") / "x")
    model = models.create("se_resnet20", num_classes=np.int64(10), width=np.int64(4), reduction=np.int64(2))
    assert model.num_parameters() == models.create("se_resnet20", num_classes=10, width=4, reduction=2).num_parameters()
    assert nn.SEBlock(16, np.int32(4)).hidden == 4
    for bad in (0, -1, 4.5, True):
        with pytest.raises(ValueError, match=rf"BatchNorm2d: argument 'num_features' must be a positive int, got {bad!r}"):
            nn.BatchNorm2d(bad)
