"""At the end of a VAE run: importance, t-SNE, group maps, recovery scores and ``report.md``."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from catalyst.core import Callback, CallbackOrder, CallbackScope

from fusion.errors import FusionError
from fusion.workflows.vae_analysis import VAEAnalysisSettings
from fusion_runners.base import is_main_process

LOGGER = logging.getLogger(__name__)


class VAEAnalysisCallback(Callback):
    """Run :func:`fusion.workflows.vae_analysis.analyze_vae_run` over the run directory once training,
    latent extraction, classification and result aggregation are done.

    Experiment-scoped and ordered after ``ResultsAggregationCallback`` (which rewrites
    ``results.json``), main process only, skipped after a failed run. The model of ``fold`` is
    rebuilt from the run's ``model`` config and that fold's ``best.pth``; the inputs come from the
    runner's dataset. When ``fold`` was not trained in this folder (``folds.only``), the lowest
    trained fold is used.

    Args:
        **settings: the fields of :class:`fusion.workflows.vae_analysis.VAEAnalysisSettings`
            (fold, top_k, percentile, t-SNE settings, seed, batch_size, device, cut_coords,
            mask_fraction); an unknown key is an error when the callback is built.
        strict: re-raise analysis errors; otherwise they are logged and written into the report
            (training results are never lost to a failing figure).
        logdir: run folder; None uses ``runner.logdir``.
    """

    def __init__(self, strict: bool = False, logdir: str | Path | None = None, **settings: Any):
        super().__init__(order=CallbackOrder.external_extra + 40, scope=CallbackScope.experiment)
        self.settings = VAEAnalysisSettings(**settings)
        self.strict = strict
        self.logdir = logdir

    def _fold(self, logdir: Path) -> int | None:
        from fusion.rundir import fold_dirs

        trained = [k for k, p in fold_dirs(logdir) if (p / "latents.npz").is_file()]
        if not trained:
            return None
        if self.settings.fold in trained:
            return self.settings.fold
        LOGGER.warning("fold %d has no latents in %s: analysing fold %d", self.settings.fold, logdir, trained[0])
        return trained[0]

    @staticmethod
    def _model_config(runner: Any) -> dict | None:
        cfg = getattr(runner, "cfg", None)
        if cfg is None:
            return None
        from omegaconf import OmegaConf

        node = OmegaConf.select(cfg, "model", default=None)
        # to_container of a DictConfig is a dict; omegaconf types it as any container
        return None if node is None else cast(dict, OmegaConf.to_container(node, resolve=True))

    def on_experiment_end(self, runner: Any) -> None:
        """Analyse and write the report, unless the run failed or this is not the main process."""
        if getattr(runner, "exception", None) is not None or not is_main_process(getattr(runner, "engine", None)):
            return
        from fusion.workflows.vae_analysis import analysis_error_report, analyze_vae_run

        logdir = Path(self.logdir if self.logdir is not None else runner.logdir)
        fold = self._fold(logdir)
        if fold is None:
            LOGGER.warning("no fold_XX/latents.npz in %s: VAE analysis skipped", logdir)
            return
        try:
            added = analyze_vae_run(
                logdir,
                replace(self.settings, fold=fold),
                model_config=self._model_config(runner),
                dataset=getattr(runner, "dataset", None),
            )
        except FusionError as exc:
            if self.strict:
                raise
            LOGGER.error("VAE analysis of %s failed: %s", logdir, exc)
            analysis_error_report(logdir, exc)
            return
        recovery = added.get("recovery", {})
        scores = ", ".join(f"{k} {recovery[k]:.3f}" for k in ("modality_recall", "map_correlation", "map_dice")
                           if isinstance(recovery.get(k), float))
        print(f"VAE analysis of fold {fold} -> {logdir / 'report.md'}" + (f" ({scores})" if scores else ""), flush=True)


__all__ = ["VAEAnalysisCallback"]
