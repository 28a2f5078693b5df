"""Table III of Hu et al. 2021: classical and deep baselines beside gCAM-CCL, same test subjects.

Inputs of the classical baselines are the concatenated views: the upper triangle of the FC matrix
(``R (R - 1) / 2`` values, 34,716 for Power-264) followed by the SNP codes. Every baseline is fit
on the training and validation subjects of a split (they have no early stopping to feed) and
scored on its test subjects with :func:`fusion.evaluate.metrics.binary_metrics`.

Rows (names as in the paper): ``SVM`` (linear), ``RF`` (random forest), ``DT`` (decision tree),
``Logist`` (L2 logistic regression), ``MLP+SVM`` (a one-hidden-layer perceptron trained on the
inputs, then a linear SVM on its hidden activations), ``CCL+SVM`` and ``CCL+RF`` (SVM / random
forest on the trained collaborative network's view representations, i.e. the input of its
collaborative layer), and ``gCAM-CCL`` (the network's own mean-of-views softmax).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusion.errors import ConfigError

log = logging.getLogger(__name__)

ROWS = ("gCAM-CCL", "CCL+SVM", "CCL+RF", "MLP+SVM", "SVM", "DT", "RF", "Logist")
METRICS = ("accuracy", "sensitivity", "specificity", "f1")


@dataclass
class BaselineSettings:
    """Hyper-parameters of the baselines (paper: not given; scikit-learn-like defaults).

    Attributes:
        svm_C: C of the linear SVMs.
        rf_trees: trees of the random forests.
        dt_max_depth: depth limit of the decision tree (None: grow fully).
        logistic_C: inverse L2 strength of the logistic regression.
        mlp_hidden: hidden units of the MLP.
        mlp_alpha: L2 penalty of the MLP.
        mlp_max_iter: epochs of the MLP (Adam, early stopping off).
        standardize: z-score every feature with training statistics (classical rows).
        seed: random_state of the stochastic models.
        n_jobs: parallel jobs for the random forests.
    """

    svm_C: float = 1.0
    rf_trees: int = 300
    dt_max_depth: int | None = None
    logistic_C: float = 1.0
    mlp_hidden: int = 128
    mlp_alpha: float = 1e-3
    mlp_max_iter: int = 200
    standardize: bool = True
    seed: int = 42
    n_jobs: int = 1
    extra: dict = field(default_factory=dict)


def concat_features(fc: np.ndarray, snps: np.ndarray) -> np.ndarray:
    """Upper triangle (k=1) of each FC matrix followed by the SNPs.

    Args:
        fc: ``(n, R, R)``.
        snps: ``(n, P)``.

    Returns:
        ``(n, R (R - 1) / 2 + P)`` float32.
    """
    fc = np.asarray(fc)
    if fc.ndim != 3 or fc.shape[1] != fc.shape[2]:
        raise ConfigError(f"fc must have shape (n, R, R), got {fc.shape}")
    iu = np.triu_indices(fc.shape[1], k=1)
    return np.concatenate([fc[:, iu[0], iu[1]], np.asarray(snps).reshape(len(fc), -1)], axis=1).astype(np.float32)


def _scaled(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean = train.mean(axis=0)
    sd = train.std(axis=0)
    sd[sd == 0] = 1.0
    return [(x - mean) / sd for x in (train, *others)]


def _linear_svm(settings: BaselineSettings):
    from fusion.evaluate.classifiers import LinearSVM

    return LinearSVM(C=settings.svm_C, backend="auto")


def _mlp_hidden_features(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                         settings: BaselineSettings) -> tuple[np.ndarray, np.ndarray]:
    """Train an MLP on the inputs; return the ReLU hidden activations of train and test."""
    from sklearn.neural_network import MLPClassifier

    mlp = MLPClassifier(hidden_layer_sizes=(settings.mlp_hidden,), alpha=settings.mlp_alpha,
                        max_iter=settings.mlp_max_iter, random_state=settings.seed)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(X_train, y_train)
    w, b = mlp.coefs_[0], mlp.intercepts_[0]
    return np.maximum(X_train @ w + b, 0), np.maximum(X_test @ w + b, 0)


def classical_baselines(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                        settings: BaselineSettings | None = None) -> dict[str, np.ndarray]:
    """Predicted test labels of SVM, RF, DT, Logist and MLP+SVM on the concatenated inputs."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    s = settings or BaselineSettings()
    if s.standardize:
        X_train, X_test = _scaled(X_train, X_test)
    preds: dict[str, np.ndarray] = {}
    log.info("baseline SVM on %s features", X_train.shape[1])
    # the linear C-SVC through the Gram matrix: results.json's SVM verdict row is the same fit
    from fusion.evaluate.ccl_results import gram_svm

    X64, T64 = np.asarray(X_train, np.float64), np.asarray(X_test, np.float64)
    preds["SVM"] = gram_svm(X64 @ X64.T, y_train, T64 @ X64.T, s.svm_C)[0]
    log.info("baseline RF")
    preds["RF"] = RandomForestClassifier(n_estimators=s.rf_trees, random_state=s.seed, n_jobs=s.n_jobs) \
        .fit(X_train, y_train).predict(X_test)
    log.info("baseline DT")
    preds["DT"] = DecisionTreeClassifier(max_depth=s.dt_max_depth, random_state=s.seed) \
        .fit(X_train, y_train).predict(X_test)
    log.info("baseline logistic regression")
    preds["Logist"] = LogisticRegression(C=s.logistic_C, max_iter=5000).fit(X_train, y_train).predict(X_test)
    log.info("baseline MLP+SVM")
    h_train, h_test = _mlp_hidden_features(X_train, y_train, X_test, s)
    h_train, h_test = _scaled(h_train, h_test)
    preds["MLP+SVM"] = _linear_svm(s).fit(h_train, y_train).predict(h_test)
    return preds


def ccl_feature_baselines(Z_train: np.ndarray, y_train: np.ndarray, Z_test: np.ndarray,
                          settings: BaselineSettings | None = None) -> dict[str, np.ndarray]:
    """Predicted test labels of CCL+SVM and CCL+RF on the network's view representations."""
    from sklearn.ensemble import RandomForestClassifier

    s = settings or BaselineSettings()
    Zs_train, Zs_test = _scaled(Z_train, Z_test)
    return {
        "CCL+SVM": _linear_svm(s).fit(Zs_train, y_train).predict(Zs_test),
        "CCL+RF": RandomForestClassifier(n_estimators=s.rf_trees, random_state=s.seed, n_jobs=s.n_jobs)
        .fit(Z_train, y_train).predict(Z_test),
    }


def ccl_representations(
    model: Any, fc: np.ndarray, snps: np.ndarray, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """View representations ``(n, sum d_i)`` and mean-of-views probabilities ``(n, C)`` of a
    trained ``CollaborativeNet`` (eval mode, CPU)."""
    import torch

    from fusion.models.ccl import mean_of_views

    model.eval()
    feats, probs = [], []
    with torch.no_grad():
        for k in range(0, len(fc), batch_size):
            x_fc = torch.from_numpy(np.ascontiguousarray(fc[k:k + batch_size], dtype=np.float32))[:, None]
            x_snp = torch.from_numpy(np.ascontiguousarray(snps[k:k + batch_size], dtype=np.float32))[:, None]
            reps = model.representations(x_fc, x_snp)
            feats.append(torch.cat(reps, dim=1).numpy())
            logits = torch.stack([model.collab[n](z) for n, z in zip(model.view_names, reps)], dim=1)
            probs.append(mean_of_views(logits).numpy())
    return np.concatenate(feats), np.concatenate(probs)


def build_from_config(node: Any) -> Any:
    """Instantiate a ``{"_target_": "module.Class", ...}`` config node recursively (no Hydra).

    Used to rebuild a run's dataset and model from the nodes recorded in its ``results.json``.
    """
    if isinstance(node, Mapping):
        if "_target_" in node:
            module_name, _, attr = str(node["_target_"]).rpartition(".")
            try:
                target = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as err:
                raise ConfigError(f"cannot import {node['_target_']!r}: {err}") from err
            kwargs = {k: build_from_config(v) for k, v in node.items() if not str(k).startswith("_")}
            return target(**kwargs)
        return {k: build_from_config(v) for k, v in node.items()}
    if isinstance(node, list):
        return [build_from_config(v) for v in node]
    return node


def score_rows(y_test: np.ndarray, predictions: Mapping[str, np.ndarray]) -> list[dict]:
    """One Table III row per method: accuracy, sensitivity, specificity, F1 (positive class 1)."""
    from fusion.evaluate.metrics import binary_metrics

    rows = []
    for name in [r for r in ROWS if r in predictions] + [r for r in predictions if r not in ROWS]:
        m = binary_metrics(y_test, np.asarray(predictions[name]).astype(int))
        rows.append({"method": name, **{k: float(m[k]) for k in METRICS}, "n_test": int(len(y_test))})
    return rows
