"""Figures drawn off-screen, without pyplot.

The library saves PNGs (training curves, confusion matrices, experiment tables, excitations)
from inside notebooks and scripts alike. Building ``matplotlib.figure.Figure`` objects directly
leaves the caller's Matplotlib backend and open figures alone (``matplotlib.use("Agg")`` would
switch off inline plots in a notebook), and such a figure is freed with its last reference.
"""
from __future__ import annotations

import os
from pathlib import Path

from sescratch.io import atomic_open


def figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], squeeze: bool = True):
    """A new off-screen figure and its axes, like ``pyplot.subplots`` but not registered with pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze)
    return fig, axes


def save_figure(fig, path: str | os.PathLike, *, dpi: int, format: str | None = None) -> Path:
    """Write ``fig`` to ``path`` whole or not at all (a kill mid-save leaves the old file).

    ``format`` defaults to the path's suffix (``png`` without one); returns the path.
    """
    path = Path(path)
    with atomic_open(path, "wb") as f:  # ".{name}.*.tmp": what rundir.clean_temporaries removes
        fig.savefig(f, dpi=dpi, format=format or path.suffix.lstrip(".") or "png")
    return path
