"""Stratified folds: partition, stratification, validation size, reproducibility, file round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from fusion.data.folds import Fold, load_folds, save_folds, stratified_folds
from fusion.errors import ConfigError, InputError


def _labels(n_controls: int, n_patients: int, seed: int = 0) -> np.ndarray:
    y = np.array([0] * n_controls + [1] * n_patients)
    return np.random.default_rng(seed).permutation(y)


@pytest.mark.parametrize("n_controls,n_patients,n_splits", [(60, 60, 10), (100, 100, 10), (13, 27, 5), (12, 12, 10)])
def test_folds_partition_and_stratify(n_controls: int, n_patients: int, n_splits: int) -> None:
    y = _labels(n_controls, n_patients)
    folds = stratified_folds(y, n_splits=n_splits, val_fraction=0.1, seed=42)
    assert len(folds) == n_splits
    tested = np.concatenate([f.test for f in folds])
    # every subject tested exactly once
    assert np.array_equal(np.sort(tested), np.arange(len(y)))
    overall = y.mean()
    for f in folds:
        parts = [set(f.train.tolist()), set(f.val.tolist()), set(f.test.tolist())]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(parts[0] | parts[1] | parts[2]) == len(y)
        n_train_all = len(f.train) + len(f.val)
        assert len(f.val) == max(math.ceil(0.1 * n_train_all), 2)
        for part in (f.train, f.val, f.test):
            # class ratio within one subject of the overall ratio
            assert abs(y[part].sum() - overall * len(part)) <= 1.0 + 1e-9
        assert set(y[f.val].tolist()) == {0, 1}
        assert all(np.all(np.diff(p) > 0) for p in (f.train, f.val, f.test))


def test_folds_test_sets_match_sklearn_and_seed() -> None:
    y = _labels(30, 20, seed=3)
    folds = stratified_folds(y, n_splits=5, seed=7)
    reference = StratifiedKFold(n_splits=5, shuffle=True, random_state=7).split(np.zeros(len(y)), y)
    for fold, (_, test) in zip(folds, reference):
        assert np.array_equal(fold.test, np.sort(test))
    again = stratified_folds(y, n_splits=5, seed=7)
    assert all(np.array_equal(a.val, b.val) and np.array_equal(a.test, b.test) for a, b in zip(folds, again))
    other = stratified_folds(y, n_splits=5, seed=8)
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(folds, other))


def test_folds_reject_bad_labels() -> None:
    with pytest.raises(InputError, match=r"class 1 \(patient\) has 9 subject\(s\), fewer than n_splits=10"):
        stratified_folds(_labels(30, 9), n_splits=10)
    with pytest.raises(InputError, match="binary"):
        stratified_folds([0, 1, 2] * 10, n_splits=3)
    with pytest.raises(InputError, match=r"class 1 \(patient\) has 0"):
        stratified_folds([0] * 20, n_splits=3)
    with pytest.raises(ConfigError, match="val_fraction"):
        stratified_folds(_labels(20, 20), val_fraction=1.0)


def test_folds_save_load_round_trip(tmp_path) -> None:
    y = _labels(15, 15)
    ids = [f"s{i:02d}" for i in range(len(y))]
    folds = stratified_folds(y, n_splits=3, seed=1)
    path = save_folds(tmp_path / "splits.json", folds, ids, seed=1)
    data = json.loads(path.read_text())
    assert data["seed"] == 1 and data["subject_ids"] == ids
    assert data["folds"][0]["test_ids"] == [ids[i] for i in folds[0].test]
    loaded = load_folds(path, subject_ids=ids)
    for a, b in zip(folds, loaded):
        assert isinstance(b, Fold)
        assert all(np.array_equal(getattr(a, p), getattr(b, p)) for p in ("train", "val", "test"))
    with pytest.raises(InputError, match="other subjects"):
        load_folds(path, subject_ids=ids[::-1])
    data["folds"][0]["val"].append(int(folds[0].test[0]))
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="more than one of train/val/test"):
        load_folds(tmp_path / "bad.json")
    with pytest.raises(InputError, match="does not exist"):
        load_folds(tmp_path / "missing.json")
