"""The few hot loops, per backend: ``sescratch.kernels.numba`` (CPU) and ``sescratch.kernels.cupy`` (GPU).

Ops never import these directly: they ask ``sescratch.backend.get_kernel(name, *arrays)``,
which returns the kernel of the family the arrays and the switch select, or ``None`` to run
the NumPy reference code that lives in the op file. Each subpackage's ``__init__`` exports
its kernels by name; a kernel takes and returns arrays with exactly the semantics of the
reference code it replaces, and ``tests/kernels`` checks that equivalence.
"""
