"""Figures of the gCAM-CCL interpretation (Hu et al. 2021, Figs. 2-6).

- :func:`plot_activation_histograms`: average histogram of the FC activation maps per class (Fig. 4).
- :func:`plot_fc_maps`: class-averaged Grad-CAM and guided Grad-CAM FC maps, 264 x 264 (Figs. 2-3).
- :func:`plot_snp_maps`: class-averaged SNP maps as line plots, planted SNPs marked when known.
- :func:`plot_connectome`: significant edges on the Power-264 coordinates (nilearn, Figs. 5-6).
- :func:`plot_hub_degrees`: ROIs with the most significant edges.

All figures are PNGs drawn headless and written atomically. Every ROI and SNP is named from 1
(``ROI001`` is the atlas's first ROI, as in :func:`fusion.data.power.roi_names`; SNP 1 is the first
column of the genotype set) or by ``chromosome:position`` when the ``.bim`` gives them. FC maps
with network labels are drawn with the ROIs grouped by network, one coloured block per network,
in the colours of the connectome's nodes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fusion.data.power import roi_label
from fusion.errors import InputError
from fusion.interpret.significance import contrast_threshold
from fusion.report.plotting import barh, heatmap, pyplot, save, subplots


def _class_name(class_names: Sequence[str] | None, c: int) -> str:
    return class_names[c] if class_names is not None else f"class {c}"


def network_colours(networks: Sequence[str]) -> dict[str, tuple]:
    """One stable colour per network: Power networks in the atlas table's order
    (:data:`fusion.data.power.NETWORKS`), any other name after them, on ``tab20``."""
    from matplotlib import colormaps

    from fusion.data.power import NETWORKS

    order = list(NETWORKS) + sorted(set(networks) - set(NETWORKS))
    palette = colormaps["tab20"]
    present = set(networks)
    return {name: palette(i % 20) for i, name in enumerate(order) if name in present}


def network_blocks(roi_networks: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """ROIs grouped by network: ``(order, blocks)``.

    ``order`` lists the 0-based ROI indices network by network (networks in
    :func:`network_colours` order, ROIs ascending within each), and ``blocks`` gives each
    network's ``(name, first position, size)`` in that order.
    """
    networks = np.asarray(list(roi_networks), dtype=object)
    colours = network_colours(list(networks))
    order: list[int] = []
    blocks: list[tuple[str, int, int]] = []
    for name in colours:  # dict order = the stable network order of the present networks
        members = np.flatnonzero(networks == name)
        blocks.append((str(name), len(order), len(members)))
        order.extend(members.tolist())
    return np.asarray(order, dtype=int), blocks


def _draw_network_blocks(ax, blocks: list[tuple[str, int, int]], colours: Mapping[str, tuple], n: int) -> None:
    """Block lines between networks, a colour strip along the top and left edges, and the
    network names as ticks at the blocks' centres (1-based positions, as :func:`heatmap` draws)."""
    from matplotlib.patches import Rectangle

    width = max(n * 0.025, 1.0)
    for name, start, size in blocks:
        lo = start + 0.5
        if start > 0:
            ax.axhline(lo, color="0.2", lw=0.4)
            ax.axvline(lo, color="0.2", lw=0.4)
        for xy, w, h in (((lo, 0.5 - width), size, width), ((0.5 - width, lo), width, size)):
            ax.add_patch(Rectangle(xy, w, h, facecolor=colours[name], edgecolor="none", clip_on=False))
    centres = [start + 0.5 + size / 2 for _, start, size in blocks]
    names = [name for name, _, _ in blocks]
    ax.set_xticks(centres, names, rotation=90, fontsize=5)
    ax.set_yticks(centres, names, fontsize=5)
    ax.tick_params(length=0, pad=9)  # clear of the colour strips


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
    roi_networks: Sequence[str] | None = None,
    value_label: str = "class mean, each subject's max |map| = 1",
) -> Path:
    """Grid of class-averaged FC maps: one row per map kind, one column per class (Figs. 2-3).

    Args:
        maps: ``{"Grad-CAM": {class: (R, R)}, "guided Grad-CAM": {...}}``.
        roi_networks: ``R`` network names: the ROIs are then grouped by network, with coloured
            blocks and a network legend; None keeps atlas order (axes count ROIs from 1).
        value_label: what the colour scale shows (the maps are unitless: each subject's map is
            divided by its maximum before the class mean, :func:`class_means`).
    """
    kinds = list(maps)
    classes = sorted(next(iter(maps.values())))
    n = np.asarray(maps[kinds[0]][classes[0]]).shape[-1]
    if roi_networks is not None and len(roi_networks) != n:
        raise InputError(f"roi_networks has {len(roi_networks)} names for {n} ROIs")
    order = blocks = colours = None
    if roi_networks is not None:
        order, blocks = network_blocks(roi_networks)
        colours = network_colours(list(roi_networks))
    fig, axes = subplots(len(kinds), len(classes), panel_size=(4.8, 4.2))
    for r, kind in enumerate(kinds):
        for k, c in enumerate(classes):
            matrix = np.asarray(maps[kind][c])
            if matrix.ndim != 2:
                raise InputError(f"{kind} map of class {c} must be 2D, got shape {matrix.shape}")
            signed = matrix.min() < 0
            bound = np.abs(matrix).max() or 1.0
            if order is not None:
                matrix = matrix[np.ix_(order, order)]
            ax = axes[r][k]
            heatmap(
                ax,
                matrix,
                title=f"{kind}: {_class_name(class_names, c)}",
                cmap="RdBu_r" if signed else "hot",
                vmin=-bound if signed else 0.0,
                vmax=bound,
                xlabel="ROI, grouped by Power network" if order is not None else "ROI (1 = ROI001)",
                ylabel="ROI, grouped by Power network" if order is not None else "ROI (1 = ROI001)",
                colorbar_label=f"{value_label} (unitless)",
            )
            if blocks is not None and colours is not None:  # set with order
                _draw_network_blocks(ax, blocks, colours, n)
    if blocks is not None and colours is not None:
        from matplotlib.patches import Patch

        from fusion.data.power import NETWORKS

        handles = [Patch(color=colours[name], label=f"{name}: {NETWORKS.get(name, name)}") for name, _, _ in blocks]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(4, len(handles)), fontsize=6,
                   title="Power networks", title_fontsize=7, frameon=False)
    return save(fig, path)


def _snp_axis(ax, n: int, snp_positions: Sequence[str] | None) -> None:
    """x axis of a SNP plot: SNP numbers from 1, or ``chromosome:position`` ticks with a line at
    each change of chromosome when the positions are known."""
    if snp_positions is None:
        ax.set_xlabel("SNP (1 = first SNP of the genotype set)")
        ax.set_xlim(0.5, n + 0.5)
        return
    if len(snp_positions) != n:
        raise InputError(f"snp_positions has {len(snp_positions)} entries for {n} SNPs")
    chromosomes = [str(p).split(":", 1)[0] for p in snp_positions]
    starts = [i for i in range(n) if i == 0 or chromosomes[i] != chromosomes[i - 1]]
    for i in starts[1:]:
        ax.axvline(i + 0.5, color="0.75", lw=0.6, zorder=0)
    if len(starts) > 1:  # ticks at the start of each chromosome (thinned to ~12)
        ticks = starts[:: max(1, len(starts) // 12)]
    else:
        ticks = np.linspace(0, n - 1, min(n, 8)).round().astype(int).tolist()
    ax.set_xticks([t + 1 for t in ticks], [str(snp_positions[t]) for t in ticks], fontsize=7, rotation=20)
    ax.set_xlim(0.5, n + 0.5)
    ax.set_xlabel("SNP, chromosome:position (bp), in genotype-set order")


def plot_snp_maps(
    path: str | os.PathLike,
    maps: Mapping[str, Mapping[int, np.ndarray]],
    class_names: Sequence[str] | None = None,
    planted: Sequence[int] | None = None,
    snp_positions: Sequence[str] | None = None,
    value_label: str = "class mean, each subject's max |map| = 1",
) -> Path:
    """Class-averaged SNP maps as lines, one panel per map kind; planted SNPs as ticks.

    Args:
        planted: 0-based positions of the planted SNPs (drawn at their 1-based numbers).
        snp_positions: ``chromosome:position`` per SNP (from the ``.bim``), or None.
    """
    kinds = list(maps)
    fig, axes = subplots(len(kinds), 1, panel_size=(10.0, 2.9))
    for r, kind in enumerate(kinds):
        ax = axes[r][0]
        n = 0
        for c, line in sorted(maps[kind].items()):
            line = np.asarray(line)
            n = len(line)
            ax.plot(np.arange(1, n + 1), line, lw=0.8, label=_class_name(class_names, c))
        if planted is not None and len(planted):
            ax.plot(np.asarray(planted) + 1, np.zeros(len(planted)), "k|", ms=10, label="planted")
        ax.set_title(kind)
        ax.set_ylabel(f"{value_label}\n(unitless)", fontsize=6)
        _snp_axis(ax, n, snp_positions)
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
    snp_positions: Sequence[str] | None = None,
    value_label: str = "contrast (attribution units)",
) -> Path:
    """Each class's contrast per SNP with its threshold (robust ``z`` or ``fraction`` x max) and
    the planted SNPs (0-based positions, drawn at their 1-based numbers)."""
    classes = sorted(contrasts)
    fig, axes = subplots(len(classes), 1, panel_size=(10.0, 2.7))
    for r, c in enumerate(classes):
        ax = axes[r][0]
        line = np.asarray(contrasts[c], dtype=float)
        ax.plot(np.arange(1, len(line) + 1), line, lw=0.8, color=f"C{r}", label=_class_name(class_names, c))
        if z is not None or fraction is not None:
            level = contrast_threshold(line, fraction if fraction is not None else 0.0, z)
            if np.isfinite(level):
                label = f"robust z = {z:g}" if z is not None else f"{fraction:g} x max"
                ax.axhline(level, color="0.4", ls="--", lw=0.8, label=label)
        if planted is not None and len(planted):
            ax.plot(np.asarray(planted) + 1, np.zeros(len(planted)), "k|", ms=10, label="planted")
        ax.set_title(f"{title}: {_class_name(class_names, c)}")
        ax.set_ylabel(value_label, fontsize=7)
        _snp_axis(ax, len(line), snp_positions)
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

    Only ROIs touching a drawn edge are drawn, sized by hub degree and coloured by network (with
    a legend of the networks drawn). At most ``max_edges`` edges are drawn (the heaviest; the
    title says so when some are left out): thousands of lines are unreadable and slow to render.
    The colour bar gives the edge weight: the share of the class's subjects in which the edge
    is kept (``frequency``, the paper's rule) or the contrast relative to the largest
    (``relative``, the class-contrast rule).

    Args:
        edges: table with ``roi_i``, ``roi_j`` (0-based) and the edge weight: ``frequency`` or
            ``relative``.
        coords: ``(R, 3)`` MNI coordinates in mm.
        roi_networks: ``R`` network names for node colours, or ``None``.
    """
    from matplotlib.lines import Line2D
    from nilearn import plotting

    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise InputError(f"ROI coordinates must be (R, 3) in mm, got shape {coords.shape}")
    if roi_networks is not None and len(roi_networks) != len(coords):
        raise InputError(f"roi_networks has {len(roi_networks)} names for {len(coords)} ROIs")
    plt = pyplot()
    n_rois = len(coords)
    n_total = len(edges)
    weight = "frequency" if "frequency" in edges else "relative"
    if n_total > max_edges:
        edges = edges.sort_values(weight, ascending=False, kind="stable").head(max_edges)
        title = (title or f"{n_total} significant edges") + f" (top {max_edges} drawn)"
    matrix = edges_to_matrix(edges, n_rois, weight)
    degree = (matrix > 0).sum(axis=0)
    colours = network_colours(list(roi_networks)) if roi_networks is not None else {}
    node_color = [colours[n] for n in roi_networks] if roi_networks is not None else "tab:blue"
    fig = plt.figure(figsize=(11, 4.2))
    if len(edges) == 0:
        matrix[0, 0] = 0.0
    display = plotting.plot_connectome(
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
        axes=(0.0, 0.16, 0.92, 0.84),
        title=title or f"{len(edges)} significant edges",
        colorbar=len(edges) > 0,
    )
    bar = getattr(display, "_cbar", None)
    if bar is not None:
        bar.set_label("share of the class's subjects" if weight == "frequency"
                      else "contrast / largest contrast", fontsize=8)
    if roi_networks is not None:
        from fusion.data.power import NETWORKS

        drawn = [roi_networks[i] for i in np.flatnonzero(degree > 0)]
        shown = [name for name in colours if name in set(drawn)]
        handles = [Line2D([], [], ls="", marker="o", ms=6, color=colours[name],
                          label=f"{name}: {NETWORKS.get(name, name)}") for name in shown]
        if handles:
            fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), fontsize=7,
                       frameon=False, title="network of the drawn ROIs (size = number of edges)",
                       title_fontsize=7)
    return save(fig, path)


def plot_hub_degrees(
    path: str | os.PathLike, hubs: pd.DataFrame, top: int = 20, title: str = "hub ROIs"
) -> Path:
    """Bar plot of the ``top`` ROIs by number of significant edges.

    ``hubs`` has ``roi`` (0-based, as :func:`fusion.interpret.significance.hub_degrees` gives it)
    or ``roi_index0``, ``network`` and ``degree``; bars are named ``ROI001 (network)`` like the
    hub-degree CSVs' ``roi_name`` column.
    """
    rows = hubs.sort_values("degree", ascending=False).head(top)
    rows = rows[rows["degree"] > 0]
    index0 = rows["roi_index0"] if "roi_index0" in rows else rows["roi"]
    networks = rows["network"] if "network" in rows else [""] * len(rows)
    labels = [roi_label(i) + (f" ({net})" if isinstance(net, str) and net else "")
              for i, net in zip(index0, networks)]
    fig, axes = subplots(1, 1, panel_size=(5.0, max(2.0, 0.25 * len(labels) + 1)))
    barh(axes[0][0], labels, rows["degree"].to_numpy(), title=title, xlabel="number of significant edges")
    if not labels:
        axes[0][0].text(0.5, 0.5, "no significant edges", ha="center", va="center",
                        transform=axes[0][0].transAxes)
        axes[0][0].set_xticks([])  # no bars: an axis around 0 would suggest values
    return save(fig, path)
