"""Figures of the gCAM-CCL interpretation (Hu et al. 2021, Figs. 2-6).

- :func:`plot_activation_histograms`: average histogram of the FC activation maps per class (Fig. 4).
- :func:`plot_fc_maps`: class-averaged Grad-CAM and guided Grad-CAM FC maps, 264 x 264 (Figs. 2-3).
- :func:`plot_snp_maps`: class-averaged SNP maps as line plots, planted SNPs marked when known.
- :func:`plot_connectome`: significant edges on the Power-264 coordinates (nilearn, Figs. 5-6).
- :func:`plot_hub_degrees`: ROIs with the most significant edges.

All figures are PNGs drawn headless and written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fusion.errors import InputError
from fusion.interpret.significance import contrast_threshold
from fusion.report.plotting import barh, heatmap, pyplot, save, subplots


def _class_name(class_names: Sequence[str] | None, c: int) -> str:
    return class_names[c] if class_names is not None else f"class {c}"


def class_means(maps: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Mean map per class, each subject's map first divided by its maximum absolute value.

    Scaling per subject keeps one subject with large gradients from dominating the average.
    """
    maps = np.asarray(maps, dtype=float)
    labels = np.asarray(labels)
    flat = maps.reshape(len(maps), -1)
    peak = np.abs(flat).max(axis=1)
    scaled = maps / np.where(peak > 0, peak, 1.0).reshape((-1,) + (1,) * (maps.ndim - 1))
    return {int(c): scaled[labels == c].mean(axis=0) for c in np.unique(labels)}


def plot_activation_histograms(
    path: str | os.PathLike,
    bin_edges: np.ndarray,
    histograms: Mapping[int, np.ndarray],
    class_names: Sequence[str] | None = None,
    title: str = "FC activation maps",
) -> Path:
    """One panel per class: mean share of features per bin of the max-scaled map (Fig. 4)."""
    fig, axes = subplots(1, len(histograms), sharey=True)
    centres = 0.5 * (bin_edges[:-1] + bin_edges[1:])
    width = np.diff(bin_edges)
    for ax, (c, hist) in zip(axes[0], sorted(histograms.items())):
        ax.bar(centres, hist, width=width, color="0.4", edgecolor="none")
        ax.set_yscale("log")
        ax.set_title(f"{title}: {_class_name(class_names, c)}")
        ax.set_xlabel("activation / subject max")
    axes[0][0].set_ylabel("share of features")
    return save(fig, path)


def plot_fc_maps(
    path: str | os.PathLike,
    maps: Mapping[str, Mapping[int, np.ndarray]],
    class_names: Sequence[str] | None = None,
) -> Path:
    """Grid of class-averaged FC maps: one row per map kind, one column per class (Figs. 2-3).

    Args:
        maps: ``{"Grad-CAM": {class: (R, R)}, "guided Grad-CAM": {...}}``.
    """
    kinds = list(maps)
    classes = sorted(next(iter(maps.values())))
    fig, axes = subplots(len(kinds), len(classes), panel_size=(4.5, 4.0))
    for r, kind in enumerate(kinds):
        for k, c in enumerate(classes):
            matrix = np.asarray(maps[kind][c])
            if matrix.ndim != 2:
                raise InputError(f"{kind} map of class {c} must be 2D, got shape {matrix.shape}")
            signed = matrix.min() < 0
            bound = np.abs(matrix).max() or 1.0
            heatmap(
                axes[r][k],
                matrix,
                title=f"{kind}: {_class_name(class_names, c)}",
                cmap="RdBu_r" if signed else "hot",
                vmin=-bound if signed else 0.0,
                vmax=bound,
                xlabel="ROI",
                ylabel="ROI",
            )
    return save(fig, path)


def plot_snp_maps(
    path: str | os.PathLike,
    maps: Mapping[str, Mapping[int, np.ndarray]],
    class_names: Sequence[str] | None = None,
    planted: Sequence[int] | None = None,
) -> Path:
    """Class-averaged SNP maps as lines, one panel per map kind; planted SNPs as ticks."""
    kinds = list(maps)
    fig, axes = subplots(len(kinds), 1, panel_size=(10.0, 2.8))
    for r, kind in enumerate(kinds):
        ax = axes[r][0]
        for c, line in sorted(maps[kind].items()):
            ax.plot(np.asarray(line), lw=0.8, label=_class_name(class_names, c))
        if planted is not None and len(planted):
            ax.plot(np.asarray(planted), np.zeros(len(planted)), "k|", ms=10, label="planted")
        ax.set_title(kind)
        ax.set_xlabel("SNP index")
        ax.legend(fontsize=8, loc="upper right")
    return save(fig, path)


def plot_snp_contrast(
    path: str | os.PathLike,
    contrasts: Mapping[int, np.ndarray],
    class_names: Sequence[str] | None = None,
    planted: Sequence[int] | None = None,
    fraction: float | None = None,
    z: float | None = None,
    title: str = "class contrast",
) -> Path:
    """Each class's contrast per SNP with its threshold (robust ``z`` or ``fraction`` x max) and
    the planted SNPs."""
    classes = sorted(contrasts)
    fig, axes = subplots(len(classes), 1, panel_size=(10.0, 2.6))
    for r, c in enumerate(classes):
        ax = axes[r][0]
        line = np.asarray(contrasts[c], dtype=float)
        ax.plot(line, lw=0.8, color=f"C{r}", label=_class_name(class_names, c))
        if z is not None or fraction is not None:
            level = contrast_threshold(line, fraction if fraction is not None else 0.0, z)
            if np.isfinite(level):
                label = f"robust z = {z:g}" if z is not None else f"{fraction:g} x max"
                ax.axhline(level, color="0.4", ls="--", lw=0.8, label=label)
        if planted is not None and len(planted):
            ax.plot(np.asarray(planted), np.zeros(len(planted)), "k|", ms=10, label="planted")
        ax.set_title(f"{title}: {_class_name(class_names, c)}")
        ax.set_xlabel("SNP index")
        ax.legend(fontsize=8, loc="upper right")
    return save(fig, path)


def edges_to_matrix(edges: pd.DataFrame, n_rois: int, value: str = "frequency") -> np.ndarray:
    """Symmetric ``(n_rois, n_rois)`` matrix with ``edges[value]`` at each significant pair."""
    matrix = np.zeros((n_rois, n_rois))
    i = edges["roi_i"].to_numpy(int)
    j = edges["roi_j"].to_numpy(int)
    matrix[i, j] = matrix[j, i] = edges[value].to_numpy(float)
    return matrix


def plot_connectome(
    path: str | os.PathLike,
    edges: pd.DataFrame,
    coords: np.ndarray,
    title: str = "",
    roi_networks: Sequence[str] | None = None,
    max_edges: int = 300,
) -> Path:
    """Significant edges on the Power-264 coordinates, three orthogonal views (Figs. 5-6).

    Only ROIs touching a drawn edge are drawn, sized by hub degree and coloured by network. At
    most ``max_edges`` edges are drawn (the heaviest; the title says so when some are left
    out): thousands of lines are unreadable and slow to render.

    Args:
        edges: table with ``roi_i``, ``roi_j`` and the edge weight: ``frequency`` (the paper's
            rule) or ``relative`` (the class-contrast rule).
        coords: ``(R, 3)`` MNI coordinates in mm.
        roi_networks: ``R`` network names for node colours, or ``None``.
    """
    from nilearn import plotting

    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise InputError(f"ROI coordinates must be (R, 3) in mm, got shape {coords.shape}")
    plt = pyplot()
    n_rois = len(coords)
    n_total = len(edges)
    weight = "frequency" if "frequency" in edges else "relative"
    if n_total > max_edges:
        edges = edges.sort_values(weight, ascending=False, kind="stable").head(max_edges)
        title = (title or f"{n_total} significant edges") + f" (top {max_edges} drawn)"
    matrix = edges_to_matrix(edges, n_rois, weight)
    degree = (matrix > 0).sum(axis=0)
    if roi_networks is not None:
        names = sorted(set(roi_networks))
        palette = plt.get_cmap("tab20", max(len(names), 1))
        node_color = [palette(names.index(n)) for n in roi_networks]
    else:
        node_color = "tab:blue"
    fig = plt.figure(figsize=(10, 3.6))
    if len(edges) == 0:
        matrix[0, 0] = 0.0
    plotting.plot_connectome(
        matrix,
        coords,
        node_color=node_color,
        node_size=np.where(degree > 0, 8 + 6 * degree, 0),
        edge_cmap="YlOrRd",
        edge_vmin=0.0,
        edge_vmax=1.0,
        edge_threshold=None,
        display_mode="ortho",
        figure=fig,
        title=title or f"{len(edges)} significant edges",
        colorbar=len(edges) > 0,
    )
    return save(fig, path)


def plot_hub_degrees(
    path: str | os.PathLike, hubs: pd.DataFrame, top: int = 20, title: str = "hub ROIs"
) -> Path:
    """Bar plot of the ``top`` ROIs by number of significant edges (``roi``, ``network``, ``degree``)."""
    rows = hubs.sort_values("degree", ascending=False).head(top)
    rows = rows[rows["degree"] > 0]
    labels = [
        f"ROI {int(r.roi) + 1}" + (f" ({r.network})" if isinstance(r.network, str) and r.network else "")
        for r in rows.itertuples()
    ]
    fig, axes = subplots(1, 1, panel_size=(5.0, max(2.0, 0.25 * len(labels) + 1)))
    barh(axes[0][0], labels, rows["degree"].to_numpy(), title=title, xlabel="significant edges")
    if not labels:
        axes[0][0].text(0.5, 0.5, "no significant edges", ha="center", va="center",
                        transform=axes[0][0].transAxes)
    return save(fig, path)
