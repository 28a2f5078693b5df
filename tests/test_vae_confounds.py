"""Confounds of the latents: covariate regression and ComBat, fitted on a fold's training subjects only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusion.errors import ConfigError, InputError
from fusion.evaluate.confounds import (
    CovariateRegression,
    adjust_fold,
    check_confounds_config,
    covariate_matrix,
)


def _table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "subject_id": [f"sub-{i:02d}" for i in range(n)],
        "label": rng.integers(0, 2, n),
        "age": rng.uniform(20, 60, n).round(1),
        "sex": rng.choice(["F", "M"], n),
        "site": np.repeat(["A", "B", "C", "D"], n // 4),
    })


def _features(table: pd.DataFrame, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    site_shift = table["site"].map({"A": 0.0, "B": 1.5, "C": -1.0, "D": 0.5}).to_numpy()[:, None]
    return rng.normal(size=(len(table), 6)) + 0.05 * table["age"].to_numpy()[:, None] + site_shift * np.arange(1, 7)


def test_covariate_matrix_codes_levels_and_names_bad_columns() -> None:
    table = _table(8)
    design = covariate_matrix(table, ["age", "sex"], categorical=["sex"])
    np.testing.assert_array_equal(design[:, 0], table["age"].to_numpy())
    np.testing.assert_array_equal(design[:, 1], (table["sex"] == "M").astype(float))
    with pytest.raises(InputError, match=r"'scanner' is not in the subject table.*age"):
        covariate_matrix(table, ["scanner"])
    with pytest.raises(InputError, match=r"'sex' must be numeric but subject\(s\) sub-0"):
        covariate_matrix(table, ["sex"], categorical=[])
    broken = table.copy()
    broken.loc[3, "age"] = np.nan
    with pytest.raises(InputError, match="'age' has no value for subject.*sub-03"):
        covariate_matrix(broken, ["age"])
    with pytest.raises(ConfigError, match="unknown key"):
        check_confounds_config({"regres": ["age"]})


def test_regression_fitted_on_training_subjects_only() -> None:
    """Against scikit-learn's OLS on the training rows; test rows cannot change the fit."""
    from sklearn.linear_model import LinearRegression

    table = _table()
    X = _features(table)
    fit = np.arange(30)
    cfg = {"regress": ["age", "sex"]}
    out = adjust_fold(X, table, fit, cfg)
    C = covariate_matrix(table, ["age", "sex"], ["sex"])
    ols = LinearRegression().fit(C[fit], X[fit])
    expected = X - (C - C[fit].mean(axis=0)) @ ols.coef_.T
    np.testing.assert_allclose(out, expected, atol=1e-9)
    # the adjusted training features are uncorrelated with age
    assert np.abs(np.corrcoef(out[fit, 0], table["age"].to_numpy()[fit])[0, 1]) < 1e-9
    # changing the test subjects (features and covariates) changes nothing for anyone else
    leaked = X.copy()
    leaked[30:] += 100.0 * np.arange(10)[:, None]
    table2 = table.copy()
    table2.loc[30:, "age"] = 500.0
    out2 = adjust_fold(leaked, table2, fit, cfg)
    np.testing.assert_allclose(out2[fit], out[fit], atol=1e-9)
    model = CovariateRegression().fit(X[fit], C[fit])
    C2 = covariate_matrix(table2, ["age", "sex"], ["sex"])
    np.testing.assert_allclose(out2[30:], model.transform(leaked[30:], C2[30:]), atol=1e-9)


def test_combat_equals_a_direct_neuroharmonize_call() -> None:
    from neuroHarmonize import harmonizationApply, harmonizationLearn

    table = _table()
    X = _features(table)
    fit = np.array([i for i in range(40) if i % 5 != 0])        # every site in train and test
    test = np.setdiff1d(np.arange(40), fit)
    cfg = {"combat_site": "site", "combat_covariates": ["age"]}
    out = adjust_fold(X, table, fit, cfg)
    covars = pd.DataFrame({"SITE": table["site"].to_numpy(), "c0": table["age"].to_numpy(dtype=float)})
    model, harmonized = harmonizationLearn(X[fit], covars.iloc[fit].reset_index(drop=True))
    np.testing.assert_allclose(out[fit], harmonized, atol=1e-8)
    direct = harmonizationApply(X[test], covars.iloc[test].reset_index(drop=True), model)
    np.testing.assert_allclose(out[test], direct, atol=1e-8)
    # the site means of the training subjects are pulled together
    before = [X[fit][table["site"].to_numpy()[fit] == s].mean() for s in "ABCD"]
    after = [out[fit][table["site"].to_numpy()[fit] == s].mean() for s in "ABCD"]
    assert np.std(after) < 0.2 * np.std(before)


def test_combat_fitted_on_training_subjects_only() -> None:
    table = _table()
    X = _features(table)
    fit = np.arange(0, 40, 2)
    cfg = {"combat_site": "site"}
    out = adjust_fold(X, table, fit, cfg)
    leaked = X.copy()
    leaked[1::2] *= 50.0
    np.testing.assert_allclose(adjust_fold(leaked, table, fit, cfg)[fit], out[fit], atol=1e-9)


def test_combat_errors_name_the_site_and_subjects() -> None:
    table = _table()
    X = _features(table)
    fit = np.concatenate([np.arange(0, 30), [30]])   # site D has a single training subject
    with pytest.raises(InputError, match=r"column 'site'.*site 'D': 1 subject\(s\) \(sub-30\)"):
        adjust_fold(X, table, fit, {"combat_site": "site"})
    fit = np.arange(30)                               # site D only among the test subjects
    with pytest.raises(InputError, match=r"sub-30.*site\(s\) \['D'\] that no training subject"):
        adjust_fold(X, table, fit, {"combat_site": "site"})
    with pytest.raises(InputError, match="'scanner' is not in the subject table"):
        adjust_fold(X, table, fit, {"combat_site": "scanner"})


def test_vae_config_carries_confounds_to_the_svm() -> None:
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = compose(config_name="vae", overrides=["confounds.regress=[age,sex]"])
    assert list(cfg.callbacks.svm.confounds.regress) == ["age", "sex"]
    assert cfg.callbacks.results.confounds.combat_site is None
    assert cfg.callbacks.results.statistics.n_perm == cfg.statistics.n_perm
