"""The CuPy kernels run on the CPU, so that their index arithmetic and Python glue are tested
where no GPU is (no GPU has been lent to this project so far).

``fake/cupy`` is a stand-in ``cupy`` module: its ``ElementwiseKernel`` and ``ReductionKernel``
record their definitions and its array functions are NumPy's. :mod:`.emulator` compiles each
kernel's own source text (the operation, or a reduction's map expression) as C++ with g++ and
runs it over NumPy arrays with CuPy's semantics. :mod:`.plugin` is a pytest plugin that loads the
CuPy kernel family on top of that and puts it in place of the Numba family, so the ops, layers and
models tests that run "numba" run the CuPy kernels' code instead
(``tests/kernels/test_cupy_emulated.py`` starts such a run).

What it checks: every element computed once, at the right index, from the right inputs, in the
kernel's own arithmetic (float32 or float64 as the kernel declares, no fused multiply-add as
``--fmad=false`` asks); arguments passed in the signature's order and types (an array of another
dtype than its parameter is refused as CuPy refuses it; a Python int that does not fit an
``int32`` parameter raises OverflowError as CuPy 14 does). What it cannot: the GPU's runtime
(cuBLAS, launch limits, memory), its speed, and kernels that rely on threads running together
(none here: every kernel writes only its own element).
"""
