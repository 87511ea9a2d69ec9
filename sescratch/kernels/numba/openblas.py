"""Which OpenBLAS NumPy runs, and how: its thread-count controls and the kernels it chose.

NumPy's OpenBLAS (the PyPI wheels' ``scipy_openblas``, or a system ``libopenblas``) is found
among the libraries mapped into the process (Linux; elsewhere none is found) and asked through
its own C API: :func:`thread_controls` for :mod:`._scratch`'s ``blas_on_calling_thread``,
:func:`short_worker_spins` when the Numba family starts, :func:`openblas_kernels` for the
benchmarks' reports, :func:`forced_blas_notice` for ``sescratch train``.
"""
from __future__ import annotations

import ctypes
import os
from typing import Callable

OPENBLAS_NAMES = (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"), ("openblas", ""))


def loaded_libraries() -> list[ctypes.CDLL]:
    """Every OpenBLAS loaded in this process (Linux; elsewhere none is found)."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return []
    libraries = []
    for path in paths:
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libraries


def thread_controls() -> list[tuple[Callable, Callable]]:
    """``(get_num_threads, set_num_threads)`` of every OpenBLAS loaded in this process."""
    found = []
    for lib in loaded_libraries():
        for prefix, suffix in OPENBLAS_NAMES:
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, put.restype, put.argtypes = ctypes.c_int, None, [ctypes.c_int]
                found.append((get, put))
                break
    return found


WORKER_SPIN = "16"  # OPENBLAS_THREAD_TIMEOUT: a worker spins 2**16 clock ticks (~25 us) for the next product


def short_worker_spins(environ=None) -> bool:
    """Make OpenBLAS's idle workers sleep after about 25 us instead of about 100 ms; True when done.

    After every product it ran on several threads, each OpenBLAS worker (pthreads build, x86)
    waits for the next one in a loop of ``nop`` instructions for ``2**OPENBLAS_THREAD_TIMEOUT``
    clock ticks before it sleeps: 2**28 by default, 105 ms of CPU time measured on a 2-core AMD
    EPYC (Zen 4, 2026-12-06). Any Numba kernel that runs meanwhile has one core instead of two:
    the 16 -> 32 stride-2 conv's forward + backward took 22.4 ms after a threaded NumPy product
    against 12.0 ms with the short spin, and back-to-back 256-square products were not slower
    (185 against 185 us each). OpenBLAS reads the variable when it loads, so, NumPy being loaded,
    this sets ``OPENBLAS_THREAD_TIMEOUT`` for a moment, has OpenBLAS read its environment again
    (``openblas_read_env``) and restarts its workers (``blas_thread_shutdown_``,
    ``blas_thread_init``, about 0.15 ms), which read the timeout when they start. A timeout the
    user set (in the environment, or one OpenBLAS already holds) is kept. Call it only while no
    other thread is inside OpenBLAS (sescratch does, once, when :mod:`sescratch.kernels.numba`
    is imported). Where the library lacks those three functions (another BLAS, OpenBLAS's OpenMP
    build), nothing is done.
    """
    environ = os.environ if environ is None else environ
    if "OPENBLAS_THREAD_TIMEOUT" in environ:
        return False
    done = False
    for lib in loaded_libraries():
        read_env = getattr(lib, "openblas_read_env", None)
        timeout = getattr(lib, "openblas_thread_timeout", None)
        shutdown = getattr(lib, "blas_thread_shutdown_", None)
        init = getattr(lib, "blas_thread_init", None)
        if None in (read_env, timeout, shutdown, init):
            continue
        timeout.restype = ctypes.c_uint
        if timeout() != 0:  # already set when the library loaded
            continue
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = WORKER_SPIN
        try:
            read_env()
        finally:
            del os.environ["OPENBLAS_THREAD_TIMEOUT"]
        shutdown()
        init()
        done = True
    return done


def openblas_kernels() -> str | None:
    """The kernels (OpenBLAS's core name, e.g. ``'SkylakeX'``, ``'Haswell'``) that NumPy's OpenBLAS
    chose when it loaded, from the CPU or from ``OPENBLAS_CORETYPE``; None where no OpenBLAS is
    found. Benchmarks report it: GEMM speed follows it (2-core AMD EPYC Zen 5, 2026-12-04: square
    float32 products 223 GFLOP/s on the Haswell kernels that ``OPENBLAS_CORETYPE=Haswell`` forces,
    424 on the SkylakeX ones OpenBLAS picks there by itself)."""
    for lib in loaded_libraries():
        for prefix, suffix in OPENBLAS_NAMES:
            corename = getattr(lib, f"{prefix}_get_corename{suffix}", None)
            if corename is not None:
                corename.restype = ctypes.c_char_p
                return corename().decode(errors="replace").strip()
    return None


AVX512_OPENBLAS_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")  # OpenBLAS's AVX-512 x86 kernels
AVX512_FLAGS = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")  # what SkylakeX's kernels use


def forced_blas_notice(environ=None, cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """A sentence for the user when ``OPENBLAS_CORETYPE`` holds OpenBLAS to kernels without
    AVX-512 on a CPU that has it (the variable set by a machine's image, say); None otherwise.
    The variable is the user's to choose, so sescratch keeps it and only says what it costs."""
    environ = os.environ if environ is None else environ
    forced, core = environ.get("OPENBLAS_CORETYPE"), openblas_kernels()
    if not forced or core is None or core in AVX512_OPENBLAS_CORES:
        return None
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    if not all(flag in flags for flag in AVX512_FLAGS):
        return None
    return (f"note: OPENBLAS_CORETYPE={forced} in the environment holds NumPy's OpenBLAS to its {core} "
            "kernels on a CPU with AVX-512; unset it for OpenBLAS's own choice (on a 2-core AMD EPYC "
            "Zen 5: twice the GEMM speed, training steps 1.3x faster)")
