"""``mpirun -n 2 sescratch train --distributed``: exactness against one process, resume across N."""
import pytest

from tests.distributed.mpirun import TINY, max_relative_difference, needs_mpi, train, weights

pytestmark = [needs_mpi, pytest.mark.slow]


def test_two_ranks_with_sync_bn_equal_one_process_and_resume_across_world_sizes(tmp_path):
    """Global batch B on 2 ranks (sync BN, augmentation on) == batch B in one process, <= 1e-9."""
    one, two = tmp_path / "one", tmp_path / "two"
    train(0, *TINY, "--epochs", "2", "--out", str(one))
    train(2, *TINY, "--epochs", "1", "--out", str(two), "--sync-bn")
    assert not (two / ".lock.1").exists()
    # the run of 2 ranks continues in one plain process: checkpoints do not depend on N
    done = train(0, *TINY, "--epochs", "2", "--out", str(two), "--sync-bn", "--resume")
    assert "resuming after epoch 1" in done.stdout
    assert max_relative_difference(weights(one / "last.npz"), weights(two / "last.npz")) <= 1e-9


def test_one_process_checkpoint_resumes_on_two_ranks_and_only_rank_0_prints(tmp_path):
    one, mixed = tmp_path / "one", tmp_path / "mixed"
    train(0, *TINY, "--epochs", "2", "--out", str(one))
    train(0, *TINY, "--epochs", "1", "--out", str(mixed))
    done = train(2, *TINY, "--epochs", "2", "--out", str(mixed), "--sync-bn", "--resume")
    assert done.stdout.count("epoch 2/2:") == 1  # one line per epoch: rank 1 prints nothing
    assert max_relative_difference(weights(one / "last.npz"), weights(mixed / "last.npz")) <= 1e-9
