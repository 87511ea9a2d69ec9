"""The GPU side of :mod:`sescratch.train.distributed`: allreduce of CuPy arrays with NCCL."""
from __future__ import annotations

import contextlib
import threading
import time

from sescratch.backend import get_array_module

__all__ = ["NcclAllreduce"]


class NcclAllreduce:
    """Sum CuPy arrays over the ranks with NCCL (``cupy.cuda.nccl``), ChainerMN's pattern.

    One NCCL communicator per process: rank 0 creates the unique id, MPI broadcasts it, every
    rank joins (``NcclCommunicator(size, id, rank)``; each process drives one GPU, the one
    CuPy has current). The join blocks until every rank has joined, so it runs on a helper
    thread (on the caller's GPU) that the caller waits for up to the communicator's timeout; the
    reduction is enqueued on the current stream, and the wait for it polls the stream against
    the same deadline as the MPI collectives. Either way a dead peer aborts the job instead of
    hanging it. ``nccl``, ``stream_of`` and ``on_device`` (a context manager that makes the
    caller's GPU current) are seams for tests without a GPU.
    """

    _DTYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64", "float16": "NCCL_FLOAT16"}

    def __init__(self, comm: Communicator, *, nccl=None, stream_of=None, on_device=None):
        if nccl is None:
            import cupy
            from cupy.cuda import nccl

            on_device = on_device or cupy.cuda.Device()  # the GPU current on this thread
        self.nccl = nccl
        uid = nccl.get_unique_id() if comm.rank == 0 else None
        uid = comm.bcast(uid)
        self.comm = _join(nccl, comm, uid, on_device or contextlib.nullcontext())
        self.stream_of = stream_of or _current_cupy_stream

    def allreduce_sum(self, flat, *, deadline: float, on_timeout):
        """``flat`` summed over the ranks (a new array); ``on_timeout(message)`` past ``deadline``."""
        name = self._DTYPES.get(str(flat.dtype))
        if name is None:
            raise TypeError(f"NCCL allreduce: unsupported dtype {flat.dtype} (float16/32/64 only)")
        xp = get_array_module(flat)
        out = xp.empty_like(flat)
        stream = self.stream_of()
        self.comm.allReduce(_pointer(flat), _pointer(out), flat.size, getattr(self.nccl, name),
                            self.nccl.NCCL_SUM, stream.ptr)
        while not stream.done:
            if time.monotonic() > deadline:
                on_timeout(f"NCCL allreduce ({flat.nbytes} bytes) did not complete in time: another "
                           "rank has died or hangs")
            time.sleep(0.0002)
        return out


def _join(nccl, comm: Communicator, uid, on_device):
    """``nccl.NcclCommunicator(size, uid, rank)``, or ``comm.abort`` when it has not returned
    within ``comm.timeout`` (a rank died after the id's broadcast). Its errors are raised here."""
    joined = {}

    def join():
        try:
            with on_device:
                joined["comm"] = nccl.NcclCommunicator(comm.size, uid, comm.rank)
        except BaseException as exc:  # raised again on the caller's thread
            joined["error"] = exc

    worker = threading.Thread(target=join, name="sescratch-nccl-init", daemon=True)
    worker.start()
    worker.join(comm.timeout)
    if worker.is_alive():
        comm.abort(f"NCCL init ({comm.size} ranks) did not complete within {comm.timeout:g} s: "
                   "another rank has died or hangs")
    if "error" in joined:
        raise joined["error"]
    return joined["comm"]


def _pointer(a) -> int:
    """The device pointer of a CuPy array (the host pointer of a NumPy one, for tests)."""
    return a.data.ptr if hasattr(a.data, "ptr") else a.ctypes.data


def _current_cupy_stream():
    import cupy

    return cupy.cuda.get_current_stream()
