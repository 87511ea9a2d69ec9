"""How the conv kernels cut a batch into chunks, keep their buffers, and spread them over threads.

Intermediate arrays (im2col columns, Winograd tiles) are several times larger than a layer's
input. Processing the batch in chunks bounds their size, keeps each chunk in cache between the
kernel that writes it and the matrix product that reads it, and lets one buffer per thread serve
every layer: no large allocation is made, page-faulted and freed at every call.

:func:`map_chunks` runs the chunks on a few Python threads (Numba's thread count). Each thread
takes the next chunk and runs it start to end: Numba kernels compiled with ``nogil=True``, then
matrix products small enough (``M*N*K <= GEMM_SIZE``) that OpenBLAS computes them on the calling
thread. A layer then costs one hand-off between threads, instead of one per kernel and per
product, and Numba's and OpenBLAS's thread pools never take turns on the same cores (on a busy
two-core machine, each such turn can wait a whole scheduler time slice).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numba
import numpy as np

CHUNK_BYTES = 1 << 20  # im2col: a chunk holds about this many bytes of columns
# M*N*K of each matrix product a chunk makes. OpenBLAS splits a product over t threads only when
# M*N*K >= t * 4 * 65536, so below 2 * 4 * 65536 it runs on the calling thread.
GEMM_SIZE = (1 << 19) - 1

_buffers = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def buffer(slot: str, shape: tuple, dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` for ``slot``, reused across calls (contents undefined).

    The memory is per thread and grows to the largest request seen; two slots never alias.
    """
    size = int(np.prod(shape))
    buf = getattr(_buffers, slot, None)
    if buf is None or buf.dtype != np.dtype(dtype) or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        setattr(_buffers, slot, buf)
    return buf[:size].reshape(shape)


def image_chunks(N: int, per_image: int, budget: int | None = None) -> list[tuple[int, int]]:
    """Ranges ``[n0, n1)`` covering ``range(N)``, each ``budget // per_image`` images (at least 1);
    ``budget`` defaults to CHUNK_BYTES."""
    budget = CHUNK_BYTES if budget is None else budget
    step = max(1, min(N, budget // max(1, per_image)))
    return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)]


MIN_BLOCK_COLUMNS = 8  # narrower pieces would be matrix-vector products: BLAS can't use them well


def column_blocks(P: int, rows: int, inner: int) -> list[tuple[int, int]]:
    """Column ranges ``[p0, p1)`` cutting a product (rows x inner) @ (inner x P) into pieces of at
    most GEMM_SIZE multiply-adds, so that BLAS runs each on the calling thread.

    When even MIN_BLOCK_COLUMNS columns exceed GEMM_SIZE (the wide layers of ImageNet models,
    e.g. 2048 x 1024 weights), the product is not cut at all: a single large GEMM, which BLAS may
    spread over its own threads, is far faster than hundreds of thin ones.
    """
    step = GEMM_SIZE // max(1, rows * inner)
    if step < MIN_BLOCK_COLUMNS:
        return [(0, P)]
    return [(p0, min(P, p0 + step)) for p0 in range(0, P, step)]


def _executor(workers: int) -> ThreadPoolExecutor:
    """The helper threads (created once, grown when more are asked for)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sescratch-conv")
            _pool_size = workers
        return _pool


def map_chunks(work: Callable[[int, int], object], chunks: list[tuple[int, int]]) -> list:
    """``[work(n0, n1) for n0, n1 in chunks]``, the chunks shared out over Numba's thread count.

    ``work`` must only write to memory no other chunk writes (its own images, its own buffers).
    The calling thread works too; an exception in any chunk is raised here.
    """
    workers = min(len(chunks), numba.get_num_threads())
    if workers <= 1:
        return [work(n0, n1) for n0, n1 in chunks]
    results: list = [None] * len(chunks)
    next_chunk = iter(range(len(chunks)))
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                i = next(next_chunk, None)
            if i is None:
                return
            results[i] = work(*chunks[i])

    helpers = [_executor(workers - 1).submit(run) for _ in range(workers - 1)]
    try:
        run()
    finally:
        for helper in helpers:
            helper.result()
    return results
