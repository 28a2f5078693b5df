"""Figures of a VAE run: ROC curves, latent t-SNE, group-difference slices, volume strips.

The importance bar plot (paper Fig. 2) lives in :mod:`fusion.report.importance_plot`.

Every function draws one figure, saves it as PNG with :func:`fusion.io.save_figure` (atomic) and
returns the path. Matplotlib is used headless (Agg); brain maps are drawn with nilearn.plotting on
the MNI152 template that ships with nilearn.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fusion.errors import InputError
from fusion.io import save_figure
from fusion.report.plotting import pyplot as _pyplot

__all__ = [
    "DOMAIN_COLOURS",
    "plot_roc_curves",
    "plot_latent_tsne",
    "plot_brain_map",
    "plot_map_comparison",
    "plot_volume_strip",
]

PathLike = str | os.PathLike

# One colour per NeuroMark domain (+ sMRI), stable across figures (tab10, as the importance plot).
DOMAIN_COLOURS: dict[str, str] = {
    "SC": "#1f77b4",
    "AU": "#ff7f0e",
    "SM": "#2ca02c",
    "VI": "#d62728",
    "CC": "#9467bd",
    "DM": "#8c564b",
    "CB": "#e377c2",
    "sMRI": "#7f7f7f",
}


def mean_roc(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean ROC over folds: each fold's TPR interpolated on a common FPR ``grid``.

    Each fold's curve is the polyline through the points of :func:`sklearn.metrics.roc_curve`
    (as :func:`plot_roc_curves` draws it), read at every grid point by linear interpolation; at
    FPR 0 the mean starts at 0, as every curve does.

    Returns:
        ``(fpr grid, mean tpr, std tpr)``, the std over folds (population, ``ddof=0``).
    """
    from sklearn.metrics import roc_curve

    grid = np.linspace(0.0, 1.0, 201) if grid is None else np.asarray(grid, dtype=float)
    rows = []
    for y, s in curves:
        fpr, tpr, _ = roc_curve(np.asarray(y), np.asarray(s, dtype=float))
        rows.append(np.interp(grid, fpr, tpr))
    tprs = np.asarray(rows)
    tprs[:, grid <= 0] = 0.0
    return grid, tprs.mean(axis=0), tprs.std(axis=0)


def plot_roc_curves(
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
    path: PathLike,
    names: Sequence[str] | None = None,
    title: str = "ROC curves per test fold",
) -> Path:
    """One thin ROC curve per fold, the mean ROC over folds with a +-1 SD band, and chance.

    Args:
        curves: per fold ``(y_true (n,), score (n,))``, labels 0/1 with 1 = patient, score = SVM
            decision value (larger = more likely patient).
        path: output PNG.
        names: legend name per fold (default ``fold_00``, ``fold_01``, ..., the fold folders).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    if not curves:
        raise InputError("plot_roc_curves: no fold to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.4), layout="constrained")
    aucs = []
    for i, (y, s) in enumerate(curves):
        y, s = np.asarray(y), np.asarray(s, dtype=float)
        if y.shape != s.shape or len(np.unique(y)) != 2:
            raise InputError(f"plot_roc_curves: fold {i} needs labels of both classes and one score per label")
        fpr, tpr, _ = roc_curve(y, s)
        auc = roc_auc_score(y, s)
        aucs.append(auc)
        name = names[i] if names is not None else f"fold_{i:02d}"
        ax.plot(fpr, tpr, lw=0.8, alpha=0.45, label=f"{name} (AUC {auc:.3f})")
    grid, mean, std = mean_roc(curves)
    if len(curves) > 1:
        ax.fill_between(grid, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color="0.2", alpha=0.18,
                        lw=0, label="mean ± 1 SD over folds")
    ax.plot(grid, mean, color="black", lw=2.2,
            label=f"mean ROC (AUC {np.mean(aucs):.3f} ± {np.std(aucs):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate")
    ax.set_title(f"{title}\nmean AUC over {len(curves)} folds {np.mean(aucs):.3f} ± {np.std(aucs):.3f} (SD)",
                 fontsize=10)
    ax.legend(fontsize=6.5, loc="lower right", ncol=1 if len(curves) <= 8 else 2)
    ax.set_aspect("equal")
    return save_figure(path, fig)


def plot_latent_tsne(
    coords: np.ndarray,
    modality: np.ndarray,
    domains: Sequence[str],
    path: PathLike,
    title: str = "t-SNE of the latent space (one point per subject and modality)",
) -> Path:
    """Scatter of a latent t-SNE coloured by NeuroMark domain, each modality's short name at its
    median position: the ICN number as in its name (``1`` for ICN01, counted from 1) or ``GM``
    for the sMRI gray-matter volume.

    Args:
        coords: ``(n_points, 2)`` embedding.
        modality: ``(n_points,)`` 0-based modality index of each point.
        domains: domain name per modality index (e.g. ``fusion.data.neuromark.modality_domains()``).
        path: output PNG.
    """
    coords, modality = np.asarray(coords), np.asarray(modality)
    if coords.ndim != 2 or coords.shape[1] != 2 or modality.shape != (coords.shape[0],):
        raise InputError(f"coords must be (n, 2) and modality (n,), got {coords.shape} and {modality.shape}")
    if modality.max() >= len(domains):
        raise InputError(f"modality index {int(modality.max())} has no domain ({len(domains)} domains given)")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.2, 7), layout="constrained")
    point_domain = np.asarray(domains)[modality]
    order = list(dict.fromkeys(domains))
    fallback = plt.get_cmap("tab10")
    colours = {d: DOMAIN_COLOURS.get(d, fallback(i % 10)) for i, d in enumerate(order)}
    size = float(np.clip(4000.0 / max(coords.shape[0], 1), 2.0, 18.0))
    for d in order:
        sel = point_domain == d
        ax.scatter(coords[sel, 0], coords[sel, 1], s=size, c=[colours[d]], alpha=0.55, lw=0,
                   label=f"{d} ({len(np.unique(modality[sel]))})")
    for m in np.unique(modality):
        cx, cy = np.median(coords[modality == m], axis=0)
        ax.text(cx, cy, modality_short_name(int(m), domains), fontsize=7, ha="center", va="center", weight="bold",
                color=colours[domains[int(m)]],
                bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.75))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("labels: ICN number (1 = ICN01), GM = sMRI gray matter", fontsize=8, color="0.3")
    # Outside the axes: inside, "best" avoids the points but not the modality labels.
    ax.legend(title="domain (modalities)", fontsize=8, markerscale=max(1.0, float(np.sqrt(30.0 / size))),
              loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return save_figure(path, fig)


def modality_short_name(index0: int, domains: Sequence[str]) -> str:
    """Short figure label of the modality at 0-based ``index0``: its ICN number from 1, or
    ``GM`` for the sMRI volume (domain ``"sMRI"``)."""
    return "GM" if domains[index0] == "sMRI" else str(index0 + 1)


@functools.lru_cache(maxsize=1)
def _background():
    """nilearn's MNI152 T1 template at 2 mm, taken as every other voxel of the 1 mm image (exact
    on the template's grid and much faster than resampling, which ``resolution=2`` does)."""
    import nibabel as nib
    from nilearn.datasets import load_mni152_template

    img = load_mni152_template(resolution=1)
    affine = img.affine.copy()
    affine[:3, :3] *= 2
    return nib.Nifti1Image(np.asarray(img.dataobj)[::2, ::2, ::2], affine)


def _stat_image(volume: np.ndarray, affine: np.ndarray):
    import nibabel as nib

    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise InputError(f"brain map must be (X, Y, Z), got shape {volume.shape}")
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4):
        raise InputError(f"affine must be 4x4, got shape {affine.shape}")
    return nib.Nifti1Image(volume, affine)


#: Colour-bar label of the decoded and input group maps: differences of max-abs scaled volumes
#: (short enough for a one-row colour bar).
GROUP_MAP_UNIT = "patient - control (scaled, unitless)"


def _draw_map(volume, affine, title, display_mode, cut_coords, figure=None, axes=None, vmax=None,
              colorbar_label=GROUP_MAP_UNIT):
    from nilearn import plotting

    img = _stat_image(volume, affine)
    peak = float(np.abs(volume).max())
    kwargs = dict(
        bg_img=_background(),
        display_mode=display_mode,
        cut_coords=cut_coords,
        title=title,
        colorbar=True,
        black_bg=False,
        annotate=True,
        draw_cross=False,
        figure=figure,
        axes=axes,
    )
    if peak > 0:
        # Show every non-zero voxel (the maps are already thresholded), symmetric colour scale.
        kwargs.update(threshold=peak * 1e-6, vmax=vmax or peak)
    display = plotting.plot_stat_map(img, **kwargs)
    bar = getattr(display, "_cbar", None)
    if bar is not None and colorbar_label:
        bar.set_label(colorbar_label, fontsize=7)
    return display


def plot_brain_map(
    volume: np.ndarray,
    affine: np.ndarray,
    path: PathLike,
    title: str = "",
    display_mode: str = "z",
    cut_coords: int | Sequence[float] = 7,
    colorbar_label: str = GROUP_MAP_UNIT,
) -> Path:
    """Slices of a (thresholded) map over the MNI152 template.

    Args:
        volume: ``(X, Y, Z)`` map on the input grid.
        affine: ``(4, 4)`` voxel-to-world affine of that grid (MNI space).
        path: output PNG.
        title: figure title.
        display_mode: nilearn display mode (``"z"`` axial row, ``"ortho"``, ``"mosaic"``...).
        cut_coords: number of cuts or their world coordinates.
        colorbar_label: what the colour scale shows, with its unit.
    """
    plt = _pyplot()
    fig = plt.figure(figsize=(12, 2.8) if display_mode in ("x", "y", "z") else (8, 3.2))
    display = _draw_map(volume, affine, title, display_mode, cut_coords, figure=fig,
                        colorbar_label=colorbar_label)
    out = save_figure(path, fig)
    display.close()
    return out


def plot_map_comparison(
    maps: Sequence[np.ndarray],
    titles: Sequence[str],
    affine: np.ndarray,
    path: PathLike,
    display_mode: str = "z",
    cut_coords: int | Sequence[float] = 7,
    colorbar_label: str = GROUP_MAP_UNIT,
) -> Path:
    """Several maps stacked as rows of one figure, same cuts, each with its own colour scale.

    Args:
        maps: ``(X, Y, Z)`` maps on one grid.
        titles: one title per map.
        affine: ``(4, 4)`` affine of the grid.
        path: output PNG.
    """
    if len(maps) != len(titles) or not maps:
        raise InputError("plot_map_comparison: give one title per map, and at least one map")
    from nilearn.plotting import find_cut_slices

    if isinstance(cut_coords, int) and display_mode in ("x", "y", "z"):
        # Common cuts, placed on the first map's strongest voxels.
        first = _stat_image(maps[0], affine)
        if np.any(maps[0] != 0):
            cut_coords = list(find_cut_slices(first, direction=display_mode, n_cuts=cut_coords))
    plt = _pyplot()
    fig, axes = plt.subplots(len(maps), 1, figsize=(12, 2.8 * len(maps)))
    axes = np.atleast_1d(axes)
    displays = [
        _draw_map(m, affine, t, display_mode, cut_coords, figure=fig, axes=ax, colorbar_label=colorbar_label)
        for m, t, ax in zip(maps, titles, axes)
    ]
    out = save_figure(path, fig)
    for d in displays:
        d.close()
    return out


def plot_volume_strip(
    volumes: np.ndarray,
    path: PathLike,
    titles: Sequence[str] | None = None,
    slices: tuple[int, int, int] | None = None,
    title: str = "",
    colorbar_label: str = "decoded intensity (max-abs scaled, unitless)",
) -> Path:
    """A strip of volumes: columns are volumes, rows the sagittal, coronal and axial mid slices.

    Args:
        volumes: ``(n, X, Y, Z)``, e.g. the steps of an interpolation or prior samples.
        path: output PNG.
        titles: one column title per volume.
        slices: ``(x, y, z)`` voxel indices of the slices (default: the grid's centre).
        title: figure title.
    """
    volumes = np.asarray(volumes, dtype=np.float32)
    if volumes.ndim != 4 or volumes.shape[0] == 0:
        raise InputError(f"volumes must be (n, X, Y, Z), got shape {volumes.shape}")
    n, sx, sy, sz = volumes.shape
    cx, cy, cz = slices if slices is not None else (sx // 2, sy // 2, sz // 2)
    vmax = float(np.abs(volumes).max()) or 1.0
    plt = _pyplot()
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n + 0.6, 5.0), squeeze=False)
    for j in range(n):
        views = (volumes[j, cx, :, :], volumes[j, :, cy, :], volumes[j, :, :, cz])
        for i, view in enumerate(views):
            ax = axes[i, j]
            im = ax.imshow(view.T, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
        if titles is not None:
            axes[0, j].set_title(titles[j], fontsize=8)
    for i, name in enumerate(("sagittal", "coronal", "axial")):
        axes[i, 0].set_ylabel(name, fontsize=8)
    bar = fig.colorbar(im, ax=axes, shrink=0.6, pad=0.01)
    bar.set_label(colorbar_label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(path, fig)
