"""gCAM-CCL maps -> the paper's outputs: significant edges, hub degrees and SNPs (CSV), figures,
and recovery scores against a ground truth.

Computes with :mod:`fusion.interpret` and draws with :mod:`fusion.report.ccl_figures`; the
activation-map callback calls it once per fold.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fusion.errors import ConfigError
from fusion.interpret import significance as sig
from fusion.interpret.ccl_maps import (
    BY_CLASS,
    MAP_KINDS,
    significance_spec,
    user_tables,
)
from fusion.interpret.recovery import recovery_scores
from fusion.report import ccl_figures as figs

__all__ = ["analyse_subject_maps"]


def analyse_subject_maps(
    out_dir: str | os.PathLike,
    maps: Mapping[str, np.ndarray],
    significance_maps: Mapping[str, str | Mapping],
    fraction: float = 0.05,
    class_fraction: float = 0.7,
    class_names: Sequence[str] | None = None,
    roi_networks: Sequence[str] | None = None,
    roi_coords: np.ndarray | None = None,
    snp_ids: Sequence[str] | None = None,
    truth: Mapping | None = None,
    recovery_classes: str | int = "union",
    figures: bool = True,
    snp_positions: Sequence[str] | None = None,
) -> dict:
    """Significant features, CSVs, figures and recovery from per-subject maps.

    Args:
        out_dir: folder for the CSVs and PNGs.
        maps: output of :func:`compute_subject_maps`.
        significance_maps: ``{view: setting}`` with a setting as in :func:`significance_spec`,
            e.g. ``{"fc": "gradcam", "snp": {"map": "gradient", "absolute": True,
            "fraction": 0.3, "class_fraction": 0.5}}``. The ``"fc"`` view is treated as a
            square FC map (edges), any other view as a 1D feature vector (SNPs). With
            ``absolute`` the magnitude of each entry is taken first (for FC maps, before the
            ``(i, j)``/``(j, i)`` average).
        fraction, class_fraction: the shared significance rule (paper: 0.05, 0.7).
        class_names: names of the classes, used in file names and titles.
        roi_networks, roi_coords: Power-264 network names and MNI coordinates ``(R, 3)`` (the
            connectome plot needs the coordinates).
        snp_ids: SNP identifiers.
        snp_positions: ``chromosome:position`` of each SNP (from the ``.bim``), or None: the SNP
            figures' axes and the SNP CSVs use them when given.
        truth: ground truth (``edges``, ``snps``) to score recovery against, or ``None``.
        recovery_classes: ``"union"`` or a class index (:func:`recovery_scores`).
        figures: also draw the figures.

    Returns:
        ``{"n_significant": {...}, "recovery": {...} or None, "files": [...]}``.
    """
    out_dir = Path(out_dir)
    labels = maps["labels"]
    names = list(class_names) if class_names is not None else None
    files: list[Path] = []
    summary: dict = {"n_significant": {}, "significance": {}, "recovery": None, "files": files}
    edge_tables = snp_tables = None
    for view, setting in significance_maps.items():
        spec = significance_spec(setting, fraction, class_fraction)
        summary["significance"][view] = spec
        kind = spec["map"]
        contrast = spec["rule"] == "contrast"
        key = f"{kind}_{view}{BY_CLASS if contrast else ''}"
        if key not in maps:
            raise ConfigError(f"significance map {key!r} was not computed (have: {sorted(maps)})")
        prepared = np.abs if spec["absolute"] else np.asarray
        values_own = prepared(maps[f"{kind}_{view}"])  # each subject's own-class map (histograms)
        values = prepared(maps[key]) if contrast else values_own
        frac, cfrac = spec["fraction"], spec["class_fraction"]
        if view == "fc":
            if contrast:
                edge_tables = sig.contrast_edges(values, labels, frac, roi_networks, spec["z"])
            else:
                edge_tables = sig.significant_edges(values, labels, frac, cfrac, roi_networks)
            files += sig.write_significance(out_dir, "significant_edges", user_tables(edge_tables), names)
            n_rois = values.shape[-1]
            hubs = {c: sig.hub_degrees(t, n_rois, roi_networks) for c, t in edge_tables.items()}
            files += sig.write_significance(out_dir, "hub_degrees", user_tables(hubs), names)
            summary["n_significant"]["edges"] = {_name(names, c): len(t) for c, t in edge_tables.items()}
            if figures:
                flat = sig.symmetric_edges(values_own)[0]
                bin_edges, hists = sig.activation_histograms(flat, labels)
                files.append(figs.plot_activation_histograms(
                    out_dir / "activation_histograms_fc.png", bin_edges, hists, names,
                    title=f"FC {kind.replace('_', ' ')}" + (" |.|" if spec["absolute"] else "")))
                for c, table in edge_tables.items():
                    files.append(figs.plot_hub_degrees(
                        out_dir / f"hub_degrees_{_name(names, c)}.png", hubs[c],
                        title=f"hub ROIs: {_name(names, c)}"))
                    if roi_coords is not None:
                        files.append(figs.plot_connectome(
                            out_dir / f"connectome_{_name(names, c)}.png", table, roi_coords,
                            title=f"{_name(names, c)}: {len(table)} significant edges",
                            roi_networks=roi_networks))
        else:
            if contrast:
                snp_tables = sig.contrast_snps(values, labels, frac, snp_ids, spec["z"])
                if figures:
                    planted = truth.get("snps") if truth is not None and view == "snp" else None
                    files.append(figs.plot_snp_contrast(
                        out_dir / f"contrast_{view}.png", sig.class_contrast(values, labels), names,
                        planted, fraction=None if spec["z"] is not None else frac, z=spec["z"],
                        title=f"{kind.replace('_', ' ')}, class contrast",
                        snp_positions=snp_positions if view == "snp" else None,
                        value_label=f"{kind.replace('_', ' ')} contrast"
                        + (" |.|" if spec["absolute"] else "") + " (attribution units)"))
            else:
                snp_tables = sig.significant_snps(values, labels, frac, cfrac, snp_ids)
            positions = snp_positions if view == "snp" else None
            files += sig.write_significance(out_dir, f"significant_{view}s", user_tables(snp_tables, positions), names)
            summary["n_significant"][f"{view}s"] = {_name(names, c): len(t) for c, t in snp_tables.items()}
    if figures:
        for view in {k.split("_")[-1] for k in maps if k.startswith(MAP_KINDS) and not k.endswith(BY_CLASS)}:
            means = {
                label: figs.class_means(maps[f"{kind}_{view}"], labels)
                for kind, label in (("gradcam", "Grad-CAM"), ("guided_gradcam", "guided Grad-CAM"),
                                    ("guided_backprop", "guided backprop"),
                                    ("gradient", "gradient"),
                                    ("integrated_gradients", "integrated gradients"))
                if f"{kind}_{view}" in maps
            }
            if next(iter(means.values()))[int(labels[0])].ndim == 2:
                files.append(figs.plot_fc_maps(out_dir / f"mean_maps_{view}.png", means, names,
                                               roi_networks=roi_networks))
            else:
                planted = truth.get("snps") if truth is not None and view == "snp" else None
                files.append(figs.plot_snp_maps(out_dir / f"mean_maps_{view}.png", means, names, planted,
                                                snp_positions=snp_positions if view == "snp" else None))
    # 0-based features selected for any class: what the repetitions' majority vote counts.
    summary["selected"] = {}
    if edge_tables is not None:
        summary["selected"]["edges"] = sorted({(int(i), int(j)) for t in edge_tables.values()
                                               for i, j in zip(t["roi_i"], t["roi_j"])})
    if snp_tables is not None:
        summary["selected"]["snps"] = sorted({int(k) for t in snp_tables.values() for k in t["index"]})
    if truth is not None:
        summary["recovery"] = recovery_scores(edge_tables, snp_tables, truth, recovery_classes)
    return summary


def _name(names: Sequence[str] | None, c: int) -> str:
    return names[c] if names is not None else f"class{c}"
