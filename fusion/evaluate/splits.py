"""A stratified train/validation/test split (gCAM-CCL: 70/15/15) returned as one fold.

Every class must appear in every part: a split that leaves a class out of the validation or test
set cannot score that class and is refused with an error naming the part and the class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fusion.data.folds import Fold
from fusion.errors import ConfigError, InputError


def stratified_holdout(
    labels: Sequence[int] | np.ndarray,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 42,
    class_names: Sequence[str] | None = None,
) -> Fold:
    """Split subjects into train/val/test, each stratified by label.

    Per class, ``round(frac * n_class)`` subjects go to val and test (the rest to train), drawn with
    a seeded permutation, so class proportions are preserved up to rounding.

    Args:
        labels: ``(n,)`` integer labels.
        fractions: (train, val, test) fractions, summing to 1.
        seed: seed of the permutation.
        class_names: names used in error messages.

    Returns:
        A :class:`fusion.data.folds.Fold` of sorted index arrays.
    """
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or (fr <= 0).any() or abs(fr.sum() - 1) > 1e-6:
        raise ConfigError(f"split fractions must be three positive numbers summing to 1, got {list(fractions)}")
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise InputError(f"labels must be a non-empty 1D array, got shape {y.shape}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    classes = np.unique(y)
    for cls in classes:
        idx = rng.permutation(np.flatnonzero(y == cls))
        n = len(idx)
        n_val = int(round(fr[1] * n))
        n_test = int(round(fr[2] * n))
        parts["val"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    out = {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}
    for part, idx in out.items():
        present = set(y[idx].tolist())
        for cls in classes:
            if cls not in present:
                name = class_names[int(cls)] if class_names is not None else str(cls)
                n_cls = int((y == cls).sum())
                raise InputError(
                    f"split: the {part} set has no subject of class {cls} ({name}); that class has only "
                    f"{n_cls} subject(s) for fractions {fr.tolist()} (add subjects or change the fractions)"
                )
    return Fold(out["train"], out["val"], out["test"])
