"""The trainer's parts on their own: restoring a run's position, the divergence error, the
history row and the input pipeline."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sescratch.errors import UsageError
from sescratch.train import fit, load_checkpoint
from sescratch.train.config import build_model, build_transforms
from sescratch.train.divergence import TrainingDiverged, diverged, weights_finite
from sescratch.train.metrics import epoch_row
from sescratch.train.optim import SGD
from sescratch.train.resume import RunPosition, restore


def _fresh_parts(config, classes=10, channels=1):  # the synthetic images are grey
    model = build_model(config, classes, channels)
    return model, SGD(model.parameters(), config.lr, config.momentum), np.random.default_rng(123)


def test_restore_loads_every_state_and_returns_the_stored_position(tiny_config):
    config = tiny_config(epochs=2)
    fit(config)
    path = Path(config.out_dir) / "last.npz"
    ckpt = load_checkpoint(path)
    model, optimizer, rng = _fresh_parts(config, len(ckpt.meta["classes"]), ckpt.meta["image_shape"][0])
    position, notes = restore(path, config, model, optimizer, rng)
    meta = ckpt.meta
    assert position == RunPosition(meta["epoch"], meta["iteration"], meta["partial"], meta["history"],
                                   meta["best"], meta["elapsed_s"])
    assert position.epoch == 2 and len(position.history) == 2 and notes == []
    assert rng.bit_generator.state == ckpt.rng_state
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, ckpt.model_state[name], err_msg=name)
    for name, value in optimizer.state_dict().items():
        np.testing.assert_array_equal(value, ckpt.optim_state[name], err_msg=name)


def test_restore_refuses_a_missing_file_and_another_run(tiny_config, tmp_path):
    config = tiny_config(epochs=1)
    with pytest.raises(UsageError, match=r"no checkpoint to resume from at .*nowhere\.npz"):
        restore(tmp_path / "nowhere.npz", config, *_fresh_parts(config))
    fit(config)
    other = tiny_config(epochs=1, lr=0.5)
    with pytest.raises(UsageError, match=r"configuration differs from .*last\.npz: .*lr"):
        restore(Path(config.out_dir) / "last.npz", other, *_fresh_parts(other))


def test_diverged_names_the_checkpoint_kept(tiny_config, tmp_path):
    error = diverged("loss became nan at epoch 1, batch 3", tmp_path)
    assert isinstance(error, TrainingDiverged)
    assert "loss became nan at epoch 1, batch 3" in str(error)
    assert "no checkpoint had been written yet" in str(error)
    config = tiny_config(epochs=1)
    fit(config)
    assert f"{Path(config.out_dir) / 'last.npz'} (after epoch 1) is kept" in str(diverged("x", config.out_dir))
    (tmp_path / "last.npz").write_bytes(b"not a checkpoint")
    assert "(unreadable) is kept" in str(diverged("x", tmp_path))


def test_weights_finite_sees_one_bad_value(tiny_config):
    model = build_model(tiny_config(), 10, 3)
    assert weights_finite(model)
    model.parameters()[-1].data.reshape(-1)[0] = np.inf
    assert not weights_finite(model)


def test_a_buffer_that_overflows_is_divergence_too(tiny_config):
    """BN's running variance can overflow while every weight is finite: a checkpoint holding it
    could neither be evaluated nor resumed from, so the run stops before writing it."""
    from sescratch.train.divergence import first_nonfinite

    model = build_model(tiny_config(), 10, 3)
    name, buffer = next((n, b) for n, b in model.named_buffers() if n.endswith("running_var"))
    buffer.reshape(-1)[0] = np.inf
    assert not weights_finite(model) and first_nonfinite(model) == name
    config = tiny_config(epochs=2, lr=1e6)
    with pytest.raises(TrainingDiverged, match=r"(running_(var|mean) became NaN or infinite during epoch 1"
                                               r"|the test loss became nan after epoch 1)"):
        fit(config)
    last = Path(config.out_dir) / "last.npz"
    if last.exists():  # whatever was written can be evaluated: every array in it is finite
        assert all(np.isfinite(v).all() for v in load_checkpoint(last).model_state.values())


def test_epoch_row_arithmetic():
    test = SimpleNamespace(loss=0.5, top1_error=0.25, top5_error=0.05, accuracy=0.75)
    row = epoch_row(3, 0.01, {"loss_sum": 20.0, "top1": 30, "top5": 38, "seen": 40, "time_s": 2.0},
                    test, 7.5)
    assert row == pytest.approx({"epoch": 3, "lr": 0.01, "train_loss": 0.5, "train_top1_error": 0.25,
                   "train_top5_error": 0.05, "test_loss": 0.5, "test_top1_error": 0.25,
                   "test_top5_error": 0.05, "test_accuracy": 0.75, "epoch_time_s": 2.0,
                   "train_images_per_s": 20.0, "elapsed_s": 7.5})


def test_build_transforms_records_the_normalisation_and_checks_pad_to(tiny_config):
    images = np.arange(2 * 3 * 8 * 8, dtype=np.uint8).reshape(2, 3, 8, 8)
    data = SimpleNamespace(image_shape=(3, 8, 8),
                           channel_stats=lambda: (images.mean(axis=(0, 2, 3)) / 255,
                                                  images.std(axis=(0, 2, 3)) / 255))
    normalization, train, test = build_transforms(tiny_config(pad_to=10), data)
    assert normalization["pad_to"] == 10 and len(normalization["mean"]) == 3
    assert train.augment and not test.augment
    with pytest.raises(UsageError, match=r"pad_to=6: expected an integer >= the image size 8"):
        build_transforms(tiny_config(pad_to=6), data)


def test_a_subset_larger_than_its_split_is_said_to_be_the_whole_split(tiny_config):
    from sescratch.train import Trainer

    trainer = Trainer(tiny_config(subset=10**6, test_subset=10**6, epochs=1))
    n_train, n_test = len(trainer.data.y_train), len(trainer.data.y_test)
    assert [n for n in trainer.notes if n.startswith("note: --")] == [
        f"note: --subset 1000000 is more than the {n_train} images of synthetic's training split: all {n_train} are used",
        f"note: --test-subset 1000000 is more than the {n_test} images of synthetic's test split: all {n_test} are used"]
