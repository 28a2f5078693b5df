"""Data: manifests, per-subject readers, preparation, synthetic cohorts, folds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fusion._lazy import lazy_getattr

if TYPE_CHECKING:  # the lazy exports below, for type checkers and IDEs (`X as X`: a re-export)
    from fusion.data.ccl_dataset import CCLDataset as CCLDataset
    from fusion.data.dataset import PreparedVolumes as PreparedVolumes
    from fusion.data.folds import stratified_folds as stratified_folds
    from fusion.data.prepare import prepare_cohort as prepare_cohort
    from fusion.data.synthetic_ccl import make_ccl_cohort as make_ccl_cohort
    from fusion.data.synthetic_volumes import make_vae_cohort as make_vae_cohort

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
