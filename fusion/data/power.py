"""The Power-264 atlas: ROI coordinates (from nilearn, offline) and functional-network labels.

nilearn's ``fetch_coords_power_2011()`` ships the 264 MNI coordinates but no network labels, so
the network of each ROI is defined here from Power et al. (2011), Neuron 72:665, consensus
assignment: 13 networks plus "Uncertain", with the published sizes (SMH 30, SMM 5, CO 14, AUD 13,
DMN 58, MEM 5, VIS 31, FPN 25, SAL 18, SUB 13, VAN 9, DAN 11, CER 4, Uncertain 28). The index
ranges follow the ordering of the consensus table and were checked against the coordinates
(e.g. every VIS ROI is occipital, every SUB ROI is deep grey matter). A handful of boundary ROIs
may differ from the original spreadsheet; analyses here only need a plausible, fixed partition.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

N_ROIS = 264

#: Short network names in a stable order, and their long names.
NETWORKS: dict[str, str] = {
    "SMH": "Sensory/somatomotor Hand",
    "SMM": "Sensory/somatomotor Mouth",
    "CO": "Cingulo-opercular Task Control",
    "AUD": "Auditory",
    "DMN": "Default mode",
    "MEM": "Memory retrieval",
    "VIS": "Visual",
    "FPN": "Fronto-parietal Task Control",
    "SAL": "Salience",
    "SUB": "Subcortical",
    "VAN": "Ventral attention",
    "DAN": "Dorsal attention",
    "CER": "Cerebellar",
    "UNC": "Uncertain",
}

# 1-based ROI numbers per network (inclusive ranges written as (first, last)).
_RANGES: dict[str, list[tuple[int, int]]] = {
    "UNC": [(1, 12), (84, 85), (132, 132), (138, 138), (140, 142), (182, 185), (247, 250), (252, 252)],
    "SMH": [(13, 41), (255, 255)],
    "SMM": [(42, 46)],
    "CO": [(47, 60)],
    "AUD": [(61, 73)],
    "DMN": [(74, 83), (86, 131), (137, 137), (139, 139)],
    "MEM": [(133, 136), (221, 221)],
    "VIS": [(143, 173)],
    "FPN": [(174, 181), (186, 202)],
    "SAL": [(203, 220)],
    "SUB": [(222, 234)],
    "VAN": [(235, 242), (257, 257)],
    "CER": [(243, 246)],
    "DAN": [(251, 251), (253, 254), (256, 256), (258, 264)],
}


@lru_cache(maxsize=1)
def _labels() -> tuple[str, ...]:
    labels: list[str | None] = [None] * N_ROIS
    for net, ranges in _RANGES.items():
        for first, last in ranges:
            for roi in range(first, last + 1):
                if labels[roi - 1] is not None:  # pragma: no cover - guarded by tests
                    raise RuntimeError(f"Power ROI {roi} assigned twice")
                labels[roi - 1] = net
    if any(label is None for label in labels):  # pragma: no cover - guarded by tests
        raise RuntimeError("Power network table does not cover all 264 ROIs")
    return tuple(label for label in labels if label is not None)  # every ROI has one (checked above)


def power_networks() -> list[str]:
    """Short network name of each ROI, in atlas order (264 entries, ROI 1 first)."""
    return list(_labels())


def network_indices(network: str) -> np.ndarray:
    """0-based ROI indices of one network (short name, e.g. ``"DMN"``)."""
    if network not in NETWORKS:
        from fusion.errors import ConfigError

        raise ConfigError(f"unknown Power network {network!r}; expected one of {sorted(NETWORKS)}")
    return np.flatnonzero(np.asarray(_labels()) == network)


@lru_cache(maxsize=1)
def _coords() -> np.ndarray:
    from nilearn.datasets import fetch_coords_power_2011

    rois = fetch_coords_power_2011().rois
    coords = rois[["x", "y", "z"]].to_numpy(dtype=float)
    if coords.shape != (N_ROIS, 3):  # pragma: no cover - nilearn data changed
        raise RuntimeError(f"nilearn Power-264 coordinates have shape {coords.shape}")
    return coords


def power_coords() -> np.ndarray:
    """MNI coordinates (mm) of the 264 ROIs, shape ``(264, 3)``, read offline from nilearn."""
    return _coords().copy()


def roi_label(index0: int) -> str:
    """User-facing name of the ROI at 0-based position ``index0``: ``ROI001`` for the first."""
    return f"ROI{int(index0) + 1:03d}"


def roi_names() -> list[str]:
    """Readable ROI names, e.g. ``"ROI075 (DMN)"`` (1-based numbers as in the atlas)."""
    return [f"ROI{i + 1:03d} ({net})" for i, net in enumerate(_labels())]
