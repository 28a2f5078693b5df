"""The top-k modality importance bar plot with standard-deviation whiskers (Geenjaar et al. Fig. 2).

Bars are ordered as in the paper: the rightmost bar is the most important modality, the leftmost
the k-th; each bar is coloured by its NeuroMark domain.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas

__all__ = ["plot_importance", "save_importance_plot"]


def plot_importance(table: pandas.DataFrame, top: int = 10, n_folds: int | None = None):
    """Draw the ``top`` most important modalities.

    Args:
        table: from :func:`fusion.evaluate.importance.importance_table` (columns ``name``,
            ``domain``, ``mean``, ``std``).
        top: number of bars.
        n_folds: shown in the title when given.

    Returns:
        The matplotlib figure (Agg backend).
    """
    from matplotlib.patches import Patch

    from fusion.report.plotting import subplots

    top = int(min(top, len(table)))
    best = table.sort_values("mean", ascending=False, kind="stable").head(top).iloc[::-1]
    domains = list(dict.fromkeys(best["domain"]))
    cmap = _domain_colours(domains)
    fig, axes = subplots(1, 1, panel_size=(max(4.0, 0.6 * top + 1.5), 3.8))
    ax = axes[0, 0]
    x = np.arange(top)
    ax.bar(
        x,
        best["mean"].to_numpy(),
        yerr=best["std"].to_numpy(),
        capsize=3,
        color=[cmap[d] for d in best["domain"]],
        edgecolor="black",
        linewidth=0.5,
        error_kw={"elinewidth": 1.0},
    )
    ax.set_xticks(x)
    ax.set_xticklabels(best["name"], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("importance (sums to 1 over modalities)")
    suffix = f", std over {n_folds} folds" if n_folds else ""
    ax.set_title(f"Top {top} modalities by linear-SVM weight{suffix}", fontsize=10)
    handles = [Patch(color=cmap[d], label=d) for d in domains]
    ax.legend(handles=handles, fontsize=7, loc="upper left", title="domain", title_fontsize=7)
    ax.set_ylim(bottom=0)
    return fig


def save_importance_plot(
    path: str | os.PathLike, table: pandas.DataFrame, top: int = 10, n_folds: int | None = None
) -> Path:
    """Draw :func:`plot_importance` and write it as PNG atomically."""
    from fusion.report.plotting import save

    return save(plot_importance(table, top=top, n_folds=n_folds), path)


def _domain_colours(domains: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    order = ("SC", "AU", "SM", "VI", "CC", "DM", "CB", "sMRI")
    colours: dict[str, tuple] = {}
    for d in domains:
        idx = order.index(d) if d in order else len(order) + len(colours)
        colours[d] = palette(idx % 10)
    return colours
