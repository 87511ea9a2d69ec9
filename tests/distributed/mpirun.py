"""Run ``sescratch train`` under ``mpirun`` from tests; skip cleanly without mpirun or mpi4py."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

CLI = [sys.executable, "-c", "import sys; from sescratch.cli import main; sys.exit(main())"]
# A run of a few seconds: SE-ResNet-20 of width 4 on 100 / 50 embedded Fashion-MNIST images,
# float64, augmentation on; 4 global batches of 25 per epoch.
TINY = ["train", "--subset", "100", "--test-subset", "50", "--batch-size", "25", "--no-progress",
        "--dtype", "float64", "--model-option", "width=4", "--reduction", "2", "--backend", "numpy",
        "--schedule", "constant", "--lr", "0.05"]  # constant: a 1-epoch run extends to 2 exactly

needs_mpi = pytest.mark.skipif(shutil.which("mpirun") is None or importlib.util.find_spec("mpi4py") is None,
                               reason="needs mpirun and mpi4py (pip install -e '.[mpi]')")


def env() -> dict:
    """The environment of a child: one thread per process, root allowed (CI containers)."""
    return {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
            "OMPI_MCA_rmaps_base_oversubscribe": "1", "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe"}


def train(ranks: int, *args: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    """``sescratch train *args`` on ``ranks`` MPI ranks (0: one plain process, no mpirun)."""
    command = CLI + list(args) if ranks == 0 else (
        ["mpirun", "-n", str(ranks), "--oversubscribe"] + CLI + list(args) + ["--distributed"])
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env())
    if check and done.returncode != 0:
        raise AssertionError(f"{command} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def weights(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k.startswith("model/") and f[k].dtype.kind == "f"}


def max_relative_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-300)) for k in a)
