"""Numba's thread pool as sescratch starts it (sescratch/kernels/numba/__init__.py): tbb if
installed, else OpenMP with short spins, never sharing an OpenMP runtime loaded before it (a
private runtime instead, or workqueue); OpenBLAS's idle workers with short spins too; the user's
own choices kept; the environment left as found."""
import ctypes
import os
import subprocess
import sys

import pytest

import sescratch.kernels.numba as k_numba
from sescratch.kernels.numba import openblas


def _run_full(code, **env):
    """Run ``code`` in a fresh interpreter, without the threading settings of this one; the
    completed process (it must have succeeded)."""
    full = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def _run(code, **env):
    return _run_full(code, **env).stdout.strip()


REPORT = ("import os, numba, numpy as np, sescratch.kernels.numba as k; "
          "k.KERNELS['relu_forward'](np.zeros((1, 1, 256, 256)));"  # a parallel kernel (>= SERIAL_BELOW values): the layer is up
          "print(numba.threading_layer(), os.environ.get('GOMP_SPINCOUNT'), os.environ.get('NUMBA_THREADING_LAYER'))")


@pytest.mark.slow
def test_openmp_with_short_spins_and_the_environment_restored():
    layer, spin, choice = _run(REPORT).split()
    assert layer in ("tbb", "omp", "workqueue")  # tbb if installed; workqueue where no OpenMP loads
    assert spin == "None" and choice == "None"  # GOMP_SPINCOUNT was set only while libgomp loaded


@pytest.mark.slow
def test_the_users_choices_are_kept():
    assert _run(REPORT, NUMBA_THREADING_LAYER="workqueue").split() == ["workqueue", "None", "workqueue"]
    layer, spin, _ = _run(REPORT, GOMP_SPINCOUNT="5").split()
    assert spin == "5"


@pytest.mark.slow
def test_a_parallel_kernel_gives_the_same_result_on_each_layer():
    code = ("import numpy as np, sescratch.kernels.numba as k; "
            "x = np.linspace(-1, 1, 6 * 4 * 50 * 50).reshape(6, 4, 50, 50).astype(np.float32); "
            "print(float(np.abs(k.KERNELS['relu_forward'](x) - np.maximum(x, 0)).max()))")
    assert _run(code) == "0.0"
    assert _run(code, NUMBA_THREADING_LAYER="workqueue") == "0.0"


@pytest.mark.slow
def test_an_openmp_runtime_loaded_first_is_not_shared():
    """PyTorch imported first: its OpenMP runtime has long spins. Numba's OpenMP layer must then
    run on a runtime of its own (the loader's bindings say which), or not be chosen at all."""
    pytest.importorskip("torch")
    out = _run_full("import torch; " + REPORT, LD_DEBUG="bindings")
    layer = out.stdout.split()[0]
    assert layer in ("tbb", "omp", "workqueue")
    if layer == "omp":
        targets = {line.split(" to ")[1].split()[0] for line in out.stderr.splitlines()
                   if "omppool" in line and "`GOMP_parallel'" in line and " to " in line}
        assert targets, "no binding of GOMP_parallel seen"
        assert not any("torch" in t for t in targets), targets
    restored = _run("import sys, torch; f = sys.getdlopenflags(); import sescratch.kernels.numba; "
                    "print(sys.getdlopenflags() == f)")
    assert restored == "True"  # RTLD_DEEPBIND only while the layer loaded


def _system_libgomp_loads():
    try:
        ctypes.CDLL(k_numba.NUMBA_LIBGOMP, mode=os.RTLD_LOCAL)
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_the_only_openmp_runtime_already_loaded_is_not_taken_with_its_spins():
    """The GNU OpenMP Numba links is itself loaded first (globally, with its default spins): no
    second runtime can be had, so OpenMP comes after workqueue."""
    if not _system_libgomp_loads():
        pytest.skip(f"no {k_numba.NUMBA_LIBGOMP} here")
    code = f"import ctypes, os; ctypes.CDLL({k_numba.NUMBA_LIBGOMP!r}, mode=os.RTLD_GLOBAL); " + REPORT
    layer, spin, choice = _run(code).split()
    assert layer in ("tbb", "workqueue")
    assert spin == "None" and choice == "None"


def test_private_openmp_reports_whether_a_new_runtime_came():
    """Whatever a first load brings, loading the same libgomp again adds no runtime."""
    if not _system_libgomp_loads():
        pytest.skip(f"no {k_numba.NUMBA_LIBGOMP} here")
    k_numba._private_openmp()
    assert k_numba._private_openmp() is False


def test_openblas_kernels_names_the_core_openblas_runs():
    """``openblas_kernels`` reads OpenBLAS's own choice, the one ``OPENBLAS_CORETYPE`` forces
    included (benchmarks print it: GEMM speed follows it)."""
    from sescratch.kernels.numba import _scratch, openblas

    if not _scratch.blas_controllable():
        pytest.skip("no OpenBLAS found in this process")
    assert isinstance(openblas.openblas_kernels(), str) and openblas.openblas_kernels()
    flags = open("/proc/cpuinfo").read()
    code = "import numpy; from sescratch.kernels.numba.openblas import openblas_kernels as k; print(k())"
    for core, flag in (("Haswell", "avx2"), ("SkylakeX", "avx512bw")):  # each core where the CPU runs it
        if flag in flags:
            assert _run(code, OPENBLAS_CORETYPE=core) == core


@pytest.mark.parametrize("environ, core, flags, expected", [
    ({"OPENBLAS_CORETYPE": "Haswell"}, "Haswell", "avx2 avx512f avx512cd avx512bw avx512dq avx512vl", True),
    ({}, "Haswell", "avx2 avx512f avx512cd avx512bw avx512dq avx512vl", False),  # OpenBLAS's own choice
    ({"OPENBLAS_CORETYPE": "Haswell"}, "Haswell", "avx2 fma", False),  # no AVX-512: nothing lost
    ({"OPENBLAS_CORETYPE": "SkylakeX"}, "SkylakeX", "avx2 avx512f avx512cd avx512bw avx512dq avx512vl", False),
])
def test_forced_blas_notice_only_where_the_environment_costs_avx512(tmp_path, monkeypatch, environ, core, flags, expected):
    from sescratch.kernels.numba import openblas

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu {flags}\n\n")
    monkeypatch.setattr(openblas, "openblas_kernels", lambda: core)
    notice = openblas.forced_blas_notice(environ, str(cpuinfo))
    assert (notice is not None) == expected
    if expected:
        assert "OPENBLAS_CORETYPE=Haswell" in notice and "unset it" in notice


SPIN_PROBE = """
import os, resource, time, ctypes, numpy as np
import sescratch.kernels.numba
from sescratch.kernels.numba import openblas
libs = [l for l in openblas.loaded_libraries() if hasattr(l, "openblas_thread_timeout")]
get = openblas.thread_controls()
if not libs or not get or get[0][0]() < 2:
    print("skip"); raise SystemExit
libs[0].openblas_thread_timeout.restype = ctypes.c_uint
a = np.ones((1024, 1024), dtype=np.float32)
a @ a
time.sleep(0.3)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
a @ a  # split over OpenBLAS's threads
before = cpu()
time.sleep(0.3)
print(round(1e3 * (cpu() - before), 1), libs[0].openblas_thread_timeout(), os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
"""


@pytest.mark.slow
def test_openblas_workers_do_not_hold_a_core_after_a_product():
    """After a product split over OpenBLAS's threads, its idle workers burn (almost) no CPU time
    once the Numba family has started; left at OpenBLAS's default (``OPENBLAS_THREAD_TIMEOUT=28``,
    a user's setting, kept) they spin for ~100 ms, which is what the probe can see."""
    shortened = _run(SPIN_PROBE)
    if shortened == "skip":
        pytest.skip("no pthreads OpenBLAS with 2 or more threads in this process")
    burned, timeout, variable = shortened.split()
    assert float(burned) < 15, f"{burned} ms of CPU time while idle"
    assert timeout == openblas.WORKER_SPIN and variable == "None"  # the environment is left as found
    default = _run(SPIN_PROBE, OPENBLAS_THREAD_TIMEOUT="28")
    burned, timeout, variable = default.split()
    assert float(burned) > 30 and timeout == "28" and variable == "28"


def test_short_worker_spins_keeps_a_users_timeout():
    assert openblas.short_worker_spins({"OPENBLAS_THREAD_TIMEOUT": "20"}) is False
    openblas.short_worker_spins()  # an OpenBLAS loaded since the import (SciPy's own, say) gets it now
    assert openblas.short_worker_spins() is False  # each one holds its timeout: not restarted again
