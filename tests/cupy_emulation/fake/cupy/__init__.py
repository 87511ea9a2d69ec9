"""A stand-in for ``cupy`` (tests/cupy_emulation): kernels are recorded, arrays are NumPy's.

A kernel object runs through the implementation that :func:`tests.cupy_emulation.emulator.bind`
gives it; until then, calling it is an error.
"""
import numpy as _np

KERNELS = {}  # kernel name -> the _Kernel defined with it

float64, float32, int64, int32 = _np.float64, _np.float32, _np.int64, _np.int32
empty, zeros, empty_like, matmul, sqrt = _np.empty, _np.zeros, _np.empty_like, _np.matmul, _np.sqrt
ascontiguousarray, asarray = _np.ascontiguousarray, _np.asarray


class ndarray:  # noqa: N801  (no array is ever of this type: every array here is NumPy's)
    pass


class _Kernel:
    def __init__(self, kind, name, definition, options):
        self.kind, self.name, self.definition, self.options = kind, name, definition, options
        self.run = None  # set by the emulator
        KERNELS[name] = self

    def __call__(self, *args, **kwargs):
        if self.run is None:
            raise RuntimeError(f"the CuPy emulation has no implementation bound for kernel {self.name}")
        return self.run(self, *args, **kwargs)


def ElementwiseKernel(in_params, out_params, operation, name, options=(), **_):  # noqa: N802
    return _Kernel("elementwise", name, (in_params, out_params, operation), tuple(options))


def ReductionKernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name,  # noqa: N802
                    options=(), **_):
    return _Kernel("reduction", name, (in_params, out_params, map_expr, reduce_expr, post_map_expr, identity),
                   tuple(options))
