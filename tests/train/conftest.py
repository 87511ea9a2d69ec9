import pytest

from sescratch.train import TrainConfig

TINY = dict(model="se_resnet20", model_options={"width": 4}, reduction=2, dataset="synthetic",
            dataset_options={"n_train": 96, "n_test": 40, "size": 8}, epochs=3, batch_size=32,
            lr=0.05, crop_padding=1, backend="numpy", progress=False, eval_batch_size=64)


@pytest.fixture
def tiny_config(tmp_path):
    """A seconds-long run: SE-ResNet-20 of width 4 on 8x8 synthetic images."""

    def make(out="run", **changes):
        return TrainConfig(**{**TINY, "out_dir": str(tmp_path / out), **changes})

    return make
