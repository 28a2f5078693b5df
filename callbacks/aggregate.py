"""Collect the folds' results into the run's ``results.json``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from catalyst.core import Callback, CallbackOrder, CallbackScope

from fusion.evaluate.aggregate import aggregate_results
from fusion.io import write_json
from fusion_runners.base import is_main_process

LOGGER = logging.getLogger(__name__)


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
                err: BaseException | None = exc
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


__all__ = ["ResultsAggregationCallback"]
