"""The CuPy kernel family, run on the CPU (tests/cupy_emulation): the ops, layer, kernel and model
tests, with the CuPy kernels' own source compiled by g++ in place of the Numba family, in a child
pytest. No GPU has been lent to this project so far; this is what tests the GPU code's index
arithmetic, argument order and types, and Python glue until one is (not the GPU runtime itself).
The training tests stay out: their resume checks compare with a child process on real Numba."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = ["tests/ops", "tests/nn", "tests/kernels", "tests/models"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="the CuPy emulation compiles the kernels with g++")
def test_the_cupy_kernels_pass_the_numba_familys_tests_on_the_cpu(tmp_path):
    calls = tmp_path / "calls.json"
    env = {**os.environ, "SESCRATCH_CUPY_EMULATION_CALLS": str(calls),
           "SESCRATCH_CUPY_EMULATION_BUILD": str(tmp_path / "build")}
    command = [sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider",
               "-p", "tests.cupy_emulation.plugin", *SUITES, f"--ignore={Path(__file__).relative_to(ROOT)}"]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    defined = subprocess.run(  # the kernels the family defines, as the fake cupy records them
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import cupy, json, "
         "sescratch.kernels.cupy; print(json.dumps(sorted(cupy.KERNELS)))",
         str(ROOT / "tests" / "cupy_emulation" / "fake")],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    never_run = set(json.loads(defined)) - set(json.loads(calls.read_text()))
    assert not never_run, f"CuPy kernels no test ran: {sorted(never_run)}"
