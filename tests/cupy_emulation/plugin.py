"""pytest plugin (``-p tests.cupy_emulation.plugin``): the CuPy kernel family, emulated on the CPU
(:mod:`tests.cupy_emulation.emulator`), takes the place of the Numba family for the whole run, so
tests that run an op under "numba" run the CuPy kernels' code. At the end it writes the calls
each kernel got to the file ``$SESCRATCH_CUPY_EMULATION_CALLS`` names (JSON), when set."""
import json
import os
import sys
from pathlib import Path

FAKE = Path(__file__).resolve().parent / "fake"


def pytest_configure(config):
    if "cupy" in sys.modules:
        raise RuntimeError("tests.cupy_emulation.plugin: a real cupy is already imported")
    sys.path.insert(0, str(FAKE))
    import cupy as fake_cupy

    from sescratch import backend
    from sescratch.kernels import cupy as cupy_family
    from tests.cupy_emulation import emulator

    emulator.bind(fake_cupy)
    backend._tables["numba"] = cupy_family.KERNELS  # the family's table, by the name tests run it under


def pytest_unconfigure(config):
    path = os.environ.get("SESCRATCH_CUPY_EMULATION_CALLS")
    if path:
        from tests.cupy_emulation import emulator

        Path(path).write_text(json.dumps(emulator.CALLS, indent=1, sort_keys=True))
