"""Confounds of a fold's features: covariate regression and ComBat site harmonisation.

Age, sex and site come with the manifest (``index.csv`` of a prepared folder carries its extra
columns). Both adjustments are models of the features and are therefore fitted inside each fold
on its training (train + validation) subjects only, then applied unchanged to its test subjects:

- :class:`CovariateRegression`: ordinary least squares of every feature on the covariates (plus
  an intercept); the fitted covariate part is subtracted, the training mean is kept.
- :class:`ComBat`: the empirical-Bayes site harmonisation of Johnson et al. (2007) as implemented
  by neuroHarmonize (``harmonizationLearn`` / ``harmonizationApply``), optionally preserving the
  effects of covariates.

:func:`adjust_fold` runs ComBat first (when a site column is set), then the regression, as
described by a ``confounds`` config node.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fusion.errors import ConfigError, InputError

__all__ = ["covariate_matrix", "CovariateRegression", "ComBat", "adjust_fold", "check_confounds_config"]

_SHOWN = 8


def _subjects(table: pd.DataFrame, rows: np.ndarray) -> str:
    ids = [str(s) for s in table["subject_id"].to_numpy()[rows]] if "subject_id" in table else [str(r) for r in rows]
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return ", ".join(ids[:_SHOWN]) + more


def _column(table: pd.DataFrame, column: str, where: str) -> pd.Series:
    if column not in table.columns:
        extra = [c for c in table.columns if c not in ("subject_id", "label", "path")]
        raise InputError(f"{where}: confound column {column!r} is not in the subject table; "
                         f"available covariate columns: {extra or 'none'} (add it to the manifest)")
    values = table[column]
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        raise InputError(f"{where}: confound column {column!r} has no value for subject(s) {_subjects(table, missing)}")
    return values


def covariate_matrix(
    table: pd.DataFrame, columns: Sequence[str], categorical: Sequence[str] = (), where: str = "subject table"
) -> np.ndarray:
    """Numeric ``(n_subjects, k)`` design of ``columns`` (no intercept).

    A column named in ``categorical`` is coded as indicators of its levels but the first (sorted);
    any other column must be numeric.

    Raises:
        InputError: a missing column, a missing value or a non-numeric value, naming the column
            and the subjects.
    """
    parts: list[np.ndarray] = []
    for column in columns:
        values = _column(table, column, where)
        if column in categorical:
            levels = sorted(values.astype(str).unique())
            coded = values.astype(str).to_numpy()
            parts += [(coded == level).astype(float)[:, None] for level in levels[1:]]
            continue
        numeric = pd.to_numeric(values, errors="coerce")
        bad = np.flatnonzero(numeric.isna().to_numpy())
        if bad.size:
            raise InputError(
                f"{where}: confound column {column!r} must be numeric but subject(s) {_subjects(table, bad)} have "
                f"{sorted(set(values.astype(str).to_numpy()[bad]))[:_SHOWN]}; list it under confounds.categorical "
                "to code its levels")
        parts.append(numeric.to_numpy(dtype=float)[:, None])
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(table), 0))


class CovariateRegression:
    """Remove the linear effect of covariates from every feature, fitted on training subjects.

    ``fit(X, C)`` solves ``X ~ [1, C] B`` by least squares; ``transform(X, C)`` returns
    ``X - (C - mean_C_fit) B_C`` (the intercept, i.e. the training mean, stays).
    """

    def fit(self, X: np.ndarray, C: np.ndarray) -> CovariateRegression:
        X, C = np.asarray(X, dtype=float), np.asarray(C, dtype=float)
        self.mean_ = C.mean(axis=0)
        design = np.column_stack([np.ones(len(C)), C - self.mean_])
        coef, *_ = np.linalg.lstsq(design, X, rcond=None)
        self.coef_ = coef[1:]
        return self

    def transform(self, X: np.ndarray, C: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=float) - (np.asarray(C, dtype=float) - self.mean_) @ self.coef_


class ComBat:
    """ComBat site harmonisation through neuroHarmonize, fitted on training subjects.

    Args:
        min_subjects: fewest training subjects a site needs (ComBat estimates a per-site mean
            and variance of every feature).
    """

    def __init__(self, min_subjects: int = 2) -> None:
        self.min_subjects = min_subjects

    @staticmethod
    def _covars(sites: np.ndarray, C: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame({"SITE": np.asarray(sites).astype(str)})
        for j in range(C.shape[1]):
            frame[f"c{j}"] = C[:, j]
        return frame

    def fit(
        self, X: np.ndarray, sites: np.ndarray, C: np.ndarray | None = None, subjects: Sequence[str] | None = None
    ) -> ComBat:
        try:
            from neuroHarmonize import harmonizationLearn
        except ImportError as err:
            raise ConfigError("confounds.combat_site needs neuroHarmonize: pip install 'fusion[harmonize]' "
                              f"(neuroHarmonize==2.4.5) ({err})") from err

        X = np.asarray(X, dtype=float)
        C = np.zeros((len(X), 0)) if C is None else np.asarray(C, dtype=float)
        sites = np.asarray(sites).astype(str)
        levels, counts = np.unique(sites, return_counts=True)
        if len(levels) < 2:
            raise InputError(f"ComBat needs at least 2 sites among the training subjects, found {list(levels)}")
        few = [(lv, n) for lv, n in zip(levels, counts) if n < self.min_subjects]
        if few:
            ids = np.asarray(subjects if subjects is not None else np.arange(len(sites))).astype(str)
            detail = "; ".join(f"site {str(lv)!r}: {int(n)} subject(s) ({', '.join(ids[sites == lv][:_SHOWN])})"
                               for lv, n in few)
            raise InputError(f"ComBat: a site needs at least {self.min_subjects} training subjects in a fold: {detail}")
        self.sites_ = levels
        self.X_fit_, self.covars_fit_ = X, self._covars(sites, C)
        with warnings.catch_warnings():  # neuroHarmonize uses np.matrix
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            self.model_, _ = harmonizationLearn(X, self.covars_fit_)
        return self

    def transform(
        self, X: np.ndarray, sites: np.ndarray, C: np.ndarray | None = None, subjects: Sequence[str] | None = None
    ) -> np.ndarray:
        """Harmonise new subjects with the fitted model (each subject is adjusted independently).

        neuroHarmonize builds its design from the sites present in the data it is given, so the
        new subjects are stacked under the training subjects and only their rows are returned.
        """
        from neuroHarmonize import harmonizationApply

        X = np.asarray(X, dtype=float)
        C = np.zeros((len(X), 0)) if C is None else np.asarray(C, dtype=float)
        sites = np.asarray(sites).astype(str)
        unseen = np.flatnonzero(~np.isin(sites, self.sites_))
        if unseen.size:
            ids = np.asarray(subjects if subjects is not None else np.arange(len(sites))).astype(str)
            raise InputError(f"ComBat: subject(s) {', '.join(ids[unseen][:_SHOWN])} come from site(s) "
                             f"{sorted({str(v) for v in sites[unseen]})} that no training subject of the fold has")
        stacked = np.concatenate([self.X_fit_, X])
        covars = pd.concat([self.covars_fit_, self._covars(sites, C)], ignore_index=True)
        out = harmonizationApply(stacked, covars, self.model_)
        return np.asarray(out)[len(self.X_fit_):]


def check_confounds_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``confounds`` node with defaults filled in; ConfigError on unknown keys."""
    known = {"regress": [], "categorical": ["sex", "site"], "combat_site": None, "combat_covariates": [],
             "min_site_subjects": 2}
    config = dict(config or {})
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ConfigError(f"confounds: unknown key(s) {unknown}; expected some of {sorted(known)}")
    out = {**known, **{k: v for k, v in config.items() if v is not None or k == "combat_site"}}
    out["regress"] = [str(c) for c in (out["regress"] or [])]
    out["categorical"] = [str(c) for c in (out["categorical"] or [])]
    out["combat_covariates"] = [str(c) for c in (out["combat_covariates"] or [])]
    return out


def is_active(config: Mapping[str, Any] | None) -> bool:
    """Whether a ``confounds`` node asks for any adjustment."""
    cfg = check_confounds_config(config)
    return bool(cfg["regress"] or cfg["combat_site"])


def adjust_fold(
    features: np.ndarray,
    table: pd.DataFrame,
    fit_rows: np.ndarray,
    config: Mapping[str, Any] | None,
    where: str = "confounds",
) -> np.ndarray:
    """Features of every subject adjusted by models fitted on ``fit_rows`` only.

    Args:
        features: ``(n_subjects, n_features)``, rows in the order of ``table``.
        table: subject table (``index.csv``) with the covariate columns.
        fit_rows: the fold's training (train + validation) rows.
        config: the ``confounds`` node (``regress``, ``categorical``, ``combat_site``,
            ``combat_covariates``, ``min_site_subjects``).
        where: prefix of error messages (e.g. the fold).

    Returns:
        ``(n_subjects, n_features)`` adjusted copy (unchanged when nothing is configured).
    """
    cfg = check_confounds_config(config)
    X = np.asarray(features, dtype=float)
    if len(table) != len(X):
        raise InputError(f"{where}: {len(X)} feature rows but {len(table)} subjects in the table")
    fit_rows = np.asarray(fit_rows, dtype=int)
    other = np.setdiff1d(np.arange(len(X)), fit_rows)
    out = X.copy()
    ids = table["subject_id"].astype(str).to_numpy() if "subject_id" in table else np.arange(len(X)).astype(str)
    if cfg["combat_site"]:
        sites = _column(table, cfg["combat_site"], where).astype(str).to_numpy()
        C = covariate_matrix(table, cfg["combat_covariates"], cfg["categorical"], where)
        combat = ComBat(min_subjects=int(cfg["min_site_subjects"]))
        try:
            combat.fit(X[fit_rows], sites[fit_rows], C[fit_rows], subjects=ids[fit_rows])
        except InputError as err:
            raise InputError(f"{where}: column {cfg['combat_site']!r}: {err}") from None
        out[fit_rows] = combat.transform(X[fit_rows], sites[fit_rows], C[fit_rows], subjects=ids[fit_rows])
        if other.size:
            try:
                out[other] = combat.transform(X[other], sites[other], C[other], subjects=ids[other])
            except InputError as err:
                raise InputError(f"{where}: column {cfg['combat_site']!r}: {err}") from None
    if cfg["regress"]:
        C = covariate_matrix(table, cfg["regress"], cfg["categorical"], where)
        model = CovariateRegression().fit(out[fit_rows], C[fit_rows])
        out = model.transform(out, C)
    return out
