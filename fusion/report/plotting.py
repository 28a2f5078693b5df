"""Shared figure helpers: headless matplotlib, consistent sizes, atomic PNG saving.

Every figure of the framework is drawn on the Agg backend (no display needed) and written through
:func:`fusion.io.save_figure`, which saves atomically and closes the figure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def pyplot():
    """Return ``matplotlib.pyplot`` on the Agg backend (selected before the first import)."""
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def subplots(
    nrows: int = 1, ncols: int = 1, panel_size: tuple[float, float] = (4.0, 3.5), **kwargs
):
    """``plt.subplots`` with a figure size of ``panel_size`` inches per panel; axes always 2D."""
    plt = pyplot()
    figsize = (panel_size[0] * ncols, panel_size[1] * nrows)
    kwargs.setdefault("layout", "constrained")
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, **kwargs)
    return fig, axes


def heatmap(
    ax,
    matrix: np.ndarray,
    title: str = "",
    cmap: str = "hot",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    xlabel: str = "",
    ylabel: str = "",
    colorbar_label: str = "",
    one_based: bool = True,
):
    """Draw a 2D array as an image on ``ax`` (origin top-left, square pixels).

    With ``one_based`` the axes count rows and columns from 1 (ROI 1 is the first row), as every
    user-facing name does; ``colorbar_label`` names the colour scale and its unit.
    """
    matrix = np.asarray(matrix)
    extent = (0.5, matrix.shape[1] + 0.5, matrix.shape[0] + 0.5, 0.5) if one_based else None
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", extent=extent)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        if colorbar_label:
            bar.set_label(colorbar_label, fontsize=8)
    return image


def barh(ax, labels: Sequence[str], values: Sequence[float], title: str = "", xlabel: str = ""):
    """Horizontal bar plot with the first label on top."""
    positions = np.arange(len(labels))
    ax.barh(positions, values, color="tab:blue")
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(xlabel)


def save(figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save ``figure`` as PNG atomically (through :func:`fusion.io.save_figure`) and close it."""
    from fusion import io

    return io.save_figure(path, figure, dpi=dpi)
