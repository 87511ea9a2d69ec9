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

Where the OpenBLAS that NumPy calls can be found (the PyPI wheels' ``scipy_openblas``, or a
system ``libopenblas``), :func:`map_chunks` also sets its thread count to 1 while the chunks
run (:func:`blas_on_calling_thread`): a chunk's matrix products may then be as
large as its data, one product per image instead of pieces of at most ``GEMM_SIZE`` (faster
for the im2col shapes of a CIFAR ResNet: docs/benchmarks.md); elsewhere the products are cut as before. A
lone chunk (one image through a large layer) keeps BLAS's own threads. Before its first chunks,
:func:`map_chunks` has OpenBLAS's packing buffers written once (:func:`page_in_blas_buffers`):
small products in a fresh process were up to 3.6x slower than after a large one.
"""
from __future__ import annotations

import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numba
import numpy as np

from sescratch.kernels.numba.openblas import thread_controls

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
    size = math.prod(shape)
    buf = getattr(_buffers, slot, None)
    if buf is None or buf.dtype != np.dtype(dtype) or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        setattr(_buffers, slot, buf)
    return buf[:size].reshape(shape)


def sum_shares(shares: list):
    """The sum of the chunks' shares (of dw, say) in chunk order, added into the first: each share
    must be an array of its chunk's own. ``sum(shares)`` would copy the first into yet another
    array (at 512 channels a Winograd dU of 38 MB, its pages faulted in anew each call). The order
    is the chunks', not the threads' (which thread ran which chunk varies from call to call), so
    the float sums come out the same bits every time."""
    total = shares[0]
    for share in shares[1:]:
        total += share
    return total


def image_chunks(N: int, per_image: int, budget: int | None = None) -> list[tuple[int, int]]:
    """Ranges ``[n0, n1)`` covering ``range(N)``, each at most ``budget // per_image`` images (at
    least 1; ``budget`` defaults to CHUNK_BYTES), in a number of chunks that the threads of
    :func:`map_chunks` share evenly where the batch allows (7 chunks on 2 threads would leave one
    thread idle for a seventh of the layer: 8 smaller ones instead)."""
    budget = CHUNK_BYTES if budget is None else budget
    step = max(1, min(N, budget // max(1, per_image)))
    workers = numba.get_num_threads()
    count = -(-N // step)  # chunks of `step` images
    if count > 1 and count % workers:
        count = min(N, count + workers - count % workers)
    bounds = [i * N // count for i in range(count + 1)]  # sizes differ by at most 1, none above step
    return list(zip(bounds[:-1], bounds[1:]))


@functools.lru_cache(maxsize=None)
def l2_cache_bytes(cpu_cache: str = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """One core's L2 cache in bytes, as Linux's sysfs describes cpu0's caches (``index*/level``
    2, ``size`` such as ``512K``); None where that cannot be read (another OS, a bare container)."""
    for index in sorted(Path(cpu_cache).glob("index*")):
        try:
            if (index / "level").read_text().strip() != "2":
                continue
            size = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
        digits = size.rstrip("KM")
        if digits.isdigit() and int(digits) > 0:
            return int(digits) * scale
    return None


L2_UNKNOWN = 1 << 20  # the L2 size assumed where sysfs does not tell it


def l2_or_assumed() -> int:
    """:func:`l2_cache_bytes`, or L2_UNKNOWN where that cannot be read."""
    return l2_cache_bytes() or L2_UNKNOWN


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


_openblas: list | None = None
_blas_depth = 0
_blas_saved: list[int] = []
_blas_lock = threading.Lock()


def blas_controllable() -> bool:
    """True when :func:`blas_on_calling_thread` can keep OpenBLAS on the calling thread."""
    global _openblas
    if _openblas is None:
        _openblas = thread_controls()
    return bool(_openblas)


@contextmanager
def blas_on_calling_thread() -> Iterator[bool]:
    """Within the block, OpenBLAS runs every product on the thread that calls it (its thread count
    is 1, restored after; nested and concurrent blocks share one setting). Yields whether that
    could be done."""
    global _blas_depth, _blas_saved
    if not blas_controllable():
        yield False
        return
    with _blas_lock:
        if _blas_depth == 0:
            _blas_saved = [get() for get, _ in _openblas]
            for _, put in _openblas:
                put(1)
        _blas_depth += 1
    try:
        yield True
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for (_, put), count in zip(_openblas, _blas_saved):
                    put(count)


PAGE_IN_GEMM = 512  # the side of a square product whose panels fill the pages of a thread's BLAS buffer
_paged_in_threads = 0
_page_in_lock = threading.Lock()


def _page_in_product() -> None:
    """One float32 product of PAGE_IN_GEMM squares: its packed panels write the first ~1 MiB of
    the OpenBLAS buffer the calling thread holds (and its threads' buffers, if BLAS splits it)."""
    a = np.ones((PAGE_IN_GEMM, PAGE_IN_GEMM), dtype=np.float32)
    a @ a


def page_in_blas_buffers(workers: int) -> None:
    """Write the packing buffers OpenBLAS will use, once per process and thread count: those of
    ``workers`` threads calling it at once (BLAS on each calling thread), and those of its own
    threads.

    OpenBLAS maps a 32 MiB buffer for each thread inside a product and packs panels into it;
    pages no product has written yet stay unmapped. Until a product with large panels has written
    them, small products are slow, every time: (64 x 512) @ (512 x 288), the dw of a chunk of a
    32 -> 64 stride-2 conv, ran at 9.6 GFLOP/s before and 35 after one 384-square product in the
    same process, and the stride-2 convs' forward + backward took 0.73x and 0.48x their time
    (2-core AMD EPYC, 2026-12-02). Writing the buffer's pages with memset had the same effect, and
    the sgemm kernel ran with the same arguments before and after: most likely its prefetches past
    the panels it reads, each into an unmapped page a page walk. Cost: one PAGE_IN_GEMM product
    per thread, about 10 ms. The products start together (a barrier) so that each thread holds a
    buffer of its own; a pool thread busy elsewhere for over a second is not waited for.
    """
    global _paged_in_threads
    if workers <= _paged_in_threads:
        return
    with _page_in_lock:
        if workers <= _paged_in_threads:
            return
        _page_in_product()  # large enough for BLAS to run it on its own threads
        together = threading.Barrier(workers)

        def product() -> None:
            try:
                together.wait(timeout=1.0)
            except threading.BrokenBarrierError:
                pass
            _page_in_product()

        with blas_on_calling_thread():  # each chunk holds its thread at the barrier: no thread takes two
            _map_chunks(lambda n0, n1: product(), [(i, i + 1) for i in range(workers)], workers)
        _paged_in_threads = workers


def map_chunks(work: Callable[[int, int], object], chunks: list[tuple[int, int]]) -> list:
    """``[work(n0, n1) for n0, n1 in chunks]``, the chunks shared out over Numba's thread count,
    OpenBLAS kept on the calling threads (:func:`blas_on_calling_thread`) meanwhile.

    ``work`` must only write to memory no other chunk writes (its own images, its own buffers).
    The calling thread works too; an exception in any chunk is raised here. A single chunk (one
    image of a large layer, say) runs on the calling thread with BLAS's threads left as they are.
    """
    workers = min(len(chunks), numba.get_num_threads())
    page_in_blas_buffers(max(1, workers))
    if len(chunks) == 1:
        return [work(*chunks[0])]
    with blas_on_calling_thread():
        if workers <= 1:  # one Numba thread: the chunks one after the other, BLAS on this thread
            return [work(n0, n1) for n0, n1 in chunks]
        return _map_chunks(work, chunks, workers)


def _map_chunks(work, chunks, workers):
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
