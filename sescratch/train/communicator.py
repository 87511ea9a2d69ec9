"""The few MPI collectives data-parallel training needs, each bounded by a deadline.

:class:`Communicator` wraps an ``mpi4py`` communicator (or stands in for one process): ``rank``,
``size``, ``allreduce_sum`` of a flat array (``Iallreduce``, polled), ``bcast``, ``allgather``,
``barrier``, and ``abort``, which ends every rank of the job. See :mod:`sescratch.train.distributed`.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from sescratch.backend import get_array_module, to_numpy
from sescratch.errors import SescratchError

__all__ = ["Communicator", "DistributedError", "DEFAULT_TIMEOUT", "launched_size"]

DEFAULT_TIMEOUT = 600.0  # seconds a rank waits in one collective before aborting the job
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE")


class DistributedError(SescratchError):
    """A distributed run cannot start or continue (no MPI, a timed-out collective, ...)."""


class Communicator:
    """``rank``, ``size`` and the few collectives training needs, each bounded by ``timeout``.

    ``comm`` is an ``mpi4py`` communicator, or None for one process (every collective is then
    the identity). ``nccl`` (a :class:`NcclAllreduce`) reduces CuPy arrays on the GPU.
    """

    def __init__(self, comm=None, *, timeout: float = DEFAULT_TIMEOUT, nccl=None):
        self.comm, self.timeout, self.nccl = comm, float(timeout), nccl
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.calls = 0  # allreduce_sum calls so far: names the collective that timed out

    @classmethod
    def world(cls, timeout: float = DEFAULT_TIMEOUT) -> "Communicator":
        """``MPI.COMM_WORLD``; the single-process stand-in when not started by ``mpirun``."""
        try:
            from mpi4py import MPI
        except ImportError:
            launched = launched_size()
            if launched > 1:
                raise DistributedError(f"started as one of {launched} MPI processes, but mpi4py is "
                                       "not installed: pip install -e '.[mpi]'") from None
            return cls(None, timeout=timeout)
        return cls(MPI.COMM_WORLD, timeout=timeout)

    def allreduce_sum(self, flat):
        """The element-wise sum of ``flat`` (a 1-D array) over all ranks, as a new array."""
        self.calls += 1
        if self.size == 1:
            return flat.copy()
        if get_array_module(flat) is not np:
            if self.nccl is not None:
                return self.nccl.allreduce_sum(flat, deadline=self._deadline(), on_timeout=self.abort)
            return get_array_module(flat).asarray(self.allreduce_sum(to_numpy(flat)))
        from mpi4py import MPI

        flat = np.ascontiguousarray(flat)
        out = np.empty_like(flat)
        self._wait(self.comm.Iallreduce(flat, out, op=MPI.SUM),
                   f"allreduce #{self.calls} ({flat.nbytes} bytes)")
        return out

    def barrier(self) -> None:
        if self.size > 1:
            self._wait(self.comm.Ibarrier(), "barrier")

    def allgather(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order; a barrier first bounds the wait."""
        if self.size == 1:
            return [obj]
        self.barrier()
        return self.comm.allgather(obj)

    def bcast(self, obj, root: int = 0):
        """Rank ``root``'s ``obj`` on every rank (picklable); a barrier first bounds the wait."""
        if self.size == 1:
            return obj
        self.barrier()
        return self.comm.bcast(obj, root=root)

    def _deadline(self) -> float:
        return time.monotonic() + self.timeout

    def _wait(self, request, what: str) -> None:
        """Poll ``request`` until done; past the deadline, abort the whole job."""
        deadline, spins = self._deadline(), 0
        while not request.Test():
            spins += 1
            if spins > 2000:  # ~ a millisecond of spinning, then yield the core
                time.sleep(0.0005)
                if time.monotonic() > deadline:
                    self.abort(f"{what} did not complete within {self.timeout:g} s: another rank "
                               "has died or hangs")

    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` (naming this rank) to stderr and end every rank of the job."""
        print(f"sescratch: rank {self.rank}/{self.size}: {message}; aborting the whole job "
              "(the checkpoints written so far are intact: continue with --resume)",
              file=sys.stderr, flush=True)
        if self.comm is None:
            raise DistributedError(message)
        self.comm.Abort(code)


def launched_by_mpirun() -> bool:
    """Whether ``mpirun`` (or another PMI launcher) started this process, ``-n 1`` included."""
    return any(v in os.environ for v in _SIZE_VARIABLES)


def launched_size() -> int:
    """How many processes ``mpirun`` started (from its environment; 1 when not under MPI)."""
    sizes = [os.environ.get(v, "") for v in _SIZE_VARIABLES]
    return max([int(v) for v in sizes if v.isdigit()] or [1])
