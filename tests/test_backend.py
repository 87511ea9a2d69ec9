"""The backend switch: array module by the arrays, CPU kernel family, kernel lookup, devices."""
import os
import subprocess
import sys
from typing import NamedTuple

import numpy as np
import pytest

from sescratch import backend

no_gpu = pytest.mark.skipif(backend.cupy_available(), reason="a GPU is present")


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter with extra environment variables; (rc, out, err)."""
    full_env = {**os.environ, **env}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120
    )
    return done.returncode, done.stdout.strip(), done.stderr


# ---------------------------------------------------------------------------- get_array_module
def test_get_array_module_is_numpy_for_numpy_and_non_arrays():
    assert backend.get_array_module(np.zeros(2)) is np
    assert backend.get_array_module(np.zeros(2), None, 3.0) is np
    assert backend.get_array_module() is np
    assert backend.get_array_module(None) is np


def test_importing_the_backend_does_not_import_cupy():
    rc, out, err = run_python("import sys, sescratch.backend; print('cupy' in sys.modules)")
    assert rc == 0, err
    assert out == "False"


@pytest.mark.skipif(not backend.cupy_available(), reason="CuPy with a GPU is not available")
def test_get_array_module_is_cupy_for_cupy_arrays():
    import cupy

    assert backend.get_array_module(np.zeros(1), cupy.zeros(1)) is cupy


# ---------------------------------------------------------------------------- use / cpu_family
def test_use_as_a_call_switches_the_family():
    before = backend.cpu_family()
    try:
        backend.use("numpy")
        assert backend.cpu_family() == "numpy"
        backend.use("numba")
        assert backend.cpu_family() == "numba"
    finally:
        backend.use(before)


def test_use_as_context_manager_restores_also_on_error_and_nests():
    before = backend.cpu_family()
    with backend.use("numpy"):
        assert backend.cpu_family() == "numpy"
        with backend.use("numba"):
            assert backend.cpu_family() == "numba"
        assert backend.cpu_family() == "numpy"
    assert backend.cpu_family() == before
    with pytest.raises(RuntimeError):
        with backend.use("numpy" if before == "numba" else "numba"):
            raise RuntimeError("boom")
    assert backend.cpu_family() == before


@pytest.mark.parametrize("name", ["cupy", "torch", "", "NumPy ", None])
def test_use_rejects_unknown_names(name):
    before = backend.cpu_family()
    with pytest.raises(ValueError, match="backend.use"):
        backend.use(name)
    assert backend.cpu_family() == before


def test_numba_is_the_default_family():
    rc, out, err = run_python(
        "from sescratch import backend; print(backend.cpu_family())", SESCRATCH_BACKEND=""
    )
    assert rc == 0, err
    assert out == "numba"


@pytest.mark.parametrize("value, family", [("numpy", "numpy"), (" NUMPY ", "numpy"), ("numba", "numba")])
def test_environment_variable_selects_the_family(value, family):
    rc, out, err = run_python(
        "from sescratch import backend; print(backend.cpu_family())", SESCRATCH_BACKEND=value
    )
    assert rc == 0, err
    assert out == family


def test_environment_variable_with_an_unknown_name_fails_clearly():
    rc, out, err = run_python("import sescratch.backend", SESCRATCH_BACKEND="fortran")
    assert rc != 0
    assert "ValueError" in err and "SESCRATCH_BACKEND" in err and "fortran" in err


# ---------------------------------------------------------------------------------- get_kernel
def test_get_kernel_is_none_for_the_numpy_family():
    with backend.use("numpy"):
        assert backend.get_kernel("batchnorm2d_forward", np.zeros((1, 1, 1, 1))) is None


def test_get_kernel_returns_the_numba_kernel():
    from sescratch.kernels import numba as K

    with backend.use("numba"):
        assert backend.get_kernel("batchnorm2d_forward", np.zeros((1, 1, 1, 1))) is K.batchnorm2d_forward
        assert backend.get_kernel("relu_forward", np.zeros(1)) is K.relu_forward


@pytest.mark.parametrize("family", ["numpy", "numba"])
def test_get_kernel_rejects_unknown_names_in_every_family(family):
    with backend.use(family), pytest.raises(ValueError, match="unknown kernel 'no_such_kernel'"):
        backend.get_kernel("no_such_kernel", np.zeros(1))


def test_numba_package_exports_every_declared_kernel():
    from sescratch.kernels import DECLARED
    from sescratch.kernels import numba as K

    for name in DECLARED:
        assert K.KERNELS[name] is getattr(K, name), name


# ------------------------------------------------------------------------------------ to_numpy
def test_to_numpy_passes_numpy_arrays_and_none_through():
    x = np.arange(3.0)
    assert backend.to_numpy(x) is x
    assert backend.to_numpy(None) is None


@pytest.mark.parametrize("value, expected", [(3, np.array(3)), ([1.5, 2.0], np.array([1.5, 2.0])),
                                             (np.float32(2), np.array(2, np.float32))])
def test_to_numpy_converts_scalars_and_lists(value, expected):
    got = backend.to_numpy(value)
    assert isinstance(got, np.ndarray) and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(not backend.cupy_available(), reason="CuPy with a GPU is not available")
def test_to_numpy_copies_cupy_arrays_to_the_host():
    import cupy

    got = backend.to_numpy(cupy.arange(4.0))
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, np.arange(4.0))


# ----------------------------------------------------------------------------------- to_device
class Pair(NamedTuple):
    a: object
    b: object


def test_to_device_cpu_keeps_numpy_arrays_and_rebuilds_containers():
    x = np.arange(3.0)
    assert backend.to_device(x, "cpu") is x
    moved = backend.to_device({"w": x, "rest": [x, (x, None)], "n": 3, "s": "text"}, "cpu")
    assert moved["w"] is x and moved["rest"][0] is x and moved["rest"][1] == (x, None)
    assert moved["n"] == 3 and moved["s"] == "text"
    cache = backend.to_device(Pair(x, 2.0), "cpu")
    assert type(cache) is Pair and cache.a is x and cache.b == 2.0


def test_to_device_asks_objects_with_a_to_method():
    class Module:
        def __init__(self):
            self.device = "cpu"

        def to(self, device):
            self.device = device
            return self

    m = Module()
    assert backend.to_device(m, "cpu") is m
    assert backend.to_device([m], "cpu")[0] is m


@pytest.mark.parametrize("device", ["cuda", "GPU", "", None])
def test_to_device_rejects_unknown_devices(device):
    with pytest.raises(ValueError, match="to_device"):
        backend.to_device(np.zeros(1), device)


@no_gpu
def test_to_device_gpu_without_cupy_is_a_clear_error():
    with pytest.raises(ValueError, match="CuPy"):
        backend.to_device(np.zeros(1), "gpu")
    assert backend.cupy_available() is False


@pytest.mark.skipif(not backend.cupy_available(), reason="CuPy with a GPU is not available")
def test_to_device_round_trip_on_gpu():
    import cupy

    x = np.arange(6.0).reshape(2, 3)
    on_gpu = backend.to_device(Pair(x, [x]), "gpu")
    assert isinstance(on_gpu.a, cupy.ndarray) and isinstance(on_gpu.b[0], cupy.ndarray)
    back = backend.to_device(on_gpu, "cpu")
    np.testing.assert_array_equal(back.a, x)
    assert isinstance(back.b[0], np.ndarray)
