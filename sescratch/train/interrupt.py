"""Two small pieces of a training run's plumbing: the progress bar and the Ctrl-C guard."""
from __future__ import annotations

import signal
import threading

__all__ = ["GracefulInterrupt", "progress_bar"]


class GracefulInterrupt:
    """Context manager turning the first Ctrl-C (SIGINT) into a request to stop.

    Inside the ``with`` block the first SIGINT only sets :attr:`requested` (the loop checks it
    between batches, so no update is ever half-applied); a second one raises
    ``KeyboardInterrupt`` at once. The previous handler is restored on exit. Outside the main
    thread (where Python cannot install signal handlers) it does nothing.
    """

    def __init__(self, message: str = "Ctrl-C: stopping after this batch (press again to abort)"):
        self.message = message
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{self.message}", flush=True)

    def __enter__(self) -> "GracefulInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **values) -> None: ...
    def close(self) -> None: ...


def progress_bar(enabled: bool, total: int, initial: int = 0, desc: str = ""):
    """A tqdm bar over ``total`` batches (tqdm shows the rate and the ETA), or a silent stand-in."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=True, dynamic_ncols=True)
