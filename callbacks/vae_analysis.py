"""At the end of a VAE run: importance, t-SNE, group maps, recovery scores and ``report.md``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from catalyst.core import Callback, CallbackOrder, CallbackScope

from fusion.errors import FusionError
from runners.base import is_main_process

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
        fold: fold to interpret (the paper uses the first).
        top_k: modalities summed in the group-difference map.
        percentile: per-modality threshold percentile of ``|difference|``.
        tsne_perplexity, tsne_max_iter, tsne_max_subjects, tsne_backend: t-SNE settings.
        seed: t-SNE seed.
        batch_size: latents decoded at once.
        device: torch device for decoding (None: CUDA when present).
        cut_coords: axial cuts in the brain figures.
        mask_fraction: brain mask of the data, relative intensity threshold.
        strict: re-raise analysis errors; otherwise they are logged and written into the report
            (training results are never lost to a failing figure).
        logdir: run folder; None uses ``runner.logdir``.
    """

    def __init__(
        self,
        fold: int = 0,
        top_k: int = 5,
        percentile: float = 99.0,
        tsne_perplexity: float = 30.0,
        tsne_max_iter: int = 1000,
        tsne_max_subjects: int | None = None,
        tsne_backend: str = "auto",
        seed: int = 0,
        batch_size: int = 8,
        device: str | None = None,
        cut_coords: int = 7,
        mask_fraction: float = 1e-3,
        strict: bool = False,
        logdir: str | Path | None = None,
    ):
        super().__init__(order=CallbackOrder.external_extra + 40, scope=CallbackScope.experiment)
        self.fold = fold
        self.top_k = top_k
        self.percentile = percentile
        self.tsne_perplexity = tsne_perplexity
        self.tsne_max_iter = tsne_max_iter
        self.tsne_max_subjects = tsne_max_subjects
        self.tsne_backend = tsne_backend
        self.seed = seed
        self.batch_size = batch_size
        self.device = device
        self.cut_coords = cut_coords
        self.mask_fraction = mask_fraction
        self.strict = strict
        self.logdir = logdir

    def _fold(self, logdir: Path) -> int | None:
        from fusion.rundir import fold_dirs

        trained = [k for k, p in fold_dirs(logdir) if (p / "latents.npz").is_file()]
        if not trained:
            return None
        if self.fold in trained:
            return self.fold
        LOGGER.warning("fold %d has no latents in %s: analysing fold %d", self.fold, logdir, trained[0])
        return trained[0]

    @staticmethod
    def _model_config(runner: Any) -> dict | None:
        cfg = getattr(runner, "cfg", None)
        if cfg is None:
            return None
        from omegaconf import OmegaConf

        node = OmegaConf.select(cfg, "model", default=None)
        return None if node is None else OmegaConf.to_container(node, resolve=True)

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
                fold=fold,
                model_config=self._model_config(runner),
                dataset=getattr(runner, "dataset", None),
                top_k=self.top_k,
                percentile=self.percentile,
                tsne_perplexity=self.tsne_perplexity,
                tsne_max_iter=self.tsne_max_iter,
                tsne_max_subjects=self.tsne_max_subjects,
                tsne_backend=self.tsne_backend,
                seed=self.seed,
                batch_size=self.batch_size,
                device=self.device,
                cut_coords=self.cut_coords,
                mask_fraction=self.mask_fraction,
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
