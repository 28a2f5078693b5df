"""Data: manifests, per-subject readers, preparation, synthetic cohorts, folds."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PreparedVolumes": "fusion.data.dataset",
    "prepare_cohort": "fusion.data.prepare",
    "make_vae_cohort": "fusion.data.synthetic_volumes",
    "stratified_folds": "fusion.data.folds",
    "CCLDataset": "fusion.data.ccl_dataset",
    "make_ccl_cohort": "fusion.data.synthetic_ccl",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fusion.data' has no attribute {name!r}")
