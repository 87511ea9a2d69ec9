"""One line on stderr when a run starts compiling Numba kernels, so that a first run is not silent.

Every Numba kernel is ``cache=True``: the first run on a machine compiles them (on the 2-core hosts
of 2026-12, 17 s and 61 kernels before ``sescratch train``'s first step, 25-37 s before the
CIFAR-shape benchmark's), later runs load them from Numba's cache in about a second. Numba
announces each compilation that the cache could not spare with a ``numba:compile`` event
(:mod:`numba.core.event`; a cache hit sends none), so the notice appears on first runs, after an
upgrade or on a new CPU, and never on a run that only loads kernels.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

from numba.core import event
from tqdm import tqdm

__all__ = ["CompileNotice", "compile_notice"]

NOTICE = ("compiling sescratch's Numba kernels for this machine (a first run only, 15-40 s before "
          "the first step; later runs load them from Numba's cache)")


class CompileNotice(event.Listener):
    """Counts Numba compilations (their ``numba:compile`` events) and prints NOTICE at the first."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.compiled = 0  # compilations started
        self.seconds = 0.0  # wall time inside outermost compilations
        self._depth = 0  # a kernel that calls another compiles it inside its own compilation
        self._started = 0.0
        self._lock = threading.Lock()  # the conv kernels' worker threads can compile too

    def on_start(self, compile_event) -> None:
        with self._lock:
            self.compiled += 1
            if self.compiled == 1:
                tqdm.write(NOTICE, file=self.stream or sys.stderr)  # above a progress bar, if one
            if self._depth == 0:
                self._started = time.perf_counter()
            self._depth += 1

    def on_end(self, compile_event) -> None:
        with self._lock:
            self._depth = max(0, self._depth - 1)
            if self._depth == 0:
                self.seconds += time.perf_counter() - self._started


@contextmanager
def compile_notice(stream: TextIO | None = None) -> Iterator[CompileNotice]:
    """Within the block, the first Numba compilation prints NOTICE to ``stream`` (stderr by
    default); the yielded :class:`CompileNotice` counts them."""
    notice = CompileNotice(stream)
    event.register("numba:compile", notice)
    try:
        yield notice
    finally:
        event.unregister("numba:compile", notice)
