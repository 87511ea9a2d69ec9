"""An in-process stand-in for MPI: R threads, one per simulated rank, summing through a barrier.

``run_ranks(R, fn)`` calls ``fn(comm)`` on R threads and returns their results in rank order;
``comm`` has the :class:`sescratch.train.distributed.Communicator` interface (``rank``, ``size``,
``timeout``, ``allreduce_sum``, ``bcast``, ``allgather``, ``barrier``, ``abort``), so collective
code runs unchanged.
"""
from __future__ import annotations

import threading

import numpy as np


class _Group:
    def __init__(self, size: int):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=60)
        self.slots: list = [None] * size
        self.calls = 0


class ThreadComm:
    timeout = 60.0  # seconds, as the barrier's

    def __init__(self, group: _Group, rank: int):
        self.group, self.rank, self.size = group, rank, group.size
        self.calls = 0  # allreduce_sum calls made by this rank

    def _exchange(self, value) -> list:
        g = self.group
        g.slots[self.rank] = value
        g.barrier.wait()
        values = list(g.slots)
        g.barrier.wait()  # everyone has read before the next call overwrites
        return values

    def allreduce_sum(self, flat):
        self.calls += 1
        values = self._exchange(np.array(flat, dtype=flat.dtype))
        out = values[0].copy()
        for v in values[1:]:
            out += v
        return out

    def bcast(self, obj, root: int = 0):
        return self._exchange(obj)[root]

    def allgather(self, obj) -> list:
        return self._exchange(obj)

    def barrier(self) -> None:
        self._exchange(None)

    def abort(self, message: str, code: int = 1) -> None:
        from sescratch.train.distributed import DistributedError

        raise DistributedError(f"rank {self.rank}/{self.size}: {message}")


def run_ranks(size: int, fn) -> list:
    """``[fn(comm_0), ..., fn(comm_{R-1})]``, each on its own thread; re-raises a rank's error."""
    group = _Group(size)
    results, errors = [None] * size, []

    def work(rank):
        try:
            results[rank] = fn(ThreadComm(group, rank))
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(exc)
            group.barrier.abort()

    threads = [threading.Thread(target=work, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
