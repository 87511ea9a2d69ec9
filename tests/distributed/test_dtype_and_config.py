"""--dtype float64 training, and the distributed options of TrainConfig / the CLI."""
import numpy as np
import pytest

from sescratch.errors import UsageError
from sescratch.train import TrainConfig, fit, load_checkpoint
from sescratch.train.cli import config_from_args

TINY = dict(model="se_resnet20", model_options={"width": 4}, reduction=2, dataset="synthetic",
            dataset_options={"n_train": 64, "n_test": 32, "size": 8}, epochs=1, batch_size=32,
            lr=0.05, crop_padding=1, backend="numpy", progress=False, eval_batch_size=64)


def test_float64_training_keeps_float64_weights(tmp_path):
    result = fit(TrainConfig(**TINY, dtype="float64", out_dir=str(tmp_path / "f64")))
    assert result.model.dtype == np.float64
    ckpt = load_checkpoint(tmp_path / "f64" / "last.npz")
    assert all(v.dtype == np.float64 for k, v in ckpt.model_state.items() if "num_batches" not in k)
    assert np.isfinite(result.history[-1]["train_loss"])


def test_distributed_options_are_checked_and_resumable(tmp_path):
    with pytest.raises(UsageError, match="sync_bn=True: needs distributed"):
        TrainConfig(**TINY, sync_bn=True).validate()
    with pytest.raises(UsageError, match="comm_timeout=0: expected a finite number of seconds > 0"):
        TrainConfig(**TINY, distributed=True, comm_timeout=0).validate()
    a = TrainConfig(**TINY, distributed=True, sync_bn=True, comm_timeout=5.0)
    assert TrainConfig(**TINY).differences(a) == []  # a resume may change N, sync BN and the timeout
    assert TrainConfig(**TINY).differences(TrainConfig(**TINY, dtype="float64")) != []


def test_cli_parses_the_distributed_options():
    from sescratch.cli import build_parser

    args = build_parser().parse_args(["train", "--distributed", "--sync-bn", "--dtype", "float64",
                                      "--comm-timeout", "30", "--no-progress"])
    config = config_from_args(args)
    assert (config.distributed, config.sync_bn, config.dtype, config.comm_timeout) == (True, True, "float64", 30.0)


def test_a_distributed_run_resumes_as_one_process_or_without_sync_bn(tmp_path, monkeypatch):
    from sescratch.cli import build_parser
    from sescratch.train.communicator import Communicator

    monkeypatch.setattr(Communicator, "world", classmethod(lambda cls, timeout=600.0: cls(None)))
    out = str(tmp_path / "run")
    fit(TrainConfig(**TINY, distributed=True, sync_bn=True, out_dir=out))

    def resumed(*options):
        return config_from_args(build_parser().parse_args(["train", "--resume", "--out", out, *options]))

    assert (resumed().distributed, resumed().sync_bn) == (True, True)  # the stored values
    assert (resumed("--no-sync-bn").distributed, resumed("--no-sync-bn").sync_bn) == (True, False)
    alone = resumed("--no-distributed", "--epochs", "2")
    assert (alone.distributed, alone.sync_bn) == (False, False)
    result = fit(alone)
    assert result.status == "completed" and [r["epoch"] for r in result.history] == [1, 2]
    with pytest.raises(UsageError, match="--sync-bn True: needs distributed"):
        resumed("--no-distributed", "--sync-bn")


def test_a_single_process_distributed_run_equals_a_plain_run(tmp_path, monkeypatch):
    """Without mpirun, --distributed runs on the one-process stand-in: same numbers, bit for bit."""
    from sescratch.train.communicator import Communicator

    # the stand-in, even where mpi4py is installed: MPI is not initialised inside pytest
    monkeypatch.setattr(Communicator, "world", classmethod(lambda cls, timeout=600.0: cls(None)))
    plain = fit(TrainConfig(**TINY, out_dir=str(tmp_path / "plain")))
    alone = fit(TrainConfig(**TINY, distributed=True, sync_bn=True, out_dir=str(tmp_path / "alone")))
    for (name, p), q in zip(plain.model.named_parameters(), alone.model.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
