"""Communicator, DataParallel and the NCCL path without MPI: threaded ranks and a mock NCCL."""
import ctypes
import threading
import time

import numpy as np
import pytest

from sescratch.data import BatchIterator, Transform
from sescratch.errors import UsageError
from sescratch.nn.module import Parameter
from sescratch.train.distributed import (Communicator, DataParallel, DistributedError, NcclAllreduce,
                                         shard_bounds)
from tests.distributed.threaded import run_ranks


def test_single_process_communicator_is_the_identity():
    comm = Communicator(None)
    assert (comm.rank, comm.size) == (0, 1)
    v = np.arange(3.0)
    out = comm.allreduce_sum(v)
    np.testing.assert_array_equal(out, v)
    assert out is not v
    assert comm.bcast("x") == "x" and comm.allgather(1) == [1]
    comm.barrier()
    with pytest.raises(DistributedError, match="rank 0/1: boom|boom"):
        comm.abort("boom")


@pytest.mark.parametrize("n,size", [(25, 2), (7, 3), (64, 4), (5, 5)])
def test_shards_cover_the_batch_once(n, size):
    bounds = [shard_bounds(n, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_one_allreduce_per_step_averages_gradients_and_ors_the_flags():
    shapes = [(2, 3), (4,), (1, 1, 2, 2)]

    def rank(comm):
        rng = np.random.default_rng(comm.rank)
        params = [Parameter(np.zeros(s)) for s in shapes]
        for p in params:
            p.grad = rng.standard_normal(p.shape)
        local = [p.grad.copy() for p in params]
        flags = DataParallel(comm).reduce_gradients(params, nonfinite=comm.rank == 2, stop=False)
        return local, [p.grad for p in params], flags, comm.calls

    out = run_ranks(3, rank)
    for k in range(len(shapes)):
        expected = sum(o[0][k] for o in out) / 3
        for o in out:
            np.testing.assert_allclose(o[1][k], expected, rtol=1e-15)
    assert all(o[2] == (True, False) and o[3] == 1 for o in out)


def test_uneven_shards_are_weighted_to_the_batch_mean():
    dp = DataParallel(Communicator(None))
    dp.size = 2  # two ranks with shards of 3 and 2 of a last batch of 5 (of batch size 8)
    assert dp.loss_weight(3, 5) == pytest.approx(6 / 5) and dp.loss_weight(2, 5) == pytest.approx(4 / 5)
    # (6/5 * mean3 + 4/5 * mean2) / 2 == (sum3 + sum2) / 5
    assert dp.weigh(np.ones(2, np.float32), 3, 2, 21, 8).dtype == np.float32
    with pytest.raises(UsageError, match="last batch of 1"):
        dp.check_batches(17, 8)


def test_different_configurations_are_detected_on_every_rank():
    x, y = np.zeros((4, 1, 2, 2)), np.arange(4)

    def rank(comm):
        try:
            DataParallel(comm).check_same_run({"lr": 0.1 if comm.rank != 1 else 0.2}, x, y)
        except UsageError as exc:
            return str(exc)
        return None

    messages = run_ranks(3, rank)
    assert all(m and "ranks [1] have a configuration" in m for m in messages)
    assert run_ranks(2, lambda c: DataParallel(c).check_same_run({"lr": 0.1}, x, y)) == [None, None]


def test_augmentation_depends_on_the_image_not_on_the_shard():
    """A batch drawn whole, or as two shards, is augmented identically (seed, epoch, index)."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (10, 1, 6, 6), dtype=np.uint8), np.arange(10)
    t = Transform(mean=[0.5], std=[0.25], augment=True, crop_padding=2)

    def epoch(shard):
        it = BatchIterator(x, y, 5, rng=np.random.default_rng(3), shuffle=True, transform=t,
                           sample_key=(7, 1), shard=shard)
        return list(it)

    whole = epoch(None)
    parts = [epoch((r, 2)) for r in range(2)]
    for b, (xb, yb) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([parts[0][b][0], parts[1][b][0]]), xb)
        np.testing.assert_array_equal(np.concatenate([parts[0][b][1], parts[1][b][1]]), yb)
    other_epoch = list(BatchIterator(x, y, 5, rng=np.random.default_rng(3), shuffle=True, transform=t,
                                     sample_key=(7, 2)))
    assert any((a[0] != b[0]).any() for a, b in zip(whole, other_epoch))


class FakeNccl:
    """cupy.cuda.nccl's surface: get_unique_id, NcclCommunicator.allReduce on raw pointers."""

    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_FLOAT16, NCCL_SUM = 7, 8, 6, 0
    _groups: dict = {}
    _lock = threading.Lock()

    @staticmethod
    def get_unique_id():
        return (b"uid",)

    class NcclCommunicator:
        def __init__(self, size, uid, rank):
            with FakeNccl._lock:
                self.group = FakeNccl._groups.setdefault(uid, (threading.Barrier(size), [None] * size))
            self.rank, self.size, self.uid = rank, size, uid

        def allReduce(self, send, recv, count, dtype, op, stream):
            assert op == FakeNccl.NCCL_SUM and dtype == FakeNccl.NCCL_FLOAT64 and stream == 123
            view = lambda ptr: np.ctypeslib.as_array((ctypes.c_double * count).from_address(ptr))  # noqa: E731
            barrier, slots = self.group
            slots[self.rank] = view(send).copy()
            barrier.wait()
            view(recv)[:] = sum(slots)
            barrier.wait()


class DoneStream:
    ptr, done = 123, True


def test_nccl_path_broadcasts_the_id_and_reduces_on_the_stream():
    def rank(comm):
        nccl = NcclAllreduce(comm, nccl=FakeNccl, stream_of=DoneStream)
        assert nccl.comm.uid == (b"uid",) and nccl.comm.size == 2
        out = nccl.allreduce_sum(np.full(5, comm.rank + 1.0), deadline=1e18, on_timeout=None)
        return out

    for out in run_ranks(2, rank):
        np.testing.assert_array_equal(out, np.full(5, 3.0))
    with pytest.raises(TypeError, match="unsupported dtype"):
        NcclAllreduce(Communicator(None), nccl=FakeNccl, stream_of=DoneStream).allreduce_sum(
            np.zeros(2, np.int64), deadline=1e18, on_timeout=None)


class NeverDone:
    ptr, done = 123, False


def test_a_collective_past_its_deadline_aborts_the_job(capsys):
    class Request:
        def Test(self):
            return False

    class Comm:
        aborted = None

        def Get_rank(self):
            return 1

        def Get_size(self):
            return 2

        def Ibarrier(self):
            return Request()

        def Abort(self, code):
            Comm.aborted = code
            raise SystemExit(code)

    comm = Communicator(Comm(), timeout=0.05)
    with pytest.raises(SystemExit):
        comm.barrier()
    assert Comm.aborted == 1
    assert "rank 1/2: barrier did not complete within 0.05 s" in capsys.readouterr().err

    nccl = NcclAllreduce(Communicator(None), nccl=FakeNccl, stream_of=NeverDone)
    nccl.comm.allReduce = lambda *args: None
    messages = []

    def give_up(message):
        messages.append(message)
        raise SystemExit(1)

    with pytest.raises(SystemExit):
        nccl.allreduce_sum(np.zeros(2), deadline=0.0, on_timeout=give_up)
    assert "NCCL allreduce (16 bytes) did not complete in time" in messages[0]


def test_an_nccl_init_that_never_returns_aborts_the_job():
    released = threading.Event()

    class HangingNccl(FakeNccl):
        class NcclCommunicator:  # a peer that died after the id's broadcast: the join never returns
            def __init__(self, size, uid, rank):
                released.wait(10)

    t0 = time.monotonic()
    with pytest.raises(DistributedError, match=r"NCCL init \(1 ranks\) did not complete within 0.05 s"):
        NcclAllreduce(Communicator(None, timeout=0.05), nccl=HangingNccl, stream_of=DoneStream)
    assert time.monotonic() - t0 < 5
    released.set()


def test_an_nccl_init_error_is_raised_on_the_callers_thread_on_its_gpu():
    entered = []

    class OnGpu:
        def __enter__(self):
            entered.append(threading.current_thread().name)

        def __exit__(self, *exc):
            return False

    class FailingNccl(FakeNccl):
        class NcclCommunicator:
            def __init__(self, size, uid, rank):
                raise RuntimeError("NCCL_ERROR_UNHANDLED_CUDA_ERROR")

    with pytest.raises(RuntimeError, match="NCCL_ERROR_UNHANDLED_CUDA_ERROR"):
        NcclAllreduce(Communicator(None), nccl=FailingNccl, stream_of=DoneStream, on_device=OnGpu())
    assert entered == ["sescratch-nccl-init"]
