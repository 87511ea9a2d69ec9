"""Numba CPU kernels, exported by name for ``sescratch.backend.get_kernel``."""
