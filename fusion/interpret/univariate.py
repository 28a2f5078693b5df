"""Mass-univariate reference for gCAM-CCL's significant features: one t-test per FC edge and per
SNP between the two classes, Benjamini-Hochberg FDR over each view.

This is what a reviewer would run first. Where it finds the planted edges or SNPs, a network's
maps should too; where it does not, no map-based method can be expected to either.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.errors import InputError
from fusion.interpret.recovery import edge_set, precision_recall

__all__ = ["AGREEMENT_MIN_SHARE", "univariate_agreement", "univariate_features", "univariate_recovery"]

#: below this share of a map's features among the t-test's, the list is reported as not corroborated
AGREEMENT_MIN_SHARE = 0.5


def _fdr_select(x: np.ndarray, y: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of columns of ``x`` whose two-sided t-test between ``y == 1`` and ``y == 0``
    survives BH-FDR at ``q``, and every column's p-value (constant columns: p = 1)."""
    from scipy.stats import false_discovery_control, ttest_ind

    with np.errstate(invalid="ignore", divide="ignore"):
        p = ttest_ind(x[y == 1], x[y == 0], axis=0).pvalue
    p = np.where(np.isfinite(p), p, 1.0)
    adjusted = false_discovery_control(p, method="bh")
    return np.flatnonzero(adjusted < q), p


def univariate_features(fc: np.ndarray, snps: np.ndarray, labels: np.ndarray, q: float = 0.05) -> dict[str, Any]:
    """Edges and SNPs that differ between the classes (t-test, BH-FDR ``q`` per view).

    Args:
        fc: ``(n, R, R)`` FC matrices (the upper triangle is tested).
        snps: ``(n, P)`` genotypes (missing calls imputed).
        labels: ``(n,)`` 0/1.
        q: false discovery rate.

    Returns:
        ``{"edges": [(i, j), ...], "snps": [k, ...], "q": q}``, 0-based.
    """
    fc, snps, y = np.asarray(fc), np.asarray(snps), np.asarray(labels)
    if fc.ndim != 3 or fc.shape[1] != fc.shape[2] or len(fc) != len(y) or len(snps) != len(y):
        raise InputError(f"univariate_features: fc (n, R, R), snps (n, P) and labels (n,) must agree; got "
                         f"{fc.shape}, {snps.shape}, {y.shape}")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise InputError("univariate_features: labels must hold both classes 0 and 1")
    iu = np.triu_indices(fc.shape[1], k=1)
    edges, _ = _fdr_select(fc[:, iu[0], iu[1]], y, q)
    chosen, _ = _fdr_select(snps, y, q)
    return {"edges": [(int(iu[0][k]), int(iu[1][k])) for k in edges], "snps": [int(k) for k in chosen], "q": q}


def univariate_recovery(found: dict[str, Any], truth: dict) -> dict[str, float]:
    """Precision and recall of :func:`univariate_features` against a ground truth
    (``edges`` 0-based pairs, ``snps`` 0-based indices)."""
    ep, er = precision_recall(edge_set(found["edges"]), edge_set(truth["edges"]))
    sp, sr = precision_recall(set(found["snps"]), {int(k) for k in truth["snps"]})
    return {"edge_precision": ep, "edge_recall": er, "snp_precision": sp, "snp_recall": sr,
            "n_edges_found": len(found["edges"]), "n_snps_found": len(found["snps"])}


def univariate_agreement(selected: dict[str, Any], found: dict[str, Any],
                         min_share: float = AGREEMENT_MIN_SHARE) -> dict[str, dict[str, Any]]:
    """How far a network's significant features agree with the t-test/FDR reference on the same
    subjects: the check a user without a ground truth can make.

    Args:
        selected: the network's features, ``{"edges": [(i, j), ...], "snps": [k, ...]}`` (0-based;
            either key may be absent).
        found: :func:`univariate_features` on the same subjects.
        min_share: a list is ``corroborated`` when at least this share of it is among the t-test's
            features (None when the network selected nothing).

    Returns:
        per kind present: ``{"n_selected", "n_univariate", "n_common", "share_corroborated" (of the
        network's features), "share_found" (of the t-test's), "corroborated": bool}``; the shares
        are None when their denominator is 0.
    """
    if not 0.0 < min_share <= 1.0:
        raise InputError(f"min_share must be in (0, 1], got {min_share}")
    out: dict[str, dict[str, Any]] = {}
    for key in ("edges", "snps"):
        if key not in selected:
            continue
        mine = edge_set(selected[key]) if key == "edges" else {int(k) for k in selected[key]}
        ref = edge_set(found[key]) if key == "edges" else {int(k) for k in found[key]}
        common = len(mine & ref)
        share = common / len(mine) if mine else None
        out[key] = {"n_selected": len(mine), "n_univariate": len(ref), "n_common": common,
                    "share_corroborated": share, "share_found": common / len(ref) if ref else None,
                    "corroborated": None if share is None else share >= min_share}
    return out
