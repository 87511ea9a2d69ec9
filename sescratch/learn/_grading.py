"""What every check shares: random cases, calling the learner's function, comparing, reporting.

A check passes by printing one ``OK`` line (the worst relative error over its random cases)
and returning that error; it fails by raising ``AssertionError`` with a sentence that says
which output is wrong, by how much, for which shapes, and the most likely mistake.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from sescratch.gradcheck import relative_error

TOLERANCE = 1e-8  # float64 work agrees with the references to 1e-14..1e-10 (batch norm line by line,
                  # 1500 draws); float32 work is off by ~1e-7
FLOAT32_ROUNDING = 1e-5  # errors between TOLERANCE and this look like float32 work, not a mistake


def rng_for(seed) -> np.random.Generator:
    """The generator of a check's random cases: ``seed=None`` draws new cases on every call."""
    return np.random.default_rng(seed)


def call(check: str, fn: Callable, *args, **kwargs):
    """Run the learner's ``fn``; a stub, a crash, or an array argument changed in place becomes an
    ``AssertionError`` naming the check (the functions of the tutorials are pure: a caller's
    ``dy`` or weights must come back as they went in)."""
    before = [a.copy() if isinstance(a, np.ndarray) else None for a in args]
    out = _run(check, fn, args, kwargs)
    for i, (a, old) in enumerate(zip(args, before)):
        if old is not None and not np.array_equal(a, old, equal_nan=True):
            name = _parameter_name(fn, i)
            raise AssertionError(f"{check}: {getattr(fn, '__name__', 'fn')} changed its argument {name} "
                                 "in place; leave the inputs as they are and return new arrays "
                                 f"(write e.g. {name} = {name} / k, not {name} /= k)")
    return out


def _parameter_name(fn, i: int) -> str:
    """The name of ``fn``'s ``i``-th positional parameter (``argument i`` when unknown)."""
    import inspect

    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return params[i] if i < len(params) else f"#{i + 1}"


def _run(check: str, fn: Callable, args, kwargs):
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
    low_precision = got_arr.dtype.kind in "fc" and got_arr.dtype.itemsize < 8
    truncated = got_arr.dtype.kind in "iub" and not np.array_equal(want_arr, np.round(want_arr))
    if low_precision or truncated:
        why = ("an integer array cuts every value to a whole number (np.zeros(shape) is float64; "
               "dtype=int is not)" if truncated else
               "the inputs are float64: compute in float64, so that the check can tell a mistake "
               "from rounding")
        raise AssertionError(f"{check}: {name} has dtype {got_arr.dtype}, expected float64 ({case}): {why}")
    if not np.all(np.isfinite(got_arr)):
        raise AssertionError(f"{check}: {name} contains NaN or inf ({case})")
    err = relative_error(got_arr, want_arr)
    if not err <= TOLERANCE:
        raise AssertionError(f"{check}: {name} is wrong: relative error {err:.1e} "
                             f"(should be below {TOLERANCE:.0e}) for {case}"
                             + _hint_for(got_arr, hints, default_hint, want=want_arr, err=err))
    return err


def _hint_for(got, hints, default_hint, *, shapes_only=False, want=None, err=None) -> str:
    """The first hint whose mistake ``got`` matches; a mistake that gives the right answer for
    this case (an N = 1 batch, a 1x1 kernel) says nothing about ``got`` and is passed over.
    Failing those, an error at float32's rounding level is said to be one."""
    for sentence, mistake in (hints or {}).items():
        mistake = np.asarray(mistake)
        if mistake.shape != got.shape:
            continue
        if shapes_only:
            return f". Hint: {sentence}"
        if want is not None and relative_error(mistake, want) <= TOLERANCE:  # compare checked want's shape
            continue
        if relative_error(got, mistake) <= 1e-6:
            return f". Hint: {sentence}"
    if err is not None and err <= FLOAT32_ROUNDING:
        return (". Hint: an error this small is float32's rounding, not a wrong formula: is a value "
                "computed in float32 (astype(np.float32), np.zeros(..., dtype=np.float32))? Work in float64")
    return f". Hint: {default_hint}" if default_hint else ""


def passed(check: str, errors: list[float], cases: int) -> float:
    """Print the ``OK`` line and return the worst error."""
    worst = max(errors) if errors else 0.0
    print(f"OK {check}: relative error {worst:.0e} (worst of {cases} random cases)")
    return worst
