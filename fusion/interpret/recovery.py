"""Score significant edges and SNPs against the effects planted in a synthetic cohort.

The planted effect of an embedded cohort moves a continuous score, and the classes are the two
ends of that score: the planted features are discriminative for both classes, each in its own
direction. The features found are therefore taken as the union over classes by default
(``classes="union"``); a single class can be scored instead. Precision is
``|found & planted| / |found|`` (0.0 when nothing is found; ``n_found`` says so), recall is
``|found & planted| / |planted|``.

Edges are unordered ROI pairs, compared as ``(min, max)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from fusion import io
from fusion.errors import InputError


def load_ground_truth(path: str | os.PathLike) -> dict:
    """Read and check ``ground_truth.json`` of a CCL cohort (``edges`` and ``snps`` lists)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ground-truth file {path} does not exist")
    truth = io.read_json(path)
    for key in ("edges", "snps"):
        if key not in truth:
            raise InputError(f"ground-truth file {path} has no {key!r} field")
    for pair in truth["edges"]:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise InputError(f"ground-truth file {path}: edge {pair} is not a pair of two ROIs")
    return truth


def edge_set(pairs: Iterable[Iterable[int]]) -> set[tuple[int, int]]:
    """Unordered ROI pairs as a set of ``(i, j)`` with ``i < j``."""
    out = set()
    for pair in pairs:
        i, j = (int(v) for v in pair)
        out.add((min(i, j), max(i, j)))
    return out


def precision_recall(found: set, planted: set) -> tuple[float, float]:
    """Precision and recall of ``found`` against ``planted`` (0.0 for an empty denominator)."""
    hits = len(found & planted)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(planted) if planted else 0.0
    return precision, recall


def _select(tables: dict[int, pd.DataFrame] | pd.DataFrame, classes: str | int) -> list[pd.DataFrame]:
    if isinstance(tables, pd.DataFrame):
        return [tables]
    if classes == "union":
        return list(tables.values())
    if int(classes) not in tables:
        raise InputError(f"class {classes} has no significance table (classes: {sorted(tables)})")
    return [tables[int(classes)]]


def recovery_scores(
    edge_tables: dict[int, pd.DataFrame] | pd.DataFrame | None,
    snp_tables: dict[int, pd.DataFrame] | pd.DataFrame | None,
    truth: Mapping,
    classes: str | int = "union",
) -> dict:
    """Precision and recall of the significant edges and SNPs.

    Args:
        edge_tables: per-class tables from :func:`fusion.interpret.significance.significant_edges`
            (columns ``roi_i``, ``roi_j``), or one table, or ``None`` to skip edges.
        snp_tables: per-class tables from ``significant_snps`` (column ``index``), or ``None``.
        truth: ground truth with ``edges`` (0-based ROI pairs) and ``snps`` (0-based indices).
        classes: ``"union"`` or one class index.

    Returns:
        ``{edge_precision, edge_recall, n_edges_found, n_edges_planted, snp_precision, snp_recall,
        n_snps_found, n_snps_planted, classes}`` (the edge or SNP keys only when given).
    """
    out: dict = {"classes": classes}
    if edge_tables is not None:
        found = set()
        for frame in _select(edge_tables, classes):
            found |= edge_set(zip(frame["roi_i"], frame["roi_j"]))
        planted = edge_set(truth["edges"])
        precision, recall = precision_recall(found, planted)
        out.update(
            edge_precision=precision,
            edge_recall=recall,
            n_edges_found=len(found),
            n_edges_planted=len(planted),
        )
    if snp_tables is not None:
        found_snps: set[int] = set()
        for frame in _select(snp_tables, classes):
            found_snps |= {int(k) for k in frame["index"]}
        planted_snps = {int(k) for k in truth["snps"]}
        precision, recall = precision_recall(found_snps, planted_snps)
        out.update(
            snp_precision=precision,
            snp_recall=recall,
            n_snps_found=len(found_snps),
            n_snps_planted=len(planted_snps),
        )
    return out
