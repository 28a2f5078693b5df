"""The gCAM-CCL cohort as a PyTorch Dataset: one FC matrix and one genotype vector per subject.

``CCLDataset(manifest, ...)[i] -> {"fc": (1, 264, 264) float32, "snp": (1, 750) float32,
"label": int, "index": int}``, ``index`` = position among the labelled subjects. Missing genotype
calls are imputed from the training subjects only: call :meth:`CCLDataset.fit_imputation` with
the training indices before reading items (the CCL runner does, per fold).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from fusion.data.ccl_manifest import CLASS_NAMES, load_ccl_manifest, read_fc
from fusion.data.genotypes import impute_genotypes
from fusion.errors import ConfigError


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
        n_rois: int = 264,
        n_snps: int = 750,
        symmetry_tol: float = 1e-4,
        cache: str = "ram",
        fc_mat_key: str | None = None,
    ) -> None:
        if cache not in ("ram", "none"):
            raise ConfigError(f"cache must be 'ram' or 'none', got {cache!r}")
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
        self.n_rois, self.n_snps = n_rois, n_snps
        self.symmetry_tol = symmetry_tol
        self.fc_mat_key = fc_mat_key
        self.cache = cache
        self._fc: dict[int, np.ndarray] = {}
        self._snps: np.ndarray | None = None
        if not np.isnan(self.info.genotypes).any():
            self._snps = self.info.genotypes.copy()
        self.imputed_from: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def has_missing_genotypes(self) -> bool:
        return bool(np.isnan(self.info.genotypes).any())

    def fit_imputation(self, train: np.ndarray | list[int]) -> "CCLDataset":
        """Impute missing calls with statistics of the subjects ``train`` (indices) only."""
        train = np.asarray(train, dtype=int)
        self._snps = impute_genotypes(self.info.genotypes, train, self.imputation, self.snp_ids)
        self.imputed_from = np.sort(train)
        return self

    def genotype_matrix(self) -> np.ndarray:
        """All subjects' imputed genotypes ``(n, n_snps)`` float32."""
        if self._snps is None:
            raise ConfigError("genotypes have missing calls: call fit_imputation(train_indices) first "
                              "(imputation uses training subjects only)")
        return self._snps

    def fc_matrix(self, i: int) -> np.ndarray:
        """FC matrix of subject ``i`` ``(n_rois, n_rois)`` float32 (validated)."""
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
        fc = np.stack([self.fc_matrix(int(i)) for i in idx]) if len(idx) else np.zeros((0, self.n_rois, self.n_rois), np.float32)
        return fc, self.genotype_matrix()[idx], self.labels[idx]
