"""Significant features over repeated splits: a feature counts when most repetitions select it.

One split's significant edges or SNPs depend on which subjects trained the network. Over ``k``
repetitions (``split.repetitions``) a feature is kept when it was selected in more than
``min_share`` of them (default: a strict majority), so that a finding does not rest on one split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from fusion.errors import InputError
from fusion.interpret.recovery import edge_set, precision_recall

__all__ = ["majority", "consensus_significance"]


def majority(selections: Sequence[Iterable[Hashable]], min_share: float = 0.5) -> tuple[list, dict]:
    """Features selected in more than ``min_share`` of the selections.

    Args:
        selections: one iterable of features per repetition (each feature counted once per
            repetition).
        min_share: a feature is kept when ``count / len(selections) > min_share``.

    Returns:
        ``(kept, counts)``: the kept features sorted, and every feature's count.
    """
    if not selections:
        raise InputError("majority needs at least one selection")
    if not 0 <= min_share < 1:
        raise InputError(f"min_share must lie in [0, 1), got {min_share}")
    counts: Counter = Counter()
    for chosen in selections:
        counts.update(set(chosen))
    kept = sorted(f for f, c in counts.items() if c / len(selections) > min_share)
    return kept, dict(counts)


def consensus_significance(
    selected: Sequence[dict[str, Any]],
    truth: dict | None = None,
    min_share: float = 0.5,
) -> dict[str, Any]:
    """Consensus edges and SNPs over repetitions, with their recovery when the truth is known.

    Args:
        selected: per repetition, ``{"edges": [[i, j], ...], "snps": [k, ...]}`` (0-based; either
            key may be absent).
        truth: ground truth with ``edges`` and ``snps`` (0-based), or None.
        min_share: see :func:`majority`.

    Returns:
        ``{"n_repetitions", "min_share", "edges": [[i, j, count], ...], "snps": [[k, count], ...],
        "recovery": {edge_precision, edge_recall, snp_precision, snp_recall, ...} | None}``.
    """
    out: dict[str, Any] = {"n_repetitions": len(selected), "min_share": min_share, "recovery": None}
    recovery: dict[str, Any] = {}
    for key in ("edges", "snps"):
        runs = [sel[key] for sel in selected if key in sel]
        if not runs:
            continue
        if len(runs) != len(selected):
            raise InputError(f"consensus: {len(selected) - len(runs)} repetition(s) selected no {key} list")
        # an edge is an unordered ROI pair: (j, i) and (i, j) are one feature
        items = [sorted(edge_set(r)) if key == "edges" else [int(k) for k in r] for r in runs]
        kept, counts = majority(items, min_share)
        out[key] = [[*f, counts[f]] if key == "edges" else [f, counts[f]] for f in kept]
        if truth is not None and key in truth:
            found = edge_set(kept) if key == "edges" else set(kept)
            planted = edge_set(truth["edges"]) if key == "edges" else {int(k) for k in truth["snps"]}
            precision, recall = precision_recall(found, planted)
            name = key[:-1]
            recovery.update({f"{name}_precision": precision, f"{name}_recall": recall,
                             f"n_{key}_found": len(found), f"n_{key}_planted": len(planted)})
    if recovery:
        out["recovery"] = recovery
    return out
