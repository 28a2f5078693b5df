"""PCA through the Gram matrix: parity with scikit-learn, chunking, rank limits, sources."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from fusion.errors import ConfigError, InputError
from fusion.evaluate.chunk_sources import CallableSource, NpyStackSource
from fusion.evaluate.pca import GramPCA, TooManyComponentsError, gram_matrices, pca_from_gram


def _data(n_train=30, n_test=11, p=400, seed=0):
    rng = np.random.default_rng(seed)
    # low-rank structure plus noise and a large common offset (tests numerical centring)
    basis = rng.normal(size=(6, p))
    X = rng.normal(size=(n_train + n_test, 6)) * [9, 7, 5, 3, 2, 1] @ basis
    X += 0.3 * rng.normal(size=X.shape) + 50.0
    return X[:n_train], X[n_train:]


def _assert_equal_up_to_sign(A, B, atol=1e-8):
    assert A.shape == B.shape
    signs = np.sign(np.sum(A * B, axis=0))
    assert np.all(signs != 0)
    np.testing.assert_allclose(A * signs, B, atol=atol, rtol=1e-7)


@pytest.mark.parametrize("k", [1, 5, 29])
def test_gram_pca_matches_sklearn(k):
    Xtr, Xte = _data()
    ref = PCA(n_components=k, svd_solver="full").fit(Xtr)
    pca = GramPCA(k, chunk_size=64, backend="numpy").fit(Xtr)
    # the smallest of 29 components carries only noise variance: compare at a looser tolerance
    atol = 1e-6 * np.abs(ref.transform(Xtr)).max()
    _assert_equal_up_to_sign(pca.train_projection_, ref.transform(Xtr), atol=atol)
    _assert_equal_up_to_sign(pca.transform(Xte), ref.transform(Xte), atol=atol)
    np.testing.assert_allclose(pca.explained_variance_, ref.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(pca.mean_, Xtr.mean(axis=0), rtol=1e-12)


def test_chunk_size_does_not_change_result():
    Xtr, Xte = _data(p=257)
    results = []
    for chunk in (1, 7, 100, 257, 10_000):
        pca = GramPCA(4, chunk_size=chunk, backend="numpy").fit(Xtr)
        results.append((pca.train_projection_, pca.transform(Xte)))
    for tr, te in results[1:]:
        np.testing.assert_allclose(tr, results[0][0], atol=1e-9)
        np.testing.assert_allclose(te, results[0][1], atol=1e-9)


def test_fit_does_not_modify_input():
    Xtr, Xte = _data()
    before = Xtr.copy()
    GramPCA(3, chunk_size=50, backend="numpy").fit(Xtr).transform(Xte)
    np.testing.assert_array_equal(Xtr, before)


def test_too_many_components_is_reported_not_faked():
    Xtr, _ = _data(n_train=12)
    with pytest.raises(TooManyComponentsError) as err:
        GramPCA(12, backend="numpy").fit(Xtr)
    assert err.value.available == 11 and err.value.n_train == 12
    GramPCA(11, backend="numpy").fit(Xtr)  # n_train - 1 is allowed
    # rank-deficient data: 3 distinct rows repeated -> rank 2 after centring
    rank2 = np.repeat(Xtr[:3], 4, axis=0)
    with pytest.raises(TooManyComponentsError) as err:
        GramPCA(3, backend="numpy").fit(rank2)
    assert err.value.available == 2


def test_pca_from_gram_matches_sklearn_for_any_split():
    Xtr, Xte = _data(n_train=25, n_test=15, p=120, seed=3)
    X = np.vstack([Xtr, Xte])
    K = gram_matrices(X, chunk_size=33, backend="numpy")[0]
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(X))
    train, test = perm[:28], perm[28:]
    ref = PCA(n_components=6, svd_solver="full").fit(X[train])
    z_tr, z_te = pca_from_gram(K, train, test, 6)
    _assert_equal_up_to_sign(z_tr, ref.transform(X[train]), atol=1e-7)
    _assert_equal_up_to_sign(z_te, ref.transform(X[test]), atol=1e-7)
    with pytest.raises(TooManyComponentsError):
        pca_from_gram(K, train, test, 28)


def test_gram_groups_sum_to_joint_gram():
    Xtr, _ = _data(p=90)
    groups = [(0, 30), (30, 31), (31, 90)]
    per_group = gram_matrices(Xtr, groups=groups, chunk_size=8, backend="numpy")
    joint = gram_matrices(Xtr, chunk_size=1000, backend="numpy")[0]
    np.testing.assert_allclose(per_group.sum(axis=0), joint, rtol=1e-10, atol=1e-8)
    Xc = Xtr[:, 30:31] - Xtr[:, 30:31].mean(axis=0)
    np.testing.assert_allclose(per_group[1], Xc @ Xc.T, rtol=1e-12)


def test_streamed_sources_match_arrays(tmp_path):
    Xtr, Xte = _data(n_train=10, n_test=4, p=2 * 3 * 4)
    paths = []
    for i, row in enumerate(Xtr):
        paths.append(tmp_path / f"s{i}.npy")
        np.save(paths[-1], row.reshape(2, 3, 4).astype(np.float32))
    source = NpyStackSource(paths)
    assert (source.n_samples, source.n_features) == (10, 24)
    f32 = Xtr.astype(np.float32).astype(np.float64)
    a = GramPCA(3, chunk_size=5, backend="numpy").fit(source)
    b = GramPCA(3, chunk_size=5, backend="numpy").fit(f32)
    np.testing.assert_allclose(a.train_projection_, b.train_projection_, atol=1e-9)
    calls = []

    def read(start, stop):
        calls.append((start, stop))
        return Xte[:, start:stop]

    te = a.transform(CallableSource(read, n_samples=4, n_features=24))
    np.testing.assert_allclose(te, b.transform(Xte), atol=1e-9)
    assert max(stop - start for start, stop in calls) <= 5


def test_bad_inputs_are_named():
    Xtr, _ = _data(n_train=5, p=10)
    bad = Xtr.copy()
    bad[2, 7] = np.nan
    with pytest.raises(InputError, match="NaN"):
        GramPCA(2, chunk_size=4, backend="numpy").fit(bad)
    with pytest.raises(ConfigError, match="chunk_size"):
        GramPCA(2, chunk_size=0).fit(Xtr)
    with pytest.raises(ConfigError, match="backend"):
        GramPCA(2, backend="tpu").fit(Xtr)
    pca = GramPCA(2, backend="numpy").fit(Xtr)
    with pytest.raises(InputError, match="features"):
        pca.transform(np.zeros((2, 11)))


@pytest.mark.gpu
def test_cupy_backend_matches_numpy():
    cupy = pytest.importorskip("cupy")
    if cupy.cuda.runtime.getDeviceCount() == 0:
        pytest.skip("no CUDA device")
    Xtr, Xte = _data()
    a = GramPCA(5, chunk_size=64, backend="cupy").fit(Xtr)
    b = GramPCA(5, chunk_size=64, backend="numpy").fit(Xtr)
    np.testing.assert_allclose(a.train_projection_, b.train_projection_, atol=1e-8)
    np.testing.assert_allclose(a.transform(Xte), b.transform(Xte), atol=1e-8)


def test_npy_source_reads_byte_ranges_and_checks_files(tmp_path):
    rng = np.random.default_rng(5)
    arrays = [rng.normal(size=(3, 2, 5)).astype(np.float32) for _ in range(4)]
    for i, a in enumerate(arrays):
        np.save(tmp_path / f"s{i}.npy", a)
    source = NpyStackSource([tmp_path / f"s{i}.npy" for i in range(4)])
    flat = np.stack([a.ravel() for a in arrays]).astype(np.float64)
    np.testing.assert_array_equal(source.read(7, 23), flat[:, 7:23])
    np.testing.assert_array_equal(source.read(0, 30, rows=np.array([2, 0])), flat[[2, 0]])
    np.save(tmp_path / "odd.npy", np.zeros((3, 2, 4), np.float32))
    with pytest.raises(InputError, match="odd.npy"):
        NpyStackSource([tmp_path / "s0.npy", tmp_path / "odd.npy"])
    (tmp_path / "bad.npy").write_bytes(b"not an npy file")
    with pytest.raises(InputError, match="bad.npy"):
        NpyStackSource([tmp_path / "bad.npy"])


def test_gram_pca_is_a_scikit_learn_transformer():
    pca = GramPCA(n_components=4, chunk_size=17, backend="numpy")
    params = pca.get_params()
    assert params == {"n_components": 4, "chunk_size": 17, "backend": "numpy"}
    copy = clone(pca)
    assert copy is not pca and copy.get_params() == params
    assert GramPCA(**params).get_params() == params
    # parameters are stored as given: a bad one fails in fit, not in __init__
    bad = GramPCA(n_components=0, chunk_size=-1, backend="tpu")
    assert bad.get_params() == {"n_components": 0, "chunk_size": -1, "backend": "tpu"}
    with pytest.raises(ConfigError):
        bad.fit(_data()[0])
    with pytest.raises(NotFittedError):
        pca.transform(np.zeros((2, 400)))
    Xtr, _ = _data()
    fitted = pca.fit(Xtr)
    assert fitted is pca and pca.n_features_in_ == 400
    assert not hasattr(clone(pca), "mean_")  # clone drops the fit


def test_gram_pca_in_a_pipeline_cross_validates():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 25))
    y = np.repeat([0, 1], 20)
    X[y == 1, :3] += 1.5
    model = make_pipeline(GramPCA(n_components=3, backend="numpy"), LinearSVC())
    model.fit(X, y)
    assert model.predict(X).shape == (40,)
    scores = cross_val_score(model, X, y, cv=4)
    assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1))
