"""Data: manifests, per-subject readers, preparation, synthetic cohorts, folds."""

from __future__ import annotations

from fusion._lazy import lazy_getattr

_EXPORTS = {
    "PreparedVolumes": "fusion.data.dataset",
    "prepare_cohort": "fusion.data.prepare",
    "make_vae_cohort": "fusion.data.synthetic_volumes",
    "stratified_folds": "fusion.data.folds",
    "CCLDataset": "fusion.data.ccl_dataset",
    "make_ccl_cohort": "fusion.data.synthetic_ccl",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
