"""Numba's thread pool as sescratch starts it (sescratch/kernels/numba/__init__.py): tbb if
installed, else OpenMP with short spins, never sharing an OpenMP runtime loaded before it; the
user's own choices kept; the environment left as found."""
import os
import subprocess
import sys

import pytest


def _run(code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


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
    """PyTorch imported first: its OpenMP runtime has long spins, so not Numba's OpenMP layer."""
    pytest.importorskip("torch")
    layer, _, _ = _run("import torch; " + REPORT).split()
    assert layer in ("tbb", "workqueue")
