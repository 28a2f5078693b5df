"""The gCAM-CCL cohort as a PyTorch Dataset: one FC matrix and one genotype vector per subject.

``CCLDataset(manifest, ...)[i] -> {"fc": (1, 264, 264) float32, "snp": (1, 750) float32,
"label": int, "index": int}``, ``index`` = position among the labelled subjects. Everything fitted
to subjects is fitted on the training subjects only: call :meth:`CCLDataset.fit` with the training
indices before reading items (the CCL runner does, per fold). It imputes missing genotype calls
and, when asked, fits a per-feature standardisation:

- ``fc_standardize="edge"``: each FC edge minus its training mean, divided by its training SD.
  This removes the group-mean connectome, which in real data is strong and shared by every
  subject, and leaves the subject deviations the classes differ in, in comparable units.
- ``fc_standardize="center"``: each FC edge minus its training mean only. It removes the
  group-mean connectome too, but keeps each edge's spread, so edges that vary little (noise
  around a strong mean) are not inflated to the weight of edges that carry the group effect.
- ``snp_standardize="snp"``: each SNP's dosage minus its training mean, over its training SD.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from fusion.data.ccl_manifest import CLASS_NAMES, load_ccl_manifest, read_fc
from fusion.data.genotypes import impute_genotypes
from fusion.errors import ConfigError

#: Accepted ``fc_standardize`` values.
FC_STANDARDIZE = ("none", "edge", "center")


class CCLDataset(Dataset):
    """Labelled subjects of a CCL manifest (see :func:`fusion.data.ccl_manifest.load_ccl_manifest`).

    Args:
        manifest: the manifest CSV.
        genotypes: genotype set (``.bed`` / ``.csv``); default: found beside the manifest.
        label_column, score_column, quantiles: how labels are made (bottom/top quantiles).
        imputation: missing genotype calls: ``"mode"`` (per SNP, training subjects; default),
            ``"mean"``, ``"zero"`` or ``"error"``.
        n_rois, n_snps: expected sizes.
        symmetry_tol: FC symmetry tolerance.
        cache: keep FC matrices in memory after the first read (``"ram"``) or not (``"none"``).
        fc_mat_key: variable name inside ``.mat`` FC files.
        fc_standardize: ``"none"``, ``"edge"`` (z-score every edge with training statistics) or
            ``"center"`` (subtract every edge's training mean).
        snp_standardize: ``"none"`` or ``"snp"`` (z-score every SNP with training statistics).

    Attributes:
        labels, subject_ids, snp_ids, ground_truth, class_names, manifest_info.
    """

    def __init__(
        self,
        manifest: str | os.PathLike,
        genotypes: str | os.PathLike | None = None,
        label_column: str | None = None,
        score_column: str = "score",
        quantiles: tuple[float, float] | list[float] = (0.2, 0.2),
        imputation: str = "mode",
        n_rois: int | None = 264,
        n_snps: int | None = 750,
        symmetry_tol: float = 1e-4,
        cache: str = "ram",
        fc_mat_key: str | None = None,
        fc_standardize: str = "none",
        snp_standardize: str = "none",
    ) -> None:
        if cache not in ("ram", "none"):
            raise ConfigError(f"cache must be 'ram' or 'none', got {cache!r}")
        if fc_standardize not in FC_STANDARDIZE:
            raise ConfigError(f"fc_standardize must be one of {list(FC_STANDARDIZE)}, got {fc_standardize!r}")
        if snp_standardize not in ("none", "snp"):
            raise ConfigError(f"snp_standardize must be 'none' or 'snp', got {snp_standardize!r}")
        if imputation not in ("mode", "mean", "zero", "error"):
            raise ConfigError(f"imputation must be 'mode', 'mean', 'zero' or 'error', got {imputation!r}")
        self.info = load_ccl_manifest(
            manifest, genotypes, label_column, score_column, tuple(quantiles), n_rois, n_snps,
            symmetry_tol, validate_fc=True, fc_mat_key=fc_mat_key,
        )
        self.labels = self.info.labels
        self.subject_ids = self.info.subject_ids
        self.snp_ids = self.info.snp_ids
        self.ground_truth = self.info.ground_truth
        self.class_names = list(CLASS_NAMES)
        self.imputation = imputation
        # sizes as read (n_rois/n_snps None: inferred by load_ccl_manifest)
        self.n_rois = int(getattr(self.info, "n_rois", 0) or n_rois or 0) or None
        self.n_snps = int(getattr(self.info, "n_snps", 0) or n_snps or 0) or None
        self.symmetry_tol = symmetry_tol
        self.fc_mat_key = fc_mat_key
        self.cache = cache
        self._fc: dict[int, np.ndarray] = {}
        self._snps: np.ndarray | None = None
        if not np.isnan(self.info.genotypes).any():
            self._snps = self.info.genotypes.copy()
        self.imputed_from: np.ndarray | None = None
        self.fc_standardize, self.snp_standardize = fc_standardize, snp_standardize
        self._fc_stats: tuple[np.ndarray, np.ndarray | None] | None = None  # (mean, SD; None: centre only)
        self._snp_stats: tuple[np.ndarray, np.ndarray] | None = None
        self.standardized_from: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def has_missing_genotypes(self) -> bool:
        return bool(np.isnan(self.info.genotypes).any())

    def fit_imputation(self, train: np.ndarray | list[int]) -> CCLDataset:
        """Impute missing calls with statistics of the subjects ``train`` (indices) only."""
        train = np.asarray(train, dtype=int)
        self._snps = impute_genotypes(self.info.genotypes, train, self.imputation, self.snp_ids)
        self.imputed_from = np.sort(train)
        return self

    def fit(self, train: np.ndarray | list[int]) -> CCLDataset:
        """Fit imputation and the standardisations on the subjects ``train`` (indices) only."""
        train = np.asarray(train, dtype=int)
        if len(train) < 2:
            raise ConfigError(f"fit needs at least 2 training subjects, got {len(train)}")
        if self.has_missing_genotypes:
            self.fit_imputation(train)
        self._fc_stats = self._snp_stats = None
        if self.fc_standardize != "none":
            fc = np.stack([self._raw_fc(int(i)) for i in train]).astype(np.float64)
            if self.fc_standardize == "edge":
                self._fc_stats = _mean_sd(fc)
            else:  # center: the mean only
                self._fc_stats = (fc.mean(axis=0).astype(np.float32), None)
        if self.snp_standardize == "snp":
            self._snp_stats = _mean_sd(self.genotype_matrix(raw=True)[train].astype(np.float64))
        self.standardized_from = np.sort(train)
        return self

    def _check_fitted(self) -> None:
        if (self.fc_standardize != "none" or self.snp_standardize != "none") and self.standardized_from is None:
            raise ConfigError("the dataset standardises its inputs: call fit(train_indices) first "
                              "(means and SDs come from training subjects only)")

    def genotype_matrix(self, raw: bool = False) -> np.ndarray:
        """All subjects' imputed genotypes ``(n, n_snps)`` float32; standardised unless ``raw``."""
        if self._snps is None:
            raise ConfigError("genotypes have missing calls: call fit(train_indices) first "
                              "(imputation uses training subjects only)")
        if raw or self.snp_standardize == "none":
            return self._snps
        self._check_fitted()
        assert self._snp_stats is not None
        mean, sd = self._snp_stats
        return ((self._snps - mean) / sd).astype(np.float32)

    def fc_matrix(self, i: int) -> np.ndarray:
        """FC matrix of subject ``i`` ``(n_rois, n_rois)`` float32, standardised per edge when asked."""
        mat = self._raw_fc(i)
        if self.fc_standardize == "none":
            return mat
        self._check_fitted()
        assert self._fc_stats is not None
        mean, sd = self._fc_stats
        out = mat - mean  # a new float32 array (both are float32); the cached matrix stays as read
        if sd is not None:
            out /= sd
        return out

    def _raw_fc(self, i: int) -> np.ndarray:
        """FC matrix of subject ``i`` as read (validated)."""
        if i in self._fc:
            return self._fc[i]
        mat = read_fc(self.info.fc_paths[i], self.subject_ids[i], self.n_rois, self.symmetry_tol, self.fc_mat_key)
        if self.cache == "ram":
            self._fc[i] = mat
        return mat

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        snps = self.genotype_matrix()[i]
        return {
            "fc": torch.from_numpy(self.fc_matrix(i)).unsqueeze(0),
            "snp": torch.from_numpy(np.ascontiguousarray(snps, dtype=np.float32)).unsqueeze(0),
            "label": int(self.labels[i]),
            "index": i,
        }

    def arrays(self, indices: np.ndarray | list[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fc (k, R, R), snps (k, P), labels (k,))`` as NumPy arrays for the chosen subjects."""
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=int)
        if len(idx):
            fc = np.stack([self.fc_matrix(int(i)) for i in idx])
        else:
            assert self.n_rois is not None  # load_ccl_manifest gives or infers it
            fc = np.zeros((0, self.n_rois, self.n_rois), np.float32)
        return fc, self.genotype_matrix()[idx], self.labels[idx]


def _mean_sd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD over the first axis as float32; an SD of 0 (e.g. the FC diagonal) becomes 1, so
    a constant feature standardises to 0 instead of NaN."""
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd < 1e-8] = 1.0
    return mean.astype(np.float32), sd.astype(np.float32)
