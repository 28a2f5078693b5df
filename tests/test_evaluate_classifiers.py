"""LinearSVM: backend resolution and fallback, closed-form solutions, scikit-learn parity, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from sklearn.base import clone

from fusion.errors import ConfigError, InputError
from fusion.evaluate.classifiers import LinearSVM, resolve_backend


def _has_cuml() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import cuml  # noqa: F401
    except Exception:
        return False
    return True


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def cuda_without_cuml(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "cuml", None)  # makes `import cuml` raise ImportError


def _blobs(seed: int = 0, n: int = 80, d: int = 12, shift: float = 1.0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 5.0, size=d) + rng.normal(size=d) * 3
    X[y == 1, :3] += shift
    return X, y


def test_resolve_backend_names(no_cuda):
    assert resolve_backend("sklearn") == "sklearn"
    assert resolve_backend("auto") == "sklearn"
    with pytest.raises(ConfigError, match="backend must be one of"):
        resolve_backend("svm")


def test_cuml_without_cuda_is_a_config_error(no_cuda):
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_backend("cuml")
    X, y = _blobs()
    with pytest.raises(ConfigError, match="CUDA"):
        LinearSVM(backend="cuml").fit(X, y)


def test_auto_falls_back_when_cuml_is_missing(cuda_without_cuml):
    assert resolve_backend("auto") == "sklearn"
    with pytest.raises(ConfigError, match="cuML"):
        resolve_backend("cuml")
    X, y = _blobs()
    clf = LinearSVM(backend="auto").fit(X, y)
    assert clf.backend_ == "sklearn"


def test_hard_margin_solution():
    # Columns at x0 = 0 (class 0) and x0 = 2 (class 1): the maximum-margin separator is x0 = 1 with
    # margins at 0 and 2, i.e. w = (1, 0), b = -1.
    X = np.array([[0, -1], [0, 0], [0, 1], [2, -1], [2, 0], [2, 1]], dtype=float)
    y = np.array([0, 0, 0, 1, 1, 1])
    clf = LinearSVM(C=1e6, backend="sklearn").fit(X, y)
    assert clf.backend_ == "sklearn"
    np.testing.assert_allclose(clf.coef_, [1.0, 0.0], atol=1e-3)
    assert clf.intercept_ == pytest.approx(-1.0, abs=1e-3)
    np.testing.assert_array_equal(clf.predict(X), y)
    np.testing.assert_allclose(clf.decision_function(X), [-1, -1, -1, 1, 1, 1], atol=1e-3)


@pytest.mark.parametrize("C", [0.05, 0.1, 0.3])
def test_soft_margin_uses_the_hinge_loss(C):
    # Points -1 (class 0) and +1 (class 1): minimising w^2 / 2 + C * sum(hinge) gives b = 0 and
    # w = 2C while 2C < 1. (A squared hinge would give 4C / (1 + 4C).)
    X = np.array([[-1.0], [1.0]])
    clf = LinearSVM(C=C, backend="sklearn", tol=1e-8).fit(X, [0, 1])
    assert clf.coef_[0] == pytest.approx(2 * C, rel=1e-4)
    assert clf.intercept_ == pytest.approx(0.0, abs=1e-6)


def test_separates_a_separable_problem_and_scores_are_linear():
    X, y = _blobs(shift=40.0)
    clf = LinearSVM(backend="sklearn").fit(X, y)
    np.testing.assert_array_equal(clf.predict(X), y)
    assert clf.coef_.shape == (X.shape[1],)
    np.testing.assert_allclose(clf.decision_function(X), X @ clf.coef_ + clf.intercept_)


def test_standardize_matches_a_scaler_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X, y = _blobs(seed=1)
    X_test, _ = _blobs(seed=2)
    ref = make_pipeline(StandardScaler(), SVC(kernel="linear", C=0.5, tol=1e-4)).fit(X, y)
    clf = LinearSVM(C=0.5, backend="sklearn", standardize=True).fit(X, y)
    np.testing.assert_allclose(clf.decision_function(X_test), ref.decision_function(X_test), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(clf.scale_, X.std(axis=0))
    # Without standardisation the solution differs (features have very different scales).
    plain = LinearSVM(C=0.5, backend="sklearn").fit(X, y)
    assert not np.allclose(plain.decision_function(X_test), ref.decision_function(X_test), atol=1e-3)


def test_constant_feature_with_standardize():
    X, y = _blobs(seed=3)
    X[:, 5] = 7.0
    clf = LinearSVM(backend="sklearn", standardize=True).fit(X, y)
    assert np.all(np.isfinite(clf.coef_)) and clf.coef_[5] == 0.0


def test_label_values_and_input_types():
    X, y = _blobs(seed=4, shift=3.0)
    ref = LinearSVM(backend="sklearn").fit(X, y)
    names = np.where(y == 1, "patient", "control")
    clf = LinearSVM(backend="sklearn").fit(torch.from_numpy(X), names)
    np.testing.assert_array_equal(clf.classes_, ["control", "patient"])
    np.testing.assert_allclose(clf.decision_function(torch.from_numpy(X)), ref.decision_function(X))
    np.testing.assert_array_equal(clf.predict(X), np.where(ref.predict(X) == 1, "patient", "control"))
    signed = LinearSVM(backend="sklearn").fit(X, 2 * y - 1)  # labels -1/+1: +1 is positive
    np.testing.assert_allclose(signed.decision_function(X), ref.decision_function(X))


def test_sklearn_conventions():
    clf = LinearSVM(C=2.0, backend="sklearn", standardize=True)
    assert clf.get_params()["C"] == 2.0
    other = clone(clf)
    assert other.get_params() == clf.get_params() and not hasattr(other, "coef_")


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.zeros((4, 2)), np.array([0, 0, 0, 0]), "exactly two classes"),
        (np.zeros((4, 2)), np.array([0, 1, 2, 1]), "exactly two classes"),
        (np.zeros((4, 2)), np.array([0, 1, 1]), "one label per row"),
        (np.zeros(4), np.array([0, 1, 1, 0]), "2D"),
        (np.array([[0.0, np.nan], [1, 1]]), np.array([0, 1]), "finite"),
    ],
)
def test_bad_inputs(X, y, match):
    with pytest.raises(InputError, match=match):
        LinearSVM(backend="sklearn").fit(X, y)


def test_errors_after_and_before_fit():
    X, y = _blobs()
    with pytest.raises(InputError, match="not fitted"):
        LinearSVM().decision_function(X)
    clf = LinearSVM(backend="sklearn").fit(X, y)
    with pytest.raises(InputError, match="12 features"):
        clf.decision_function(X[:, :5])


@pytest.mark.parametrize("kwargs", [{"C": 0.0}, {"C": -1.0}, {"tol": 0}, {"max_iter": 0}, {"backend": "gpu"}])
def test_bad_parameters(kwargs):
    X, y = _blobs()
    with pytest.raises(ConfigError):
        LinearSVM(**kwargs).fit(X, y)


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuml(), reason="needs a CUDA device and cuML")
@pytest.mark.parametrize("standardize", [False, True])
def test_cuml_matches_sklearn(standardize):
    X, y = _blobs(seed=5, n=200, d=64)
    X_test, _ = _blobs(seed=6, n=50, d=64)
    cpu = LinearSVM(C=0.1, backend="sklearn", standardize=standardize).fit(X, y)
    gpu = LinearSVM(C=0.1, backend="cuml", standardize=standardize).fit(torch.from_numpy(X).cuda(), y)
    assert gpu.backend_ == "cuml"
    assert resolve_backend("auto") == "cuml"
    np.testing.assert_allclose(gpu.decision_function(X_test), cpu.decision_function(X_test), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-2, atol=1e-3)
