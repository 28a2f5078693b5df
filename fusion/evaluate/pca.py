"""PCA through the subjects x subjects Gram matrix, streamed in feature chunks.

With n subjects and p features (p = 54 x 173,628 on the paper grid, far more than n) the principal
components live in the span of the n centred training rows. Fitting needs only the n x n Gram
matrix ``G = Xc Xc^T`` of the centred training data, accumulated over column chunks, so memory
stays at about one chunk of columns plus n x n, whatever p is:

- ``G = U diag(lambda) U^T`` (eigendecomposition, largest first);
- training projections: ``U * sqrt(lambda)`` (= ``Xc V`` with ``V = Xc^T U / sqrt(lambda)``);
- new subjects: ``(X_new - mean) Xc^T U / sqrt(lambda)``, again accumulated over chunks.

Feature data comes from a :class:`~fusion.evaluate.chunk_sources.ChunkSource` (``n_samples``,
``n_features``, ``read(start, stop)``; :mod:`fusion.evaluate.chunk_sources`) or a 2D array.
:class:`GramPCA` is a scikit-learn transformer, so it composes with ``make_pipeline`` and ``clone``.

A second route, :func:`pca_from_gram`, starts from the uncentred Gram matrix of *all* subjects
(computed once by :func:`gram_matrices`) and derives any train/test split from it exactly; the
baselines use it to run every fold and every component count from one pass over the data.

The number of components cannot exceed the rank of the centred training data (at most
``n_train - 1``): asking for more raises :class:`TooManyComponentsError` and callers report "n/a".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from fusion.errors import ConfigError, FusionError, InputError
from fusion.evaluate.chunk_sources import ChunkSource, as_source

__all__ = [
    "GramPCA",
    "TooManyComponentsError",
    "gram_matrices",
    "max_components",
    "pca_from_gram",
    "resolve_backend",
]

logger = logging.getLogger(__name__)

#: Relative eigenvalue floor below which a direction of the centred Gram matrix counts as empty.
RANK_RTOL = 1e-10


class TooManyComponentsError(FusionError):
    """More principal components were asked for than the training data can support.

    Attributes:
        n_components: the number asked for.
        available: the rank of the centred training data (at most ``n_train - 1``).
    """

    def __init__(self, n_components: int, available: int, n_train: int):
        self.n_components = int(n_components)
        self.available = int(available)
        self.n_train = int(n_train)
        super().__init__(
            f"n_components={n_components} exceeds the rank of the centred training data "
            f"({available}, with {n_train} training subjects): report 'n/a' for this setting"
        )


# --------------------------------------------------------------------------------------------
# backend
# --------------------------------------------------------------------------------------------


def resolve_backend(backend: str = "auto") -> str:
    """``"auto"`` -> ``"cupy"`` when CuPy and a CUDA device are present, else ``"numpy"``
    (:func:`fusion.devices.resolve_backend`)."""
    from fusion import devices

    return devices.resolve_backend(backend, gpu="cupy", cpu="numpy")


class _Accumulator:
    """``acc += A @ B.T`` in float64, on the GPU when the backend is CuPy."""

    def __init__(self, backend: str, shape: tuple[int, int]):
        self.backend = backend
        if backend == "cupy":
            import cupy

            self.xp = cupy
        else:
            self.xp = np
        self.value = self.xp.zeros(shape, dtype=np.float64)

    def asarray(self, block: np.ndarray):
        # always a copy: blocks are centred in place and may be views of the caller's data
        return self.xp.array(block, dtype=np.float64, copy=True)

    def add(self, a, b) -> None:
        self.value += a @ b.T

    def result(self) -> np.ndarray:
        if self.backend == "cupy":
            return self.xp.asnumpy(self.value)
        return self.value


def _chunks(n_features: int, chunk_size: int):
    for start in range(0, n_features, chunk_size):
        yield start, min(start + chunk_size, n_features)


def _check_chunk_size(chunk_size: int) -> int:
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer (features per chunk), got {chunk_size!r}")
    return int(chunk_size)


def _check_n_components(n_components: object) -> int:
    # whole numbers only: a float would read as scikit-learn's "fraction of variance", unsupported here
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ConfigError(f"n_components must be an integer >= 1, got {n_components!r}")
    return int(n_components)


def _check_finite(block, start: int, stop: int, xp=np) -> None:
    if not bool(xp.isfinite(block).all()):
        raise InputError(f"feature columns {start}:{stop} contain NaN or Inf")


# --------------------------------------------------------------------------------------------
# eigen-decomposition shared by both routes
# --------------------------------------------------------------------------------------------


def max_components(n_train: int) -> int:
    """The most components a PCA fitted on ``n_train`` subjects can have (``n_train - 1``)."""
    return max(int(n_train) - 1, 0)


def _top_eigen(G: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest ``n_components`` eigenpairs of a centred Gram matrix, checked against its rank.

    Returns eigenvalues (k,) in decreasing order and eigenvectors (n, k) with a deterministic sign
    (the entry of largest magnitude of each vector is positive).
    """
    n = G.shape[0]
    if n_components < 1:
        raise ConfigError(f"n_components must be >= 1, got {n_components}")
    if n_components > max_components(n):
        raise TooManyComponentsError(n_components, max_components(n), n)
    G = 0.5 * (G + G.T)
    evals, evecs = np.linalg.eigh(G)
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    top = evals[0] if evals.size else 0.0
    rank = int(np.sum(evals > RANK_RTOL * max(top, np.finfo(float).tiny))) if top > 0 else 0
    rank = min(rank, max_components(n))
    if n_components > rank:
        raise TooManyComponentsError(n_components, rank, n)
    evals, evecs = evals[:n_components], evecs[:, :n_components]
    pivot = np.abs(evecs).argmax(axis=0)
    signs = np.sign(evecs[pivot, np.arange(n_components)])
    signs[signs == 0] = 1.0
    return evals, evecs * signs


# --------------------------------------------------------------------------------------------
# estimator
# --------------------------------------------------------------------------------------------


class GramPCA(TransformerMixin, BaseEstimator):
    """Principal component analysis for n << p, fitted through the n x n Gram matrix.

    Projections equal scikit-learn's ``PCA(n_components).fit(X).transform(X)`` up to the sign of
    each component. The component vectors themselves (k x p) are never formed: :meth:`transform`
    streams the training data a second time, so the training source must stay readable.

    A scikit-learn transformer: parameters are stored as given and checked by :meth:`fit`, so
    ``clone``, ``get_params`` and pipelines (``make_pipeline(GramPCA(3), LinearSVC())``) work.

    Args:
        n_components: number of components k; at most the rank of the centred training data
            (``n_train - 1`` for data in general position), else :meth:`fit` raises
            :class:`TooManyComponentsError`.
        chunk_size: features (columns) read per chunk; memory is about
            ``chunk_size x (n_train + n_new) x 8`` bytes plus the n x n Gram matrix.
        backend: ``"auto"`` (CuPy on a CUDA device when installed, else NumPy), ``"cupy"`` or
            ``"numpy"``. The Gram products run on the backend; the n x n eigendecomposition on CPU.

    Attributes (after fit):
        mean_: (n_features,) training mean, float64.
        eigenvalues_: (k,) eigenvalues of the centred Gram matrix, decreasing.
        explained_variance_: (k,) ``eigenvalues_ / (n_train - 1)`` (as scikit-learn).
        eigenvectors_: (n_train, k) eigenvectors ``U`` of the centred Gram matrix (signs fixed).
        singular_values_: (k,) ``sqrt(eigenvalues_)``, the singular values of the centred data.
        train_projection_: (n_train, k) projections of the training subjects.
        train_source_: the training data as a chunk source, read again by :meth:`transform`.
        n_train_, n_features_ (= ``n_features_in_``), backend_.
    """

    def __init__(self, n_components: int, chunk_size: int = 32768, backend: str = "auto") -> None:
        self.n_components = n_components
        self.chunk_size = chunk_size
        self.backend = backend

    def fit(self, X: np.ndarray | ChunkSource, y: object = None) -> GramPCA:
        """Fit on training data: a 2D array ``(n_train, n_features)`` or a :class:`ChunkSource`.
        ``y`` is ignored (scikit-learn's signature)."""
        source = as_source(X)
        chunk = _check_chunk_size(self.chunk_size)
        k = _check_n_components(self.n_components)
        n, p = source.n_samples, source.n_features
        if n < 2:
            raise InputError(f"PCA needs at least 2 training subjects, got {n}")
        if k > max_components(n):  # fail before streaming anything
            raise TooManyComponentsError(k, max_components(n), n)
        backend = resolve_backend(self.backend)
        acc = _Accumulator(backend, (n, n))
        mean = np.empty(p, dtype=np.float64)
        for start, stop in _chunks(p, chunk):
            block = acc.asarray(source.read(start, stop))
            _check_finite(block, start, stop, acc.xp)
            mu = block.mean(axis=0)
            block -= mu
            acc.add(block, block)
            mean[start:stop] = mu.get() if backend == "cupy" else mu
        evals, evecs = _top_eigen(acc.result(), k)
        # fitted attributes only once the fit succeeded, so a failed fit never looks fitted
        self.backend_ = backend
        self.mean_ = mean
        self.eigenvalues_ = evals
        self.explained_variance_ = evals / (n - 1)
        self.eigenvectors_ = evecs
        self.singular_values_ = np.sqrt(evals)
        self.train_projection_ = evecs * self.singular_values_
        self.n_train_, self.n_features_ = n, p
        self.n_features_in_ = p
        self.train_source_ = source
        return self

    def fit_transform(self, X: np.ndarray | ChunkSource, y: object = None) -> np.ndarray:
        """Fit and return the training projections ``(n_train, k)`` (one pass, not fit + transform)."""
        return self.fit(X).train_projection_.copy()

    def transform(self, X: np.ndarray | ChunkSource) -> np.ndarray:
        """Project new subjects: ``(X - mean) Xc^T U / sqrt(lambda)``, shape ``(n_new, k)``.

        Raises:
            sklearn.exceptions.NotFittedError: before :meth:`fit`.
        """
        check_is_fitted(self)
        source = as_source(X)
        if source.n_features != self.n_features_:
            raise InputError(f"X has {source.n_features} features, the PCA was fitted on {self.n_features_}")
        acc = _Accumulator(self.backend_, (source.n_samples, self.n_train_))
        for start, stop in _chunks(self.n_features_, _check_chunk_size(self.chunk_size)):
            mu = acc.asarray(self.mean_[start:stop])
            new = acc.asarray(source.read(start, stop))
            _check_finite(new, start, stop, acc.xp)
            train = acc.asarray(self.train_source_.read(start, stop))
            acc.add(new - mu, train - mu)
        return acc.result() @ self.eigenvectors_ / self.singular_values_


# --------------------------------------------------------------------------------------------
# one pass over all subjects, every split afterwards
# --------------------------------------------------------------------------------------------


def gram_matrices(
    source: np.ndarray | ChunkSource,
    groups: Sequence[tuple[int, int]] | None = None,
    chunk_size: int = 32768,
    backend: str = "auto",
    progress: bool = False,
) -> np.ndarray:
    """Gram matrices of all subjects over column groups, in one streamed pass.

    Each group's columns are first centred with the mean over *all* subjects. That is a constant
    shift, which the training-mean centring of :func:`pca_from_gram` removes exactly; it only keeps
    the float64 products well conditioned. No label or split information is used.

    Args:
        source: ``(n_subjects, n_features)`` array or :class:`ChunkSource`.
        groups: ``(start, stop)`` column ranges, e.g. one per modality; default one group with all
            features.
        chunk_size: features read per chunk (chunks never straddle groups).
        backend: ``"auto"``, ``"cupy"`` or ``"numpy"`` (see :func:`resolve_backend`).
        progress: show a tqdm bar over chunks.

    Returns:
        ``(n_groups, n_subjects, n_subjects)`` float64; their sum is the Gram matrix of the
        concatenated groups.
    """
    source = as_source(source)
    chunk = _check_chunk_size(chunk_size)
    n, p = source.n_samples, source.n_features
    if groups is None:
        groups = [(0, p)]
    for start, stop in groups:
        if not 0 <= start < stop <= p:
            raise InputError(f"column group {start}:{stop} lies outside 0:{p}")
    resolved = resolve_backend(backend)
    out = np.empty((len(groups), n, n), dtype=np.float64)
    spans = [(g, a, b) for g, (start, stop) in enumerate(groups) for a, b in _chunks(stop - start, chunk)]
    spans = [(g, groups[g][0] + a, groups[g][0] + b) for g, a, b in spans]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(spans), desc="Gram matrices", unit="chunk")
    current, acc = None, None
    for g, start, stop in spans:
        if g != current:
            if acc is not None:
                out[current] = acc.result()
            current, acc = g, _Accumulator(resolved, (n, n))
        assert acc is not None  # made at the first span
        block = acc.asarray(source.read(start, stop))
        _check_finite(block, start, stop, acc.xp)
        block -= block.mean(axis=0)
        acc.add(block, block)
        if bar is not None:
            bar.update()
    assert acc is not None  # spans is not empty: every group has start < stop
    out[current] = acc.result()
    if bar is not None:
        bar.close()
    return out


def pca_from_gram(
    K: np.ndarray, train: np.ndarray, test: np.ndarray, n_components: int
) -> tuple[np.ndarray, np.ndarray]:
    """PCA fitted on ``train`` subjects, applied to ``train`` and ``test``, from a full Gram matrix.

    With ``Xc = H X_tr`` (``H`` the centring matrix of the training rows) the centred training Gram
    matrix is ``H K_tt H`` and the centred cross products of new subjects are
    ``(K_st - 1 1^T K_tt / n_tr) H``, so no feature needs to be read again.

    Args:
        K: ``(n, n)`` Gram matrix of all subjects (any constant column shift allowed).
        train: indices of the subjects the PCA is fitted on (train + validation of a fold).
        test: indices of the subjects to project.
        n_components: k.

    Returns:
        ``(train_projection (n_train, k), test_projection (n_test, k))``, equal to scikit-learn's
        PCA up to the sign of each component.

    Raises:
        TooManyComponentsError: k exceeds the rank of the centred training data.
    """
    train = np.asarray(train, dtype=int)
    test = np.asarray(test, dtype=int)
    n_tr = train.size
    if n_tr < 2:
        raise InputError(f"PCA needs at least 2 training subjects, got {n_tr}")
    K_tt = K[np.ix_(train, train)]
    K_st = K[np.ix_(test, train)]
    row_mean = K_tt.mean(axis=0)  # (1/n) 1^T K_tt
    G = K_tt - row_mean[None, :] - row_mean[:, None] + row_mean.mean()
    evals, U = _top_eigen(G, int(n_components))
    scale = np.sqrt(evals)
    cross = K_st - row_mean[None, :]
    cross = cross - cross.mean(axis=1, keepdims=True)  # right-multiplication by H
    return U * scale, cross @ U / scale
