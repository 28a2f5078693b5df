"""A Hydra callback that finishes run folders shared by several jobs of a multirun.

With ``folds.only=0,1,...`` every fold is a separate job (``hydra/launcher=local`` or ``slurm``)
writing ``fold_XX/`` into the same ``logdir``. Each job ends with the run's experiment-scoped
callbacks (result aggregation, analysis) over the folds present *at that moment*: jobs that end
together may each miss the other's fold. Once every job has returned, this callback runs those
experiment-end callbacks again, once per shared folder, in the launching process, over every fold:
``results.json`` and the report come out as a single run over the same folds writes them.

The jobs are found through the configs Hydra saved for them in the sweep folder
(``<hydra.sweep.dir>/<job>/[<output_subdir>/]config.yaml`` beside ``hydra.yaml``); a folder written
by one job only (a sweep over latent sizes or seeds) is left as that job finished it. Enabled by the
launcher configs in ``conf/hydra/launcher/`` (``hydra.callbacks.fold_results``).
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

LOGGER = logging.getLogger(__name__)


def shared_run_folders(sweep_dir: str | Path) -> dict[Path, Path]:
    """Run folders (``logdir``) written by two or more jobs of the sweep in ``sweep_dir``.

    Returns:
        ``{logdir: config.yaml of the first such job}``.
    """
    jobs: dict[Path, list[Path]] = defaultdict(list)
    for path in sorted(Path(sweep_dir).rglob("config.yaml")):
        if not (path.parent / "hydra.yaml").is_file():  # not a Hydra job's saved config
            continue
        logdir = OmegaConf.select(OmegaConf.load(path), "logdir", default=None)
        if logdir is not None:
            jobs[Path(str(logdir)).resolve()].append(path)
    return {logdir: paths[0] for logdir, paths in jobs.items() if len(paths) > 1}


def finish_run_folder(job_config: DictConfig) -> None:
    """Run the experiment-end callbacks of the run a job config describes, in this process."""
    with warnings.catch_warnings():  # the module's @hydra.main() warns on import
        warnings.simplefilter("ignore")
        from catalyst.dl.scripts.hydra_run import prepare_hydra_config

    cfg = prepare_hydra_config(job_config)  # the config catalyst-dl hands each job's runner
    runner = instantiate(cfg.runner, cfg=cfg)
    runner._split_callbacks()  # the experiment-scoped callbacks, as the runner builds them
    for key, callback in runner.experiment_callbacks.items():
        LOGGER.info("fold results: %s.on_experiment_end over %s", key, cfg.logdir)
        callback.on_experiment_end(runner)


class FoldResultsCallback(Callback):
    """After all jobs of a multirun: the experiment-end callbacks of every shared ``logdir``.

    Args:
        enabled: false turns it off (``hydra.callbacks.fold_results.enabled=false``).
    """

    def __init__(self, enabled: bool = True):
        self.enabled = bool(enabled)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Finish each run folder that several jobs wrote into."""
        if not self.enabled:
            return
        sweep_dir = OmegaConf.select(config, "hydra.sweep.dir", default=None)
        if sweep_dir is None or not Path(str(sweep_dir)).is_dir():
            return
        for logdir, job_config in shared_run_folders(str(sweep_dir)).items():
            if not any(logdir.glob("fold_*/result.json")):
                LOGGER.info("fold results: no fold_*/result.json under %s, nothing to aggregate", logdir)
                continue
            job = OmegaConf.load(job_config)
            if not isinstance(job, DictConfig):
                LOGGER.warning("fold results: %s is not a mapping, %s left as it is", job_config, logdir)
                continue
            finish_run_folder(job)


__all__ = ["FoldResultsCallback", "finish_run_folder", "shared_run_folders"]
