"""Significant features from per-subject activation maps (Hu et al. 2021, Sec. III-D).

The rule: in each subject's map keep the features whose value exceeds ``fraction`` (0.05) times
that subject's maximum; a feature is significant for a class when it is kept in more than
``class_fraction`` (70%) of that class's subjects.

Decisions where the paper is silent:
- A subject whose map has no positive value keeps nothing (``value > fraction * max`` with
  ``max <= 0`` would otherwise keep the least negative features).
- "More than 70%" is strict and decided on counts: a feature needs
  ``count > floor(class_fraction * n_class)`` subjects, so 7 of 10 is not significant, 71 of 100 is
  (no floating-point ties).
- FC maps are 264 x 264 but an FC matrix is symmetric, so a map is first symmetrised as
  ``(M + M.T) / 2`` (the network sees each edge twice; the average credits both entries) and only
  the upper triangle ``i < j`` is used: the diagonal (self-connections) is not an edge. The
  per-subject maximum is taken over those edges.

A second rule, not the paper's (:func:`contrast_snps`, :func:`contrast_edges`): for class ``c``,
the mean of the subjects' class-``c`` maps over class ``c`` minus their mean over the other
subjects; significant when its robust z-score (median and MAD over all features) exceeds ``z``,
or above ``fraction`` times the largest contrast. The frequency rule asks where
a class's maps are high; on a map that is nearly the same for every subject (the input gradient of
a nearly linear network) that is wherever the network is sensitive, including inputs it weighs
by chance. With an attribution that depends on the subject's own input (integrated gradients
against the training mean), a feature whose values do not differ between the classes gets the
same credit on average in both groups, so its contrast is near 0 however sensitive the network
is to it.

Functions here are pure NumPy/pandas; :func:`write_significance` writes the CSVs through
:mod:`fusion.io`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fusion import io
from fusion.errors import ConfigError, InputError


def _check_fractions(fraction: float, class_fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"fraction must be in [0, 1), got {fraction}")
    if not 0.0 <= class_fraction < 1.0:
        raise ConfigError(f"class_fraction must be in [0, 1), got {class_fraction}")


def kept_mask(maps: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Per subject, which features exceed ``fraction`` times the subject's maximum.

    Args:
        maps: ``(n_subjects, n_features)`` map values (flatten spatial maps first).
        fraction: relative threshold (paper: 0.05).

    Returns:
        Boolean ``(n_subjects, n_features)``; all False for a subject whose maximum is <= 0.
    """
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 2:
        raise InputError(f"maps must be (n_subjects, n_features), got shape {maps.shape}")
    if not np.isfinite(maps).all():
        bad = np.flatnonzero(~np.isfinite(maps).all(axis=1))
        raise InputError(f"maps of subjects {bad[:10].tolist()} contain NaN or infinite values")
    peak = maps.max(axis=1, keepdims=True)
    return (maps > fraction * peak) & (peak > 0)


def class_frequencies(
    maps: np.ndarray, labels: np.ndarray, fraction: float = 0.05
) -> dict[int, tuple[np.ndarray, int]]:
    """Per class, how many subjects keep each feature.

    Returns:
        ``{class: (counts (n_features,), n_subjects_in_class)}`` for every class in ``labels``.
    """
    labels = np.asarray(labels)
    if labels.shape != (len(maps),):
        raise InputError(
            f"labels must have one entry per subject ({len(maps)}), got shape {labels.shape}"
        )
    kept = kept_mask(maps, fraction)
    return {
        int(c): (kept[labels == c].sum(axis=0), int((labels == c).sum()))
        for c in np.unique(labels)
    }


def significant_mask(counts: np.ndarray, n: int, class_fraction: float = 0.7) -> np.ndarray:
    """Features kept in more than ``class_fraction`` of ``n`` subjects (strict, on counts)."""
    if n <= 0:
        return np.zeros_like(counts, dtype=bool)
    return np.asarray(counts) > np.floor(class_fraction * n + 1e-9)


def symmetric_edges(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetrise square maps and return their upper-triangle edges.

    Args:
        maps: ``(n_subjects, R, R)``.

    Returns:
        ``(values (n_subjects, R*(R-1)/2), roi_i, roi_j)`` with ``roi_i < roi_j`` in row-major
        upper-triangle order.
    """
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 3 or maps.shape[1] != maps.shape[2]:
        raise InputError(f"FC maps must be (n_subjects, R, R), got shape {maps.shape}")
    sym = 0.5 * (maps + maps.transpose(0, 2, 1))
    i, j = np.triu_indices(maps.shape[1], k=1)
    return sym[:, i, j], i, j


def significant_edges(
    maps: np.ndarray,
    labels: np.ndarray,
    fraction: float = 0.05,
    class_fraction: float = 0.7,
    roi_networks: Sequence[str] | None = None,
) -> dict[int, pd.DataFrame]:
    """Significant FC edges per class.

    Args:
        maps: ``(n_subjects, R, R)`` per-subject FC maps (e.g. Grad-CAM upsampled to 264 x 264).
        labels: ``(n_subjects,)`` class of each subject.
        fraction: per-subject relative threshold (paper: 0.05).
        class_fraction: a feature is significant when kept in more than this share (paper: 0.7).
        roi_networks: ``R`` network names (Power-264), or ``None``.

    Returns:
        ``{class: DataFrame(roi_i, roi_j, network_i, network_j, frequency)}``, 0-based ROIs with
        ``roi_i < roi_j``, sorted by decreasing frequency.
    """
    _check_fractions(fraction, class_fraction)
    values, roi_i, roi_j = symmetric_edges(maps)
    networks = _roi_networks(roi_networks, np.asarray(maps).shape[1])
    out = {}
    for c, (counts, n) in class_frequencies(values, labels, fraction).items():
        sig = significant_mask(counts, n, class_fraction)
        frame = pd.DataFrame(
            {
                "roi_i": roi_i[sig],
                "roi_j": roi_j[sig],
                "network_i": networks[roi_i[sig]],
                "network_j": networks[roi_j[sig]],
                "frequency": counts[sig] / n,
            }
        )
        out[c] = frame.sort_values(
            ["frequency", "roi_i", "roi_j"], ascending=[False, True, True]
        ).reset_index(drop=True)
    return out


def hub_degrees(
    edges: pd.DataFrame, n_rois: int, roi_networks: Sequence[str] | None = None
) -> pd.DataFrame:
    """Number of significant edges on each ROI (its hub degree).

    Returns:
        ``DataFrame(roi, network, degree)`` for all ``n_rois`` ROIs, sorted by decreasing degree.
    """
    degree = np.bincount(
        np.concatenate([edges["roi_i"].to_numpy(int), edges["roi_j"].to_numpy(int)]),
        minlength=n_rois,
    )
    frame = pd.DataFrame(
        {
            "roi": np.arange(n_rois),
            "network": list(roi_networks) if roi_networks is not None else [""] * n_rois,
            "degree": degree,
        }
    )
    return frame.sort_values(["degree", "roi"], ascending=[False, True]).reset_index(drop=True)


def significant_snps(
    maps: np.ndarray,
    labels: np.ndarray,
    fraction: float = 0.05,
    class_fraction: float = 0.7,
    snp_ids: Sequence[str] | None = None,
) -> dict[int, pd.DataFrame]:
    """Significant SNPs per class.

    Args:
        maps: ``(n_subjects, n_snps)`` per-subject SNP maps.
        snp_ids: ``n_snps`` identifiers (rs numbers), or ``None`` for ``snp0000``-style names.

    Returns:
        ``{class: DataFrame(index, id, frequency)}``, 0-based index, by decreasing frequency.
    """
    _check_fractions(fraction, class_fraction)
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 2:
        raise InputError(f"SNP maps must be (n_subjects, n_snps), got shape {maps.shape}")
    ids = _snp_ids(snp_ids, maps.shape[1])
    out = {}
    for c, (counts, n) in class_frequencies(maps, labels, fraction).items():
        sig = np.flatnonzero(significant_mask(counts, n, class_fraction))
        frame = pd.DataFrame({"index": sig, "id": ids[sig], "frequency": counts[sig] / n})
        out[c] = frame.sort_values(["frequency", "index"], ascending=[False, True]).reset_index(
            drop=True
        )
    return out


def class_contrast(maps_by_class: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Per class ``c``: how much more its own subjects are credited for ``c`` than the others.

    ``D_c = mean over subjects of class c of M[:, c] - mean over the other subjects of M[:, c]``.

    Args:
        maps_by_class: ``(n_subjects, C, n_features)``, each subject's map for every class
            (e.g. integrated gradients of every class logit).
        labels: ``(n_subjects,)`` classes in ``[0, C)``.

    Returns:
        ``{class: D_c (n_features,)}`` for every class present in ``labels``.
    """
    maps_by_class = np.asarray(maps_by_class, dtype=float)
    labels = np.asarray(labels)
    if maps_by_class.ndim != 3:
        raise InputError(f"maps_by_class must be (n_subjects, n_classes, n_features), got {maps_by_class.shape}")
    if labels.shape != (len(maps_by_class),):
        raise InputError(f"labels must have one entry per subject ({len(maps_by_class)}), got shape {labels.shape}")
    if not np.isfinite(maps_by_class).all():
        raise InputError("maps_by_class contain NaN or infinite values")
    out = {}
    for c in np.unique(labels):
        c = int(c)
        if not 0 <= c < maps_by_class.shape[1]:
            raise InputError(f"label {c} has no map (maps for {maps_by_class.shape[1]} classes)")
        own, rest = labels == c, labels != c
        if not rest.any():
            raise InputError(f"class {c} is the only class among the subjects: nothing to contrast it with")
        out[c] = maps_by_class[own, c].mean(axis=0) - maps_by_class[rest, c].mean(axis=0)
    return out


def contrast_threshold(contrast: np.ndarray, fraction: float = 0.15, z: float | None = None) -> float:
    """The value a contrast must exceed to be significant.

    With ``z`` (recommended): ``median + z * 1.4826 * MAD`` over all features, i.e. a robust
    z-score above ``z``; the median and MAD (median absolute deviation) describe the bulk of
    features that carry nothing. Otherwise: ``fraction`` times the largest contrast, a scale one
    very large feature can set on its own. ``inf`` (nothing passes) when the largest contrast is
    <= 0 or, for ``z``, when the MAD is 0.
    """
    contrast = np.asarray(contrast, dtype=float)
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"fraction must be in [0, 1), got {fraction}")
    if z is not None and not z > 0:
        raise ConfigError(f"z must be > 0, got {z}")
    if not contrast.size or contrast.max() <= 0:
        return float("inf")
    if z is None:
        return fraction * float(contrast.max())
    median = float(np.median(contrast))
    mad = 1.4826 * float(np.median(np.abs(contrast - median)))
    return median + z * mad if mad > 0 else float("inf")


def contrast_mask(contrast: np.ndarray, fraction: float = 0.15, z: float | None = None) -> np.ndarray:
    """Features whose contrast exceeds :func:`contrast_threshold`."""
    contrast = np.asarray(contrast, dtype=float)
    return contrast > contrast_threshold(contrast, fraction, z)


def contrast_snps(
    maps_by_class: np.ndarray,
    labels: np.ndarray,
    fraction: float = 0.15,
    snp_ids: Sequence[str] | None = None,
    z: float | None = None,
) -> dict[int, pd.DataFrame]:
    """Significant SNPs per class by the class-contrast rule (not the paper's; see the module).

    A SNP is significant for class ``c`` when its contrast :func:`class_contrast` passes
    :func:`contrast_mask` (robust z-score above ``z``, or above ``fraction`` x max).

    Returns:
        ``{class: DataFrame(index, id, contrast, relative)}`` (``relative`` = contrast / max), by
        decreasing contrast.
    """
    maps_by_class = np.asarray(maps_by_class, dtype=float)
    if maps_by_class.ndim != 3:
        raise InputError(f"SNP maps must be (n_subjects, n_classes, n_snps), got shape {maps_by_class.shape}")
    ids = _snp_ids(snp_ids, maps_by_class.shape[2])
    out = {}
    for c, d in class_contrast(maps_by_class, labels).items():
        sig = np.flatnonzero(contrast_mask(d, fraction, z))
        frame = pd.DataFrame({"index": sig, "id": ids[sig], "contrast": d[sig], "relative": d[sig] / d.max()})
        out[c] = frame.sort_values(["contrast", "index"], ascending=[False, True]).reset_index(drop=True)
    return out


def contrast_edges(
    maps_by_class: np.ndarray,
    labels: np.ndarray,
    fraction: float = 0.15,
    roi_networks: Sequence[str] | None = None,
    z: float | None = None,
) -> dict[int, pd.DataFrame]:
    """Significant FC edges per class by the class-contrast rule (maps symmetrised first).

    Args:
        maps_by_class: ``(n_subjects, C, R, R)``.

    Returns:
        ``{class: DataFrame(roi_i, roi_j, network_i, network_j, contrast, relative)}``.
    """
    maps_by_class = np.asarray(maps_by_class, dtype=float)
    if maps_by_class.ndim != 4 or maps_by_class.shape[2] != maps_by_class.shape[3]:
        raise InputError(f"FC maps must be (n_subjects, n_classes, R, R), got shape {maps_by_class.shape}")
    _, n_classes, n_rois, _ = maps_by_class.shape
    flat = [symmetric_edges(maps_by_class[:, c]) for c in range(n_classes)]
    roi_i, roi_j = flat[0][1], flat[0][2]
    values = np.stack([f[0] for f in flat], axis=1)
    networks = _roi_networks(roi_networks, n_rois)
    out = {}
    for c, d in class_contrast(values, labels).items():
        sig = contrast_mask(d, fraction, z)
        frame = pd.DataFrame({
            "roi_i": roi_i[sig], "roi_j": roi_j[sig],
            "network_i": networks[roi_i[sig]], "network_j": networks[roi_j[sig]],
            "contrast": d[sig], "relative": d[sig] / d.max(),
        })
        out[c] = frame.sort_values(["contrast", "roi_i", "roi_j"], ascending=[False, True, True]).reset_index(drop=True)
    return out


def _snp_ids(snp_ids: Sequence[str] | None, n_snps: int) -> np.ndarray:
    if snp_ids is None:
        snp_ids = [f"snp{k:04d}" for k in range(n_snps)]
    if len(snp_ids) != n_snps:
        raise InputError(f"snp_ids has {len(snp_ids)} names for {n_snps} SNPs")
    return np.asarray(snp_ids, dtype=object)


def _roi_networks(roi_networks: Sequence[str] | None, n_rois: int) -> np.ndarray:
    if roi_networks is not None and len(roi_networks) != n_rois:
        raise InputError(f"roi_networks has {len(roi_networks)} names for {n_rois} ROIs")
    return np.asarray(roi_networks if roi_networks is not None else [""] * n_rois, dtype=object)


def activation_histograms(
    maps: np.ndarray, labels: np.ndarray, bins: int = 50
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Average per-class histogram of the maps, each subject's map scaled by its maximum (Fig. 4).

    Negative values are clipped to 0 (they are never kept by the significance rule).

    Args:
        maps: ``(n_subjects, n_features)``.
        bins: number of bins on [0, 1].

    Returns:
        ``(bin_edges (bins + 1,), {class: mean density (bins,)})``.
    """
    maps = np.asarray(maps, dtype=float)
    labels = np.asarray(labels)
    peak = maps.max(axis=1, keepdims=True)
    scaled = np.where(peak > 0, np.clip(maps, 0, None) / np.where(peak > 0, peak, 1), 0.0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = {}
    for c in np.unique(labels):
        hists = [np.histogram(row, bins=edges)[0] / row.size for row in scaled[labels == c]]
        out[int(c)] = np.mean(hists, axis=0)
    return edges, out


def write_significance(
    out_dir: str | os.PathLike,
    prefix: str,
    tables: dict[int, pd.DataFrame],
    class_names: Sequence[str] | None = None,
) -> list[Path]:
    """Write one CSV per class, ``<out_dir>/<prefix>_<class name>.csv``, atomically.

    Args:
        prefix: e.g. ``"significant_edges"``, ``"hub_degrees"``, ``"significant_snps"``.
        class_names: names indexed by class (default ``class0``, ``class1``, ...).
    """
    paths = []
    for c, frame in tables.items():
        name = class_names[c] if class_names is not None else f"class{c}"
        paths.append(io.write_csv(Path(out_dir) / f"{prefix}_{name}.csv", frame))
    return paths
