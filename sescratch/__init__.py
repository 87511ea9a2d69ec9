"""sescratch: Squeeze-and-Excitation networks from scratch.

Every layer is written by hand, forward and backward, with the derivation beside it.
NumPy is the readable reference; Numba makes the CPU fast; CuPy runs the same code on a GPU.
"""
__version__ = "0.1.0"


def summary(model, input_shape, **kwargs):
    """Per-layer table of output shapes, parameters and multiply-accumulates (see sescratch.summary)."""
    from sescratch.summary import summary as _summary

    return _summary(model, input_shape, **kwargs)


_SUBMODULES = frozenset(
    {"analysis", "backend", "data", "errors", "gradcheck", "interop", "kernels", "models", "nn",
     "ops", "optim", "schedules", "train"}
)


def __getattr__(name):
    """``sescratch.ops``, ``sescratch.models``… without importing them all at ``import sescratch``."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"sescratch.{name}")
    raise AttributeError(f"module 'sescratch' has no attribute {name!r}")
