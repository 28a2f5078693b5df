"""A linear support vector machine behind one API, on the GPU (cuML) or the CPU (scikit-learn).

The paper trains "a support vector machine" on the concatenated latents with RAPIDS AI (cuML) and
reads per-feature weights from it, so the kernel is linear. We solve the same problem on both
backends: the C-SVC dual with a linear kernel (hinge loss, squared L2 penalty, intercept not
penalised), i.e. ``cuml.svm.SVC(kernel="linear")`` on the GPU and ``sklearn.svm.SVC(kernel="linear")``
(libsvm) on the CPU. ``sklearn.svm.LinearSVC`` is not used: it minimises a different objective
(squared hinge, penalised intercept by default) and would not agree with the GPU results.

cuML and CuPy are imported only inside functions, and only when a CUDA device is present.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from fusion import devices
from fusion.errors import ConfigError, InputError

__all__ = ["LinearSVM", "resolve_backend", "BACKENDS"]

BACKENDS = ("auto", "cuml", "sklearn")


def resolve_backend(name: str) -> str:
    """``"auto"`` -> ``"cuml"`` when a CUDA device is present and cuML imports, else ``"sklearn"``
    (:func:`fusion.devices.resolve_backend`)."""
    return devices.resolve_backend(name, gpu="cuml", cpu="sklearn", choices=BACKENDS)


def _to_numpy(a: Any, name: str) -> np.ndarray:
    """NumPy view/copy of a NumPy array, torch tensor (any device) or CuPy array."""
    try:
        import torch

        if isinstance(a, torch.Tensor):
            return a.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(a, "__cuda_array_interface__"):
        import cupy

        return cupy.asnumpy(a)
    try:
        return np.asarray(a)
    except Exception as exc:
        raise InputError(f"{name} must be array-like, got {type(a).__name__}") from exc


def _to_cupy(a: Any) -> Any:
    """CuPy array on the current device; torch CUDA tensors go through DLPack without a copy."""
    import cupy

    try:
        import torch

        if isinstance(a, torch.Tensor):
            a = a.detach()
            return cupy.from_dlpack(a) if a.is_cuda else cupy.asarray(a.numpy())
    except ImportError:  # pragma: no cover
        pass
    return cupy.asarray(a)


def _check_X(X: Any, n_features: int | None = None) -> np.ndarray:
    arr = _to_numpy(X, "X")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"X must be a 2D array (n_samples, n_features), got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise InputError(f"X must have {n_features} features (as in fit), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise InputError("X must hold finite numbers (no NaN or inf)")
    return arr


class LinearSVM(ClassifierMixin, BaseEstimator):
    """Binary linear SVM (C-SVC with a linear kernel) on cuML or scikit-learn.

    Args:
        C: inverse regularisation strength (> 0).
        backend: ``"auto"``, ``"cuml"`` or ``"sklearn"``; see :func:`resolve_backend`.
        max_iter: iteration limit of the solver.
        tol: stopping tolerance of the solver.
        standardize: centre and scale each feature with the training mean and standard deviation
            before fitting. The paper does not mention scaling, hence False by default.

    Attributes (after ``fit``):
        backend_: the backend that ran, ``"cuml"`` or ``"sklearn"``.
        classes_: the two labels, sorted; ``classes_[1]`` is the positive class.
        coef_: ``(n_features,)`` weights on the features as given, so that
            ``decision_function(X) == X @ coef_ + intercept_`` whether or not ``standardize`` is set
            (``coef_ * scale_`` are the weights on the standardised features).
        intercept_: float.
        mean_, scale_: ``(n_features,)`` per-feature centre and scale (zeros and ones when
            ``standardize`` is False).
        n_features_in_: number of features.
    """

    def __init__(
        self,
        C: float = 1.0,
        backend: str = "auto",
        max_iter: int = 100_000,
        tol: float = 1e-4,
        standardize: bool = False,
    ) -> None:
        self.C = C
        self.backend = backend
        self.max_iter = max_iter
        self.tol = tol
        self.standardize = standardize

    def _check_params(self) -> None:
        if not (isinstance(self.C, (int, float)) and np.isfinite(self.C) and self.C > 0):
            raise ConfigError(f"LinearSVM: C must be a finite number > 0, got {self.C!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise ConfigError(f"LinearSVM: tol must be > 0, got {self.tol!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ConfigError(f"LinearSVM: max_iter must be a positive integer, got {self.max_iter!r}")

    def fit(self, X: Any, y: Any) -> LinearSVM:
        """Fit on features ``X`` ``(n_samples, n_features)`` and two-class labels ``y`` ``(n_samples,)``.

        ``X`` and ``y`` may be NumPy arrays, torch tensors or CuPy arrays.
        """
        self._check_params()
        backend = resolve_backend(self.backend)
        X_np = _check_X(X)
        y_np = _to_numpy(y, "y")
        if y_np.ndim != 1 or y_np.shape[0] != X_np.shape[0]:
            raise InputError(f"y must be 1D with one label per row of X ({X_np.shape[0]}), got shape {y_np.shape}")
        classes = np.unique(y_np)
        if classes.size != 2:
            raise InputError(f"y must hold exactly two classes, got {classes.size}: {classes[:5].tolist()}")
        y01 = (y_np == classes[1]).astype(np.float64)

        n_features = X_np.shape[1]
        if self.standardize:
            mean = X_np.mean(axis=0, dtype=np.float64)
            scale = X_np.std(axis=0, dtype=np.float64)
            scale[scale == 0] = 1.0  # constant features stay constant (zero) instead of NaN
        else:
            mean, scale = np.zeros(n_features), np.ones(n_features)

        if backend == "cuml":
            w, b = self._fit_cuml(X, y01, mean, scale)
        else:
            w, b = self._fit_sklearn((X_np - mean) / scale, y01)

        # Weights on the features as given: w . (x - mean) / scale + b = (w / scale) . x + b'.
        self.coef_ = w / scale
        self.intercept_ = float(b - np.dot(self.coef_, mean))
        self.mean_, self.scale_ = mean, scale
        self.classes_ = classes
        self.n_features_in_ = n_features
        self.backend_ = backend
        return self

    def _fit_sklearn(self, X: np.ndarray, y01: np.ndarray) -> tuple[np.ndarray, float]:
        from sklearn.svm import SVC

        model = SVC(C=float(self.C), kernel="linear", tol=float(self.tol), max_iter=int(self.max_iter))
        model.fit(np.asarray(X, dtype=np.float64), y01)
        # With labels {0, 1}, libsvm's decision is positive for class 1.
        return np.asarray(model.coef_, dtype=np.float64).ravel(), float(model.intercept_[0])

    def _fit_cuml(
        self, X: Any, y01: np.ndarray, mean: np.ndarray, scale: np.ndarray
    ) -> tuple[np.ndarray, float]:
        import cupy
        from cuml.svm import SVC

        X_gpu = _to_cupy(X).astype(cupy.float64)
        X_gpu = (X_gpu - cupy.asarray(mean)) / cupy.asarray(scale)
        y_gpu = cupy.asarray(y01)
        model = SVC(
            C=float(self.C), kernel="linear", tol=float(self.tol), max_iter=int(self.max_iter),
            output_type="numpy",
        )
        model.fit(X_gpu, y_gpu)
        w = np.asarray(model.coef_, dtype=np.float64).ravel()
        b = float(np.asarray(model.intercept_).ravel()[0])
        # Orient the weights so that a positive decision means class 1, as on the CPU path.
        ours = cupy.asnumpy(X_gpu) @ w + b
        theirs = np.asarray(model.decision_function(X_gpu), dtype=np.float64).ravel()
        if np.dot(ours, theirs) < 0:
            w, b = -w, -b
        return w, b

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise InputError("LinearSVM is not fitted yet: call fit(X, y) first")

    def decision_function(self, X: Any) -> np.ndarray:
        """Signed distance-like scores ``(n_samples,)``, positive for ``classes_[1]``."""
        self._check_fitted()
        X_np = _check_X(X, self.n_features_in_)
        return X_np.astype(np.float64, copy=False) @ self.coef_ + self.intercept_

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels ``(n_samples,)`` drawn from ``classes_``."""
        return self.classes_[(self.decision_function(X) > 0).astype(int)]
