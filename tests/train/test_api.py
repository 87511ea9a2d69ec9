"""The public names issue 5 promises exist (and nothing in __all__ is misspelt)."""
import importlib

import pytest

PUBLIC = {
    "sescratch.data": ["Dataset", "BatchIterator", "load_dataset", "list_datasets", "make_synthetic",
                       "Transform", "normalize", "pad_to", "random_crop", "random_hflip"],
    "sescratch.optim": ["SGD", "make_schedule", "Step", "MultiStep", "Cosine", "LinearWarmup"],
    "sescratch.train": ["TrainConfig", "Trainer", "TrainResult", "TrainingDiverged", "fit"],
    "sescratch.train_cli": ["add_commands"],
    "sescratch.checkpoint": ["save_checkpoint", "load_checkpoint"],
    "sescratch.metrics": ["topk_correct", "confusion_matrix", "plot_curves", "plot_confusion"],
    "sescratch.evaluation": ["evaluate", "EvalResult"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module):
    mod = importlib.import_module(module)
    for name in PUBLIC[module]:
        assert hasattr(mod, name), f"{module}.{name}"
    for name in getattr(mod, "__all__", []):
        assert hasattr(mod, name), f"{module}.__all__ lists missing {name}"
