"""Stratified cross-validation folds over subjects, with a stratified validation split.

Each subject is in the test set of exactly one fold (scikit-learn ``StratifiedKFold``); the rest
of that fold is split, stratified again, into training and validation (``val_fraction`` of it),
as in Geenjaar et al. 2021 (10 folds, validation = 10% of each training set).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion import io
from fusion.errors import ConfigError, InputError

CLASS_NAMES: dict[int, str] = {0: "control", 1: "patient"}


@dataclass(frozen=True)
class Fold:
    """Subject indices (positions in the cohort's index) of one fold, each sorted.

    Args:
        train: ``(n_train,)`` int64.
        val: ``(n_val,)`` int64.
        test: ``(n_test,)`` int64.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _as_binary(labels: Sequence[int] | np.ndarray, where: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise InputError(f"{where}: expected a 1D array of 0/1 labels, got shape {y.shape}")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise InputError(
            f"{where}: labels must be binary 0 (control) / 1 (patient); found values {sorted(values, key=str)}"
        )
    return y.astype(np.int64)


def check_class_counts(labels: Sequence[int] | np.ndarray, n_splits: int, where: str = "labels") -> np.ndarray:
    """Check that ``labels`` are binary and each class has at least ``n_splits`` subjects.

    Returns:
        The labels as int64.
    """
    if int(n_splits) < 2:
        raise ConfigError(f"n_splits must be >= 2, got {n_splits}")
    y = _as_binary(labels, where)
    for cls in (0, 1):
        count = int((y == cls).sum())
        if count < n_splits:
            raise InputError(f"{where}: class {cls} ({CLASS_NAMES[cls]}) has {count} subject(s), fewer than "
                             f"n_splits={n_splits}; expected at least {n_splits} per class for stratified "
                             "cross-validation (lower n_splits or add subjects)")
    return y


def stratified_folds(
    labels: Sequence[int] | np.ndarray,
    n_splits: int = 10,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> list[Fold]:
    """Stratified ``n_splits``-fold split with a stratified validation set per fold.

    Args:
        labels: ``(n_subjects,)`` 0/1 labels.
        n_splits: number of folds; each class needs at least this many subjects.
        val_fraction: fraction of each fold's training subjects held out for validation
            (rounded up, at least one per class).
        seed: seed of both the fold assignment and the validation splits.

    Returns:
        ``n_splits`` folds; every subject is in exactly one test set.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if not 0 < float(val_fraction) < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    y = check_class_counts(labels, n_splits)
    splitter = StratifiedKFold(n_splits=int(n_splits), shuffle=True, random_state=seed)
    folds = []
    for k, (train_all, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        n_val = max(int(np.ceil(val_fraction * len(train_all))), 2)
        if n_val >= len(train_all) - 1:
            raise InputError(f"fold {k}: {len(train_all)} training subjects cannot give a validation set of {n_val} "
                             f"(val_fraction={val_fraction}); add subjects or lower val_fraction")
        train, val = train_test_split(train_all, test_size=n_val, stratify=y[train_all], random_state=seed + k)
        folds.append(Fold(np.sort(train).astype(np.int64), np.sort(val).astype(np.int64),
                          np.sort(test).astype(np.int64)))
    return folds


def save_folds(path: str | Path, folds: Sequence[Fold], subject_ids: Sequence[str], seed: int | None = None) -> Path:
    """Write folds as JSON: indices and subject ids of train/val/test per fold, and the seed.

    Args:
        path: destination (e.g. ``logdir/splits.json``), written atomically.
        folds: the folds.
        subject_ids: ``(n_subjects,)`` ids, in the order the indices refer to.
        seed: the seed the folds were drawn with (recorded, not used).
    """
    ids = [str(s) for s in subject_ids]
    payload = {
        "n_splits": len(folds),
        "seed": seed,
        "n_subjects": len(ids),
        "subject_ids": ids,
        "folds": [
            {
                "fold": k,
                **{part: getattr(f, part).astype(int).tolist() for part in ("train", "val", "test")},
                **{f"{part}_ids": [ids[i] for i in getattr(f, part)] for part in ("train", "val", "test")},
            }
            for k, f in enumerate(folds)
        ],
    }
    return io.write_json(path, payload)


def load_folds(path: str | os.PathLike, subject_ids: Sequence[str] | None = None) -> list[Fold]:
    """Read folds written by :func:`save_folds`.

    Args:
        path: the JSON file.
        subject_ids: when given, the ids the folds must refer to (same ids, same order);
            a mismatch means the folds belong to another cohort.

    Raises:
        InputError: unreadable file, missing keys, indices out of range or overlapping, or ids
            that differ from ``subject_ids``.
    """
    path = Path(path)
    try:
        data = io.read_json(path)
        ids = [str(s) for s in data["subject_ids"]]
        raw = data["folds"]
        folds = [Fold(*(np.asarray(f[part], dtype=np.int64) for part in ("train", "val", "test"))) for f in raw]
    except FileNotFoundError as err:
        raise InputError(f"folds file {path} does not exist") from err
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(
            f"folds file {path} is not a folds JSON written by save_folds ({type(err).__name__}: {err})"
        ) from err
    n = len(ids)
    for k, fold in enumerate(folds):
        parts = (fold.train, fold.val, fold.test)
        every = np.concatenate(parts)
        if every.size and (every.min() < 0 or every.max() >= n):
            raise InputError(f"folds file {path}: fold {k} has subject indices outside 0..{n - 1}")
        if len(np.unique(every)) != every.size:
            raise InputError(f"folds file {path}: fold {k} puts a subject in more than one of train/val/test")
    if subject_ids is not None and [str(s) for s in subject_ids] != ids:
        raise InputError(f"folds file {path} was made for other subjects ({n} ids, first {ids[:3]}); expected the "
                         f"{len(subject_ids)} subjects of this cohort (first {list(subject_ids)[:3]})")
    return folds
