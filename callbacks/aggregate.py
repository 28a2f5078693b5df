"""Collect the folds' results into the run's ``results.json``."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from catalyst.core import Callback, CallbackOrder, CallbackScope

from fusion.errors import InputError
from fusion.io import read_json, write_json
from runners.base import is_main_process

LOGGER = logging.getLogger(__name__)

_FOLD_DIR = re.compile(r"fold_(\d+)$")


def aggregate_results(logdir: str | Path, metric: str = "auc") -> dict[str, Any] | None:
    """Mean and spread of ``metric`` over every ``fold_XX/result.json`` in ``logdir``.

    Folds trained by separate jobs into the same folder are all counted.

    Returns:
        ``{"<metric>_mean", "<metric>_std" (population std over folds), "<metric>" (per fold),
        "folds" (stage names), "n_folds", "latent_dim", "n_subjects"}``, or None when no fold has a
        result yet.

    Raises:
        InputError: a result without ``metric``, or folds that disagree on the latent size or
            the number of subjects (results of different runs mixed in one folder).
    """
    logdir = Path(logdir)
    entries = []
    for path in sorted(logdir.glob("fold_*/result.json")):
        match = _FOLD_DIR.match(path.parent.name)
        if match is None:
            continue
        result = read_json(path)
        if metric not in result:
            raise InputError(f"{path} has no '{metric}' entry")
        entries.append((int(match.group(1)), path.parent.name, result))
    if not entries:
        return None
    entries.sort()
    summary: dict[str, Any] = {}
    values = np.asarray([float(r[metric]) for _, _, r in entries])
    summary[f"{metric}_mean"] = float(values.mean())
    summary[f"{metric}_std"] = float(values.std())
    summary[metric] = values.tolist()
    summary["folds"] = [name for _, name, _ in entries]
    summary["n_folds"] = len(entries)
    for key in ("latent_dim", "n_subjects"):
        seen = {r.get(key) for _, _, r in entries}
        if len(seen) > 1:
            raise InputError(f"fold results in {logdir} disagree on {key} ({sorted(seen, key=str)}): "
                             "results of different runs share this folder")
        summary[key] = seen.pop()
    return summary


class ResultsAggregationCallback(Callback):
    """At the end of the run: ``<logdir>/results.json`` from every fold's ``result.json``.

    ``results.json`` holds ``auc_mean``, ``auc_std``, ``auc`` (per fold), ``folds``, ``n_folds``,
    ``n_splits``, ``complete`` (every fold present), ``latent_dim``, ``seed``, ``n_subjects``.
    Folds run as separate jobs into one folder are all counted, so the last job to finish writes
    the complete summary. Nothing is written after a failed run. Experiment-scoped: the config
    runner calls it once, in the launching process (never once per DDP rank).

    Args:
        n_splits: folds the run defines (to report completeness); None: unknown.
        seed: the run's seed to record; None uses ``runner.seed``.
        metric: the per-fold metric to aggregate.
        logdir: the run's folder; None uses ``runner.logdir``.
        filename: output file inside ``logdir``.
        statistics: ``{"n_boot", "n_perm", "pca_components", "alpha", "seed"}``: pooled AUC with a
            bootstrap CI, an SVM label-permutation p-value and the PCA baselines on the same folds
            (:func:`fusion.evaluate.run_statistics.statistics_for_run`), written under
            ``statistics`` with the verdict as ``interpretable`` / ``flags``; None: skipped.
        svm: :class:`~fusion.evaluate.classifiers.LinearSVM` keyword arguments (the run's SVM).
        confounds: the run's ``confounds`` node (the baselines get the same adjustment).
    """

    def __init__(
        self,
        n_splits: int | None = None,
        seed: int | None = None,
        metric: str = "auc",
        logdir: str | Path | None = None,
        filename: str = "results.json",
        statistics: dict | None = None,
        svm: dict | None = None,
        confounds: dict | None = None,
    ):
        super().__init__(order=CallbackOrder.external_extra + 20, scope=CallbackScope.experiment)
        self.n_splits = n_splits
        self.seed = seed
        self.metric = metric
        self.logdir = logdir
        self.filename = filename
        self.statistics = None if statistics is None else dict(statistics)
        self.svm = dict(svm or {})
        self.confounds = None if confounds is None else dict(confounds)

    def _statistics(self, runner: Any, logdir: Path) -> dict[str, Any]:
        from fusion.evaluate.classifiers import LinearSVM
        from fusion.evaluate.run_statistics import statistics_for_run

        st = self.statistics or {}
        svm = {k: self.svm[k] for k in ("C", "backend", "max_iter", "tol", "standardize") if k in self.svm}
        dataset = getattr(runner, "dataset", None)
        return statistics_for_run(
            logdir, lambda: LinearSVM(**svm), prepared_dir=getattr(dataset, "prepared_dir", None),
            table=getattr(dataset, "index_table", None), confounds=self.confounds,
            n_boot=int(st.get("n_boot", 2000)), n_perm=int(st.get("n_perm", 200)),
            components=[int(c) for c in (st.get("pca_components") or [])], seed=int(st.get("seed", 0)),
            alpha=float(st.get("alpha", 0.05)))

    def on_experiment_end(self, runner: Any) -> None:
        """Aggregate and write, unless the run failed or this is not the main process."""
        if getattr(runner, "exception", None) is not None or not is_main_process(runner.engine):
            return
        logdir = Path(self.logdir if self.logdir is not None else runner.logdir)
        summary = aggregate_results(logdir, self.metric)
        if summary is None:
            LOGGER.warning("no fold_*/result.json in %s: %s not written", logdir, self.filename)
            return
        summary["n_splits"] = self.n_splits
        summary["complete"] = self.n_splits is not None and summary["n_folds"] == self.n_splits
        summary["seed"] = self.seed if self.seed is not None else getattr(runner, "seed", None)
        if self.statistics is not None:
            from fusion.errors import InputError

            try:
                stats = self._statistics(runner, logdir)
            except Exception as exc:  # e.g. a sweep finished elsewhere, its prepared folder gone
                err = exc
                while err is not None and not isinstance(err, InputError):  # Hydra wraps the data error
                    err = err.__cause__ or err.__context__
                if err is None:
                    raise
                stats = None
                LOGGER.warning("statistics of %s skipped: %s", logdir, err)
                summary = {"interpretable": None, "flags": [f"statistics not computed: {err}"], **summary,
                           "statistics": {"skipped": str(err)}}
        if self.statistics is not None and stats is not None:
            # the verdict first, so that a reader of results.json sees it before any number
            summary = {"interpretable": stats["verdict"]["interpretable"], "flags": stats["verdict"]["reasons"],
                       **summary, "statistics": stats}
            for reason in stats["verdict"]["reasons"]:
                print(f"WARNING: {reason}: importance and group maps are not interpretable", flush=True)
        write_json(logdir / self.filename, summary)
        mean, std = summary[f"{self.metric}_mean"], summary[f"{self.metric}_std"]
        print(f"{self.metric}: {mean:.3f} +- {std:.3f} over {summary['n_folds']} fold(s) -> "
              f"{logdir / self.filename}", flush=True)


__all__ = ["ResultsAggregationCallback", "aggregate_results"]
