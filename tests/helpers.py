"""Small helpers the tests share (import as ``from tests.helpers import ...``)."""
import numpy as np


def to_numpy(a):
    """Bring an array (NumPy or CuPy) or None back to NumPy."""
    if a is None:
        return None
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)
