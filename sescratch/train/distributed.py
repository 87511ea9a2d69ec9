"""Data-parallel training over MPI processes: ``mpirun -n N sescratch train --distributed``.

Every rank holds the whole model. ``--batch-size B`` is the *global* batch: all ranks draw the
same permutation (same seed), rank r reads the contiguous block ``[B r / N, B (r + 1) / N)`` of
every global batch, runs forward and backward on it, then :meth:`DataParallel.reduce_gradients`
packs every gradient, plus two flags, into **one** flat buffer, allreduces it once (MPI
``Iallreduce`` on a NumPy buffer; NCCL for CuPy arrays) and divides by N, so every rank applies
the same SGD update. The local loss is the shard's mean; for an uneven last batch the trainer
weighs the shard's ``dlogits`` by ``N n_r / B`` (:meth:`DataParallel.loss_weight`), which makes
the update the one-process update of the whole batch.

Faults end the whole job, never hang it: every collective is non-blocking and polled against a
deadline (``--comm-timeout``, default 600 s); a rank that waits longer (a peer died, e.g. by
``kill -9``, or hangs) prints which collective timed out and calls ``MPI_Abort``, so ``mpirun``
exits non-zero. Checkpoints are written by rank 0 only, atomically, so the last one stays intact.
A NaN loss on any rank sets a flag in the same allreduce, and every rank stops together. At
start, :meth:`DataParallel.check_same_run` compares a hash of the configuration and the data on
all ranks. Without MPI (or with one process) :class:`Communicator` is a single-process stand-in.
The collectives live in :mod:`sescratch.train.communicator`, the NCCL path in
:mod:`sescratch.train.nccl`; the derivation of sync BN in ``docs/derivations/sync_batchnorm.md``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sys
import time
import zlib
from contextlib import contextmanager

import numpy as np

from sescratch.backend import get_array_module, to_numpy
from sescratch.errors import UsageError
from sescratch.train.communicator import DEFAULT_TIMEOUT, Communicator, DistributedError, launched_size
from sescratch.train.nccl import NcclAllreduce

__all__ = ["Communicator", "DataParallel", "DistributedError", "NcclAllreduce", "DEFAULT_TIMEOUT",
           "use_sync_batchnorm", "shard_bounds", "data_parallel", "failing_together", "launched_size",
           "quiet_unless_root", "NoRunLock", "FAULT_ENV"]

# Test-only fault injection: "KIND:RANK:STEP" with KIND kill (SIGKILL itself), hang (sleep for
# ever), nan (report a non-finite loss) or int (SIGINT itself) makes rank RANK fail at its
# STEP-th gradient allreduce.
FAULT_ENV = "SESCRATCH_TEST_FAULT"
_LOCAL_RANK_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID")


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``rank``'s contiguous block of ``n`` samples (sizes differ by <= 1)."""
    return n * rank // size, n * (rank + 1) // size


def use_sync_batchnorm(model, comm) -> int:
    """Make every ``BatchNorm2d`` of ``model`` reduce its statistics through ``comm``; count them."""
    from sescratch.nn.layers import BatchNorm2d

    layers = [m for m in model.modules() if isinstance(m, BatchNorm2d)]
    for layer in layers:
        layer.communicator = comm
    return len(layers)


class DataParallel:
    """The trainer's side of data parallelism: shards, one gradient allreduce, agreement checks."""

    FLAGS = 2  # appended to the gradient buffer: [non-finite loss, stop requested]

    def __init__(self, comm: Communicator, *, sync_bn: bool = False):
        self.comm, self.sync_bn = comm, sync_bn
        self.rank, self.size, self.is_root = comm.rank, comm.size, comm.rank == 0
        self._buffer = None
        self.steps = 0  # gradient allreduces done
        self.stop_agreed = False  # a stop (Ctrl-C) requested by any rank, as of the last allreduce

    def shard(self, n_global: int) -> slice:
        """This rank's part of a global batch of ``n_global`` samples."""
        return slice(*shard_bounds(n_global, self.rank, self.size))

    def loss_weight(self, n_local: int, n_global: int) -> float:
        """``N n_r / B``: scales the shard-mean loss gradient so that sum / N is the batch mean's."""
        return self.size * n_local / n_global

    def check_batches(self, n_train: int, batch_size: int) -> None:
        """Every global batch must give every rank at least one sample."""
        last = n_train % batch_size or batch_size
        if min(batch_size, last) < self.size:
            raise UsageError(f"--distributed with {self.size} ranks: every global batch needs >= "
                             f"{self.size} images, but --batch-size {batch_size} over {n_train} "
                             f"images leaves a last batch of {last}; choose another --batch-size "
                             "or --subset")

    def check_batch_norm_shares(self, model, image_shape, n_train: int, batch_size: int) -> None:
        """Without sync BN each rank normalises its own share of a batch: the smallest share
        times the smallest map a BN layer normalises must give 2 values per channel (training
        mode), else that batch would fail at its BN layer after the epoch's work so far."""
        from sescratch.summary import summary

        last = n_train % batch_size or batch_size
        images = min(batch_size, last) // self.size  # the smallest shard of any global batch
        planes = [(math.prod(r.output_shape[1:]), r.name) for r in summary(model, image_shape).records
                  if r.kind == "BatchNorm2d"]
        if not planes or images * min(planes)[0] >= 2:
            return
        plane, layer = min(planes)
        raise UsageError(f"--distributed with {self.size} ranks without --sync-bn: each rank normalises its "
                         f"own share of a batch, and --batch-size {batch_size} over {n_train} images leaves "
                         f"a rank {images} image(s) of a batch, while {layer} normalises maps of {plane} "
                         f"value(s) per channel (batch norm needs >= 2); add --sync-bn, or choose another "
                         "--batch-size or --subset")

    def check_same_run(self, config: dict, x_train, y_train) -> None:
        """Raise :class:`UsageError` on every rank when ranks disagree on configuration, data
        (shape and a CRC of the labels) or sescratch version."""
        from sescratch import __version__

        data = f"{x_train.shape}:{zlib.crc32(np.ascontiguousarray(y_train).tobytes())}:{__version__}"
        text = json.dumps(config, sort_keys=True, default=str) + data
        mine = hashlib.sha256(text.encode()).hexdigest()
        hashes = self.comm.allgather(mine)
        different = [r for r, h in enumerate(hashes) if h != hashes[0]]
        if different:
            raise UsageError(f"--distributed: ranks {different} have a configuration or training "
                             f"data different from rank 0's (hashes {sorted(set(hashes))}); start "
                             "every rank with the same command line and data")

    def attach(self, trainer) -> None:
        """Called once the trainer is built (and restored): check, synchronise, switch sync BN on."""
        self.check_batches(len(trainer.data.y_train), trainer.config.batch_size)
        if not self.sync_bn:
            self.check_batch_norm_shares(trainer.model, trainer.data.image_shape, len(trainer.data.y_train),
                                         trainer.config.batch_size)
        self.check_same_run(trainer.config.to_dict(), trainer.data.x_train, trainer.data.y_train)
        self.broadcast_state(trainer.model, trainer.optimizer)
        if self.sync_bn:
            use_sync_batchnorm(trainer.model, self.comm)

    def weigh(self, dlogits, n_local: int, iteration: int, n_train: int, batch_size: int):
        """``dlogits`` times :meth:`loss_weight` for batch ``iteration`` of the epoch."""
        n_global = min(batch_size, n_train - iteration * batch_size)
        weight = self.loss_weight(n_local, n_global)
        return dlogits if weight == 1 else dlogits * dlogits.dtype.type(weight)

    def gather_epoch(self, model, partial: dict) -> dict:
        """At the end of an epoch, or before a mid-epoch checkpoint (every rank calls it): the
        epoch's counts so far over all ranks, and per-rank BN running statistics averaged (no-op
        with sync BN), so that what rank 0 reports and writes holds what every rank did. The
        running averages are affine in the batch statistics: averaging them mid-epoch too gives
        the end-of-epoch average of a run that never stopped, up to rounding."""
        if not self.sync_bn:
            self.average_buffers(model)
        return self.reduce_counts(partial)

    def broadcast_state(self, model, optimizer) -> None:
        """Give every rank rank 0's weights, buffers and momentum (e.g. after a resume)."""
        if self.size == 1:
            return
        model_state, optim_state = self.comm.bcast(
            (model.state_dict(), optimizer.state_dict()) if self.is_root else None)
        if not self.is_root:
            model.load_state_dict(model_state)
            optimizer.load_state_dict(optim_state)

    def reduce_gradients(self, params, *, nonfinite: bool, stop: bool) -> tuple[bool, bool]:
        """Sum every ``p.grad`` over the ranks (one allreduce), divide by N; the flags, or-ed.

        The trainer acts on the agreed stop flag (:attr:`stop_agreed`), never on its own
        rank's Ctrl-C directly: a signal between two allreduces would make the ranks disagree.

        The buffer has the parameters' dtype (float32 counts the two flags exactly).
        """
        self.steps += 1
        fault = self._inject_fault()
        nonfinite, stop = nonfinite or fault == "nan", stop or fault == "int"
        grads = [p.grad for p in params]
        xp = get_array_module(grads[0])
        total = sum(g.size for g in grads) + self.FLAGS
        if self._buffer is None or self._buffer.size != total or self._buffer.dtype != grads[0].dtype:
            self._buffer = xp.empty(total, dtype=grads[0].dtype)  # packed once, reused every step
        flat, offset = self._buffer, 0
        for g in grads:
            flat[offset:offset + g.size] = g.reshape(-1)
            offset += g.size
        flat[offset], flat[offset + 1] = float(nonfinite), float(stop)
        flat = self.comm.allreduce_sum(flat)  # the one collective of the step
        flat[:offset] /= self.size
        offset = 0
        for g in grads:
            g[...] = flat[offset:offset + g.size].reshape(g.shape)
            offset += g.size
        flags = to_numpy(flat[offset:])
        self.stop_agreed = bool(flags[1] > 0)
        return bool(flags[0] > 0), self.stop_agreed

    def _inject_fault(self) -> str:
        """The test-only faults of :data:`FAULT_ENV`; the kind injected at this step, or ""."""
        kind, _, where = os.environ.get(FAULT_ENV, "").partition(":")
        if not kind or where != f"{self.rank}:{self.steps}":
            return ""
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "hang":
            time.sleep(1e6)
        if kind == "int":  # as if Ctrl-C reached this rank just before this step's allreduce
            os.kill(os.getpid(), signal.SIGINT)
        return kind

    def average_buffers(self, model) -> None:
        """Average the floating buffers (per-rank BN running statistics) over the ranks."""
        buffers = [(m, name) for m in model.modules() for name in m._buffer_names
                   if np.issubdtype(np.dtype(getattr(m, name).dtype), np.floating)]
        if self.size == 1 or not buffers:
            return
        xp = get_array_module(getattr(*buffers[0]))
        flat = xp.concatenate([getattr(m, n).reshape(-1).astype(xp.float64) for m, n in buffers])
        flat = self.comm.allreduce_sum(flat) / self.size
        offset = 0
        for m, name in buffers:
            value = getattr(m, name)
            value[...] = flat[offset:offset + value.size].reshape(value.shape)
            offset += value.size

    def reduce_counts(self, partial: dict) -> dict:
        """The epoch's running sums (loss, top-1, top-5, images seen) over all ranks."""
        keys = ("loss_sum", "top1", "top5", "seen")
        total = self.comm.allreduce_sum(np.array([partial[k] for k in keys], dtype=np.float64))
        out = dict(partial, **{k: float(v) for k, v in zip(keys, total)})
        for k in ("top1", "top5", "seen"):
            out[k] = int(round(out[k]))
        return out


class NoRunLock:
    """What ranks other than 0 hold instead of the run directory's lock: they write nothing."""

    held = False

    def acquire(self) -> "NoRunLock":
        return self

    def release(self) -> None:
        pass


def data_parallel(config) -> DataParallel | None:
    """The :class:`DataParallel` of a ``config.distributed`` run (None otherwise): MPI's world,
    with NCCL for ``backend="cupy"`` on more than one rank."""
    if not config.distributed:
        return None
    comm = Communicator.world(timeout=config.comm_timeout)
    if config.backend == "cupy" and comm.size > 1:
        import cupy

        local = next((int(os.environ[v]) for v in _LOCAL_RANK_VARIABLES if v in os.environ), comm.rank)
        cupy.cuda.Device(local % cupy.cuda.runtime.getDeviceCount()).use()  # one GPU per rank
        comm.nccl = NcclAllreduce(comm)
    return DataParallel(comm, sync_bn=config.sync_bn)


@contextmanager
def failing_together(enabled: bool = True, prog: str = "sescratch train"):
    """An exception on one rank ends every rank at once: print it, then ``MPI_Abort``.

    Without this, the failing rank would block in ``MPI_Finalize`` at exit while the others
    wait in their next collective until ``--comm-timeout``. One process (or ``enabled``
    false): the exception propagates unchanged.
    """
    try:
        yield
    except (Exception, KeyboardInterrupt) as exc:
        comm = Communicator.world() if enabled else None
        if comm is None or comm.size == 1:
            raise
        code = 130 if isinstance(exc, KeyboardInterrupt) else 2 if isinstance(exc, UsageError) else 1
        print(f"{prog}: error on rank {comm.rank}/{comm.size}: {exc or type(exc).__name__}",
              file=sys.stderr, flush=True)
        comm.comm.Abort(code)


def quiet_unless_root(timeout: float = DEFAULT_TIMEOUT) -> int:
    """Send this process's stdout to ``os.devnull`` unless it is rank 0; returns the rank."""
    rank = Communicator.world(timeout=timeout).rank
    if rank:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    return rank
