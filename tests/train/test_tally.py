"""Reading the loss and top-k counts every few batches (as on a GPU) changes no number.

On a GPU the trainer leaves each batch's loss and top-1 / top-5 counts on the device and reads
them every ``GPU_READ_EVERY`` batches (:class:`sescratch.train.metrics.EpochTally`). Here the
same code path runs on the CPU, with the tally forced to read every 2 batches: the history and
checkpoint must be those of a run that reads every batch, and a NaN loss must still name its batch.
"""
from pathlib import Path

import numpy as np
import pytest

from sescratch.train import TrainingDiverged, fit, trainer as trainer_module
from sescratch.train.metrics import EpochTally, topk_correct, topk_hits
from tests.helpers import assert_same_checkpoint


class EveryTwo(EpochTally):
    def __init__(self, partial, every=1):
        super().__init__(partial, every=2)


def test_topk_hits_is_topk_correct_left_as_an_array():
    rng = np.random.default_rng(0)
    logits, labels = np.round(rng.standard_normal((50, 7)), 1), rng.integers(0, 7, 50)  # ties
    logits[3, 2] = np.nan
    for k in (1, 2, 5, 9):
        hits = topk_hits(logits, labels, k)
        assert isinstance(hits, np.integer | np.ndarray) and int(hits) == topk_correct(logits, labels, k)
        expected = sum(int(np.isfinite(row).all() and (np.argsort(-row, kind="stable")[:k] == t).any())
                       for row, t in zip(logits, labels))
        assert int(hits) == expected


def test_a_tally_read_in_batches_sums_as_one_read_per_batch():
    rng = np.random.default_rng(1)
    batches = [(np.float32(rng.random() * 3), rng.standard_normal((n, 10)), rng.integers(0, 10, n))
               for n in (32, 32, 17)]
    one = {"loss_sum": 0.0, "top1": 0, "top5": 0, "seen": 0}
    for loss, logits, labels in batches:  # the per-batch bookkeeping the trainer did before
        one["loss_sum"] += float(loss) * len(labels)
        one["top1"] += topk_correct(logits, labels, 1)
        one["top5"] += topk_correct(logits, labels, 5)
        one["seen"] += len(labels)
    p = {"loss_sum": 0.0, "top1": 0, "top5": 0, "seen": 0}
    tally = EpochTally(p, every=3)
    for b in batches:
        assert not tally.due
        tally.add(*b)
    assert tally.due and tally.flush() is None and tally.pending == 0
    assert p == one  # the float64 sum bit for bit


def test_a_nan_in_the_pending_batches_is_found_with_its_position():
    p = {"loss_sum": 0.0, "top1": 0, "top5": 0, "seen": 0}
    tally = EpochTally(p, every=4)
    logits, labels = np.zeros((2, 3)), np.array([0, 1])
    for loss in (np.float32(1.0), np.float32(np.inf), np.float32(np.nan)):
        tally.add(loss, logits, labels)
    assert tally.flush() == (1, float("inf"))


@pytest.mark.slow  # two training runs
def test_delayed_reads_equal_per_batch_reads(tiny_config, monkeypatch):
    straight = fit(tiny_config("per-batch", epochs=2))  # 3 batches an epoch: reads after 2, then 1
    monkeypatch.setattr(trainer_module, "EpochTally", EveryTwo)
    delayed = fit(tiny_config("every-two", epochs=2))
    assert_same_checkpoint(Path(delayed.out_dir) / "last.npz", Path(straight.out_dir) / "last.npz")
    assert [r["train_loss"] for r in delayed.history] == [r["train_loss"] for r in straight.history]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_delayed_reads_still_name_the_batch_of_a_nan_loss(tiny_config, monkeypatch):
    messages = []
    for name in ("per-batch", "every-two"):
        if name == "every-two":
            monkeypatch.setattr(trainer_module, "EpochTally", EveryTwo)
        # lr 0.05 for epoch 1, then 5e30: the loss becomes NaN/inf during epoch 2
        with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at epoch 2, batch \d") as info:
            fit(tiny_config(name, schedule="step", step_size=1, gamma=1e32))
        messages.append(str(info.value).split(" (lr")[0])
    assert messages[0] == messages[1]
