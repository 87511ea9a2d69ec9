"""Compile every CuPy kernel of sescratch with NVRTC, on a machine without a GPU.

CuPy generates a CUDA source for each ``ElementwiseKernel`` / ``ReductionKernel`` at its first
call, from the kernel's parameter list, operation strings and the dtypes of the arguments; a
typo in an operation string shows up only then, on a GPU. This script builds the same sources
with CuPy's own code generators for float32 and float64 and compiles them with NVRTC
(``compute_90``), which needs the CuPy wheel and the NVRTC library but no driver and no device::

    pip download --no-deps --only-binary=:all: -d /tmp/w cupy-cuda13x==14.2.0 "nvidia-cuda-nvrtc>=13,<14"
    pip install --no-deps --target /tmp/cupyenv /tmp/w/*.whl cuda-pathfinder
    PYTHONPATH=/tmp/cupyenv:. python benchmarks/compile_cupy_kernels.py

A wheel installed with ``--target`` is not on the loader's path, and CuPy's library finder
(``cuda-pathfinder``) does not look there: the script loads the NVRTC library it finds under
``nvidia/*/lib`` of a ``sys.path`` entry first, and stops with a message if there is none.
It uses CuPy internals (``cupy._core._kernel``, ``cupy._core._reduction``; checked with CuPy
14.2): it is a developer's check, not a test. Exit status 0 when every kernel compiled.
What it cannot see: wrong results, out-of-bounds indexing, launch shapes — the CuPy tests on a
GPU (``benchmarks/gpu_check.sh``) check those.
"""
from __future__ import annotations

import ctypes
import importlib
import pkgutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _load_nvrtc() -> str | None:
    """Load the first ``nvidia/*/lib/libnvrtc.so.*`` under a ``sys.path`` entry (the NVRTC
    wheel's layout), so that CuPy finds it loaded; its path, or None where there is none."""
    for entry in sys.path:
        for lib in sorted(Path(entry or ".").glob("nvidia/*/lib/libnvrtc.so.*")):
            if "builtins" not in lib.name:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
                return str(lib)
    return None


_load_nvrtc()

import cupy  # noqa: E402
import cupy._core._kernel as _kernel  # noqa: E402
import cupy._core._reduction as _reduction  # noqa: E402
import numpy as np  # noqa: E402
from cupy._core import _carray, core  # noqa: E402
from cupy.cuda import compiler  # noqa: E402

import sescratch.kernels.cupy as family  # noqa: E402

NDARRAY, INDEXER, SCALAR = 1, 2, 3  # CuPy's _ArgKind values (CuPy 14)
# Non-array parameters whose names are not all upper case (upper-case names are sizes)
SCALARS = {"neg_inf", "lr", "mu", "keep", "wd", "decay", "nesterov", "first", "momentum", "eps",
           "factor_num", "factor_den"}


def _is_scalar(p) -> bool:
    return not p.raw and (p.name.isupper() or p.name in SCALARS or p.name[0].isupper())


def _arginfo(p, T, ndim):
    dtype = T if p.dtype is None else p.dtype
    if _is_scalar(p):
        return _kernel._ArgInfo(SCALAR, object, np.dtype(dtype), 0, True, True)
    return _kernel._ArgInfo(NDARRAY, cupy.ndarray, np.dtype(dtype), 1 if p.raw else ndim, True, True)


def _type_map(params, T, extra=()):
    ctypes = sorted({p.ctype for p in params if p.dtype is None and p.ctype})
    return _kernel._TypeMap(tuple(sorted([(c, np.dtype(T)) for c in ctypes] + list(extra))))


def elementwise_source(k, T):
    user = k.in_params + k.out_params
    infos = tuple(_arginfo(p, T, 4) for p in user) + (
        _kernel._ArgInfo(INDEXER, _carray.Indexer, None, 4, True, True),)
    return _kernel._get_elementwise_kernel_code(
        infos, _type_map(user, T), k.params, k.operation, k.name, k.preamble)


def reduction_source(k, T):
    user = k.in_params + k.out_params
    infos = tuple(_arginfo(p, T, 2) for p in k.in_params) + tuple(
        _arginfo(p, T, 1) for p in k.out_params) + (
        _kernel._ArgInfo(INDEXER, _carray.Indexer, None, 2, True, True),
        _kernel._ArgInfo(INDEXER, _carray.Indexer, None, 1, True, True),
        _kernel._ArgInfo(SCALAR, object, np.dtype(np.int32), 0, True, True))
    return _reduction._ReductionKernel_get_cached_function_code(
        k.nin, k.nout, k._params, infos, _type_map(user, T, [("IndexT", np.dtype(np.int32))]),
        k.name, 256, k.reduce_type,
        k.identity, k.map_expr, k.reduce_expr, k.post_map_expr, k.preamble, ())


def kernels():
    """(module name, attribute name, kernel) for every CuPy kernel object of the family."""
    for info in pkgutil.iter_modules(family.__path__):
        module = importlib.import_module(f"{family.__name__}.{info.name}")
        for attr, value in vars(module).items():
            if isinstance(value, (cupy.ElementwiseKernel, cupy.ReductionKernel)):
                yield info.name, attr, value


# What CuPy adds for a CUDA device (compiler._compile_using_nvrtc_no_warning), for an H100/H200
_NVRTC_OPTIONS = ("-arch=compute_90", "--device-as-default-execution-space")


def main() -> int:
    try:
        version = compiler._get_nvrtc_version()
    except Exception as exc:  # cuda-pathfinder's DynamicLibNotFoundError, an OSError, ...
        print(f"NVRTC cannot be loaded ({exc}); install the nvidia-cuda-nvrtc wheel as the module "
              "docstring says, or put its lib/ folder on LD_LIBRARY_PATH", file=sys.stderr)
        return 2
    options = core.assemble_cupy_compiler_options(())
    failures = 0
    for module, attr, k in kernels():
        for T in (np.float32, np.float64):
            make = reduction_source if isinstance(k, cupy.ReductionKernel) else elementwise_source
            source = "#include <cupy/carray.cuh>\n" + make(k, T)
            extra = tuple(k.options if isinstance(k, cupy.ReductionKernel) else k.kwargs.get("options", ()))
            what = f"{module}.{attr} ({np.dtype(T).name})"
            try:
                program = compiler._NVRTCProgram(source, f"{k.name}.cu")
                program.compile(options + extra + _NVRTC_OPTIONS)
            except Exception as exc:  # CompileException: the NVRTC log names the line
                failures += 1
                print(f"FAIL {what}\n{exc}\n--- source ---\n{source}", flush=True)
            else:
                print(f"ok   {what}", flush=True)
    verdict = "all compiled" if not failures else f"{failures} failed"
    print(f"{verdict} (NVRTC {version})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
