"""What every check shares: random cases, calling the learner's function, comparing, reporting.

A check passes by printing one ``OK`` line (the worst relative error over its random cases)
and returning that error; it fails by raising ``AssertionError`` with a sentence that says
which output is wrong, by how much, for which shapes, and the most likely mistake.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from sescratch.gradcheck import relative_error

TOLERANCE = 1e-7  # float64 work agrees with the references to ~1e-12; 1e-7 leaves room for order


def rng_for(seed) -> np.random.Generator:
    """The generator of a check's random cases: ``seed=None`` draws new cases on every call."""
    return np.random.default_rng(seed)


def call(check: str, fn: Callable, *args, **kwargs):
    """Run the learner's ``fn``; a stub or a crash becomes an ``AssertionError`` naming the check."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise AssertionError(f"{check}: {getattr(fn, '__name__', 'fn')} is not implemented yet "
                             "(it raised NotImplementedError): fill in the cell above") from exc
    except AssertionError:
        raise
    except Exception as exc:  # the learner's bug, reported with the arguments it got
        shapes = ", ".join(_describe(a) for a in args)
        raise AssertionError(f"{check}: {getattr(fn, '__name__', 'fn')}({shapes}) raised "
                             f"{type(exc).__name__}: {exc}") from exc


def _describe(a) -> str:
    if hasattr(a, "shape") and hasattr(a, "dtype"):
        return f"array{tuple(a.shape)}"
    if a is None:
        return "None"
    return repr(a) if np.isscalar(a) or isinstance(a, tuple) else type(a).__name__


def as_tuple(check: str, out, names: tuple[str, ...]) -> tuple:
    """The learner's outputs as a tuple of ``len(names)`` items (a lone array for one name)."""
    if len(names) == 1:
        return (out,)
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        got = f"{len(out)} values" if isinstance(out, (tuple, list)) else type(out).__name__
        raise AssertionError(f"{check}: expected the function to return {len(names)} values "
                             f"({', '.join(names)}), got {got}")
    return tuple(out)


def compare(check: str, name: str, got, want, case: str, hints: dict[str, object] | None = None,
            default_hint: str = "") -> float:
    """Relative error of ``got`` against the reference ``want``; raise with a hint if too large.

    ``hints`` maps a hint sentence to the output a common mistake produces: the first one that
    ``got`` matches is the one given (else ``default_hint``).
    """
    if got is None:
        raise AssertionError(f"{check}: {name} is None ({case}); expected an array of shape "
                             f"{tuple(np.shape(want))}")
    if isinstance(got, (tuple, list)) and any(np.ndim(v) > 0 or isinstance(v, (tuple, list)) for v in got):
        raise AssertionError(f"{check}: {name} should be one array of shape {tuple(np.shape(want))}, "
                             f"got a {type(got).__name__} of {len(got)} values ({case})")
    got_arr = np.asarray(got)
    want_arr = np.asarray(want, dtype=np.float64)
    if got_arr.shape != want_arr.shape:
        raise AssertionError(f"{check}: {name} has shape {got_arr.shape}, expected "
                             f"{want_arr.shape} ({case})"
                             + _hint_for(got_arr, hints, default_hint, shapes_only=True))
    if not np.issubdtype(got_arr.dtype, np.number):
        raise AssertionError(f"{check}: {name} has dtype {got_arr.dtype}, expected numbers ({case})")
    if not np.all(np.isfinite(got_arr)):
        raise AssertionError(f"{check}: {name} contains NaN or inf ({case})")
    err = relative_error(got_arr, want_arr)
    if not err <= TOLERANCE:
        raise AssertionError(f"{check}: {name} is wrong: relative error {err:.1e} "
                             f"(should be below {TOLERANCE:.0e}) for {case}"
                             + _hint_for(got_arr, hints, default_hint))
    return err


def _hint_for(got, hints, default_hint, *, shapes_only=False) -> str:
    for sentence, mistake in (hints or {}).items():
        mistake = np.asarray(mistake)
        if mistake.shape == got.shape and (shapes_only or relative_error(got, mistake) <= 1e-6):
            return f". Hint: {sentence}"
    return f". Hint: {default_hint}" if default_hint else ""


def passed(check: str, errors: list[float], cases: int) -> float:
    """Print the ``OK`` line and return the worst error."""
    worst = max(errors) if errors else 0.0
    print(f"OK {check}: relative error {worst:.0e} (worst of {cases} random cases)")
    return worst
