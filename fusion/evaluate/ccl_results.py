"""The results of a gCAM-CCL run, aggregated over its splits, with the statistics to read them by.

``results.json`` holds, first, the ``verdict``: whether the network's maps may be read as findings.
They may not when gCAM-CCL is at chance (label-permutation p > 0.05 on its test predictions) or
when the best linear baseline, fitted on the same training subjects and scored on the same test
subjects, lies above the upper end of gCAM-CCL's 95% bootstrap CI. Then come the metrics (mean
over splits, SD, CI, p), the baselines' figures and every split's own.

The linear baselines here are the two rows of Table III that cost seconds: ``SVM`` (linear C-SVC
on the standardised concatenated inputs, solved on their Gram matrix, the same objective as
:class:`fusion.evaluate.classifiers.LinearSVM`; its p-value refits it on permuted training
labels) and ``Logist`` (L2 logistic regression; p from permuting its fixed test predictions).

Each view is judged on its own too (``verdict["views"]``): the collaborative layer keeps one softmax
per view, so a view's test accuracy and its permutation p come from the same predictions file. A
fused model can beat chance on its SNPs alone while its FC view learned nothing; the FC view's
Grad-CAM maps then describe noise, and its edges are marked not interpretable
(``verdict["features"]``) even though the SNPs may be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusion import io
from fusion.evaluate.statistics import interpretability, split_summary

__all__ = ["METRIC_KEYS", "VIEW_FEATURES", "feature_verdicts", "linear_baselines", "gram_svm", "view_verdicts",
           "write_run_results"]

METRIC_KEYS = ("accuracy", "sensitivity", "specificity", "f1", "auc")

#: the significant features each view's maps produce (the keys of ``significant_features.json``)
VIEW_FEATURES = {"fc": "edges", "snp": "snps"}


def gram_svm(K_fit: np.ndarray, y_fit: np.ndarray, K_test: np.ndarray, C: float = 1.0
             ) -> tuple[np.ndarray, np.ndarray]:
    """Linear C-SVC from Gram matrices: ``K_fit = X_fit X_fit^T``, ``K_test = X_test X_fit^T``.

    Returns:
        ``(predicted labels, decision values)`` of the test subjects.
    """
    from sklearn.svm import SVC

    svc = SVC(kernel="precomputed", C=C).fit(K_fit, y_fit)
    return svc.predict(K_test), svc.decision_function(K_test)


def linear_baselines(
    dataset: Any,
    splits: Sequence[dict[str, np.ndarray]],
    C: float = 1.0,
    logistic_C: float = 1.0,
    n_perm: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """SVM and Logist on every split: predictions, scores and the SVM's refit null accuracies.

    Args:
        dataset: a :class:`fusion.data.ccl_dataset.CCLDataset` (refitted per split on ``train``).
        splits: per split ``{"train", "valid", "test"}`` index arrays; the baselines are fitted on
            train + valid (they need no early stopping) and scored on test.
        C, logistic_C: regularisation of the SVM and of the logistic regression.
        n_perm: refits of the SVM on permuted training labels per split (0: none).

    Returns:
        ``{"SVM": {"splits": [(y, pred, score)], "null": (n_perm, n_splits)}, "Logist": {...}}``.
    """
    from sklearn.linear_model import LogisticRegression
    from tqdm import tqdm

    from fusion.evaluate.baselines import _scaled, concat_features

    out: dict[str, dict[str, Any]] = {"SVM": {"splits": [], "null": []}, "Logist": {"splits": []}}
    rng = np.random.default_rng(seed)
    for split in tqdm(splits, desc="linear baselines", unit="split", leave=False):
        train, test = np.asarray(split["train"], dtype=int), np.asarray(split["test"], dtype=int)
        fit_idx = np.concatenate([train, np.asarray(split["valid"], dtype=int)])
        dataset.fit(train)
        fc, snps, y = dataset.arrays()
        X = concat_features(fc, snps)
        X_fit, X_test = _scaled(X[fit_idx], X[test])  # as Table III's rows: the same fits
        F64, T64 = X_fit.astype(np.float64), X_test.astype(np.float64)
        K_fit, K_test = F64 @ F64.T, T64 @ F64.T
        pred, score = gram_svm(K_fit, y[fit_idx], K_test, C)
        out["SVM"]["splits"].append((y[test], pred, score))
        out["SVM"]["null"].append([float(np.mean(gram_svm(K_fit, rng.permutation(y[fit_idx]), K_test, C)[0] == y[test]))
                                   for _ in range(n_perm)])
        logit = LogisticRegression(C=logistic_C, max_iter=5000).fit(X_fit, y[fit_idx])
        out["Logist"]["splits"].append((y[test], logit.predict(X_test), logit.decision_function(X_test)))
    out["SVM"]["null"] = np.asarray(out["SVM"]["null"]).T
    return out


def _summary(splits: list, n_boot: int, n_perm: int, seed: int, null: np.ndarray | None = None) -> dict:
    summary = split_summary(splits, n_boot, n_perm, seed)
    summary["accuracy_p_kind"] = "permuted test predictions"
    if null is not None and null.size:
        mean_null = null.mean(axis=1)
        summary["accuracy_p"] = float((1 + np.sum(mean_null >= summary["accuracy"] - 1e-12)) / (1 + len(mean_null)))
        summary["accuracy_p_kind"] = "refitted on permuted training labels"
    summary["accuracy_folds"] = [float(np.mean(y == p)) for y, p, _ in splits]
    return summary


def _stage_predictions(logdir: Path, stage: str, positive: str) -> tuple | None:
    import pandas as pd

    path = logdir / stage / "test_predictions.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    return frame["label"].to_numpy(), frame["predicted"].to_numpy(), frame[f"prob_{positive}"].to_numpy()


def view_verdicts(frames: Sequence[Any], positive: str, n_boot: int = 2000, n_perm: int = 1000,
                  seed: int = 0, alpha: float = 0.05, class_names: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Each view's own test accuracy over the splits, with its CI, permutation p and verdict.

    Args:
        frames: one ``test_predictions.csv`` table per split, with ``label`` and a column
            ``prob_<positive>_<view>`` per view (two classes: a view predicts ``positive`` when its
            probability is at least 0.5).
        positive: the positive class name.
        class_names: every class name: ``prob_<class>`` columns are class probabilities, never
            views (a negative class named ``<positive>_x`` would otherwise look like view ``x``).

    Returns:
        ``{view: {"accuracy", "accuracy_ci", "accuracy_p", "auc", "interpretable", "reasons"}}``;
        empty when the tables have no per-view columns.
    """
    prefix = f"prob_{positive}_"
    classes = {f"prob_{c}" for c in class_names}
    views = [c[len(prefix):] for c in frames[0].columns if c.startswith(prefix) and c not in classes] if frames else []
    out: dict[str, dict[str, Any]] = {}
    for view in views:
        column = prefix + view
        if not all(column in f.columns for f in frames):
            continue
        splits = [(f["label"].to_numpy(), (f[column].to_numpy() >= 0.5).astype(int), f[column].to_numpy())
                  for f in frames]
        stats = split_summary(splits, n_boot, n_perm, seed)
        verdict = interpretability(f"the {view} view alone", stats["accuracy"], stats["accuracy_ci"],
                                   stats["accuracy_p"], alpha=alpha)
        out[view] = {**{k: stats[k] for k in ("accuracy", "accuracy_ci", "accuracy_p", "auc") if k in stats},
                     "interpretable": verdict["interpretable"], "reasons": verdict["reasons"]}
    return out


def feature_verdicts(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Whether each kind of significant feature may be read: the model's verdict and, for the
    view that produces it (:data:`VIEW_FEATURES`), that view's own.

    Returns:
        ``{"edges": {"interpretable": bool, "reasons": [...]}, "snps": {...}}``.
    """
    views = verdict.get("views") or {}
    out = {}
    for view, feature in VIEW_FEATURES.items():
        reasons = list(verdict.get("reasons", []))
        own = views.get(view)
        if own is not None and not own.get("interpretable", True):
            reasons += own.get("reasons", [])
        out[feature] = {"interpretable": bool(verdict.get("interpretable")) and not reasons, "reasons": reasons}
    return out


def write_run_results(
    logdir: str | Path,
    stages: list[str],
    config: dict | None = None,
    baselines: dict[str, dict[str, Any]] | None = None,
    n_boot: int = 2000,
    n_perm: int = 1000,
    seed: int = 0,
) -> dict:
    """Aggregate the stages' ``result.json`` into ``logdir/results.json`` (and the root
    ``test_predictions.csv``); returns the results.

    Args:
        logdir: the run directory.
        stages: stage names to look for (``fold_00`` ...); missing ones are skipped.
        config: run information stored under ``config`` (data/model/criterion nodes, seed, the
            test checkpoint name).
        baselines: the output of :func:`linear_baselines` on the same stages, or None.
        n_boot, n_perm, seed: bootstrap resamples and permutations of the statistics.
    """
    import pandas as pd

    logdir = Path(logdir)
    folds = [(s, io.read_json(logdir / s / "result.json")) for s in stages if (logdir / s / "result.json").is_file()]
    if not folds:
        return {}
    first = folds[0][1]
    results: dict[str, Any] = {"verdict": None}
    for key in METRIC_KEYS:
        values = [f[key] for _, f in folds]
        results[key] = float(np.mean(values))
        results[f"{key}_std"] = float(np.std(values))
    predictions = [_stage_predictions(logdir, s, first["positive_class"]) for s, _ in folds]
    if all(p is not None for p in predictions):
        stats = _summary(predictions, n_boot, n_perm, seed)
        results.update({k: stats[k] for k in ("accuracy_ci", "accuracy_p", "auc_ci", "auc_p") if k in stats})
        results["statistics"] = {"n_boot": n_boot, "n_perm": n_perm, "ci": "95% stratified bootstrap of the test "
                                 "subjects of every split, mean over splits", "p": "labels permuted within "
                                 "every split against the fixed test predictions"}
        base_stats = {name: _summary(b["splits"], n_boot, n_perm, seed, b.get("null"))
                      for name, b in (baselines or {}).items() if len(b["splits"]) == len(folds)}
        if base_stats:
            results["baselines"] = base_stats
        results["verdict"] = interpretability(
            "gCAM-CCL", results["accuracy"], results["accuracy_ci"], results["accuracy_p"],
            {name: b["accuracy"] for name, b in base_stats.items()})
        if len(first["class_names"]) == 2:
            frames = [pd.read_csv(logdir / s / "test_predictions.csv") for s, _ in folds]
            results["verdict"]["views"] = view_verdicts(frames, first["positive_class"], n_boot, n_perm, seed,
                                                       class_names=first["class_names"])
        results["verdict"]["features"] = feature_verdicts(results["verdict"])
    else:
        results.pop("verdict")
    results.update({
        "n_test": int(sum(f["n_test"] for _, f in folds)),
        "n_train": int(first["n_train"]),
        "n_val": int(first["n_val"]),
        "n_folds": len(folds),
        "class_names": first["class_names"],
        "positive_class": first["positive_class"],
        "folds": [{"stage": s, **{k: f[k] for k in (*METRIC_KEYS, "n_test", "epochs", "checkpoint")}}
                  for s, f in folds],
    })
    recs = [f["recovery"] for _, f in folds if isinstance(f.get("recovery"), dict)]
    if recs:
        keys = [k for k in recs[0] if all(isinstance(r.get(k), (int, float)) for r in recs)]
        results["recovery"] = {k: float(np.mean([r[k] for r in recs])) for k in keys}
    if (logdir / "splits.json").is_file():
        results["splits"] = "splits.json"
    frames = []
    for s, _ in folds:
        path = logdir / s / "test_predictions.csv"
        if path.is_file():
            frame = pd.read_csv(path)
            frame.insert(0, "stage", s)
            frames.append(frame)
    if frames:
        io.write_csv(logdir / "test_predictions.csv", pd.concat(frames, ignore_index=True))
    if config:
        results["config"] = config
    io.write_json(logdir / "results.json", results)
    return results
