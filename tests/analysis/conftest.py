import pytest

from sescratch.analysis import Budget

# Seconds-long runs: width-4 ResNet-20s on 8x8 synthetic images, one epoch.
TINY = Budget(dataset="synthetic", dataset_options={"n_train": 64, "n_test": 40, "size": 8},
              epochs=1, subset=None, seeds=(0, 1), width=4, batch_size=32, lr=0.05, backend="numpy")

TINY_ARGS = ["--dataset", "synthetic", "--dataset-option", "n_train=64", "--dataset-option", "n_test=40",
             "--dataset-option", "size=8", "--epochs", "1", "--subset", "0", "--width", "4",
             "--batch-size", "32", "--lr", "0.05", "--backend", "numpy"]


@pytest.fixture
def tiny_budget():
    return TINY


@pytest.fixture
def cli(monkeypatch):
    """``sescratch.cli.main`` with the analysis commands registered (as the lead's cli.py will)."""
    import sescratch.cli as top

    if "sescratch.analysis.cli" not in top.COMMAND_MODULES:
        monkeypatch.setattr(top, "COMMAND_MODULES", top.COMMAND_MODULES + ("sescratch.analysis.cli",))
    return top.main


@pytest.fixture(autouse=True)
def no_training_curves(monkeypatch):
    """Skip the trainer's per-epoch curves.png (Matplotlib takes most of a tiny run's time);
    the analysis's own figures are still drawn and checked."""
    import sescratch.train.trainer

    monkeypatch.setattr(sescratch.train.trainer, "plot_curves", lambda *args, **kwargs: None)
