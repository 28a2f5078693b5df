"""A Hydra callback that finishes a multirun whose jobs trained folds of one run folder.

With ``folds.only=0,1,...`` every fold is a separate job (``hydra/launcher=local`` or ``slurm``)
writing ``fold_XX/`` into the same ``logdir``. Each job ends with the run's experiment-scoped
callbacks (result aggregation, analysis) over the folds present *at that moment*: jobs that end
together may each miss the other's fold. Once every job has returned, this callback runs those
experiment-end callbacks again, once, in the launching process, over every fold: ``results.json``
and the report come out as a single run over the same folds writes them.

Enabled by the launcher configs in ``conf/hydra/launcher/`` (``hydra.callbacks.fold_results``). It
acts only on a multirun that sweeps ``folds.only`` (on the command line or in
``hydra.sweeper.params``): a sweep over latent sizes or seeds writes one folder per job, each with
its own complete summary.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

LOGGER = logging.getLogger(__name__)


def sweeps_folds(config: DictConfig) -> bool:
    """Whether the multirun of ``config`` sweeps ``folds.only`` (jobs sharing one ``logdir``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=None) or []]
    swept = {o.key_or_group for o in OverridesParser.create().parse_overrides(overrides) if o.is_sweep_override()}
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    return "folds.only" in swept or "folds.only" in params


class FoldResultsCallback(Callback):
    """After all jobs of a multirun: the experiment-end callbacks of ``logdir`` over every fold.

    Args:
        enabled: false turns it off (``hydra.callbacks.fold_results.enabled=false``).
    """

    def __init__(self, enabled: bool = True):
        self.enabled = bool(enabled)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Rebuild the runner from the sweep's config and end its experiment once."""
        if not self.enabled or not sweeps_folds(config):
            return
        with warnings.catch_warnings():  # the module's @hydra.main() warns on import
            warnings.simplefilter("ignore")
            from catalyst.dl.scripts.hydra_run import prepare_hydra_config

        cfg = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
        with open_dict(cfg):
            cfg.pop("hydra", None)
        cfg = prepare_hydra_config(cfg)  # the config catalyst-dl hands each job's runner
        logdir = OmegaConf.select(cfg, "logdir", default=None)
        if logdir is None or not any(Path(str(logdir)).glob("fold_*/result.json")):
            LOGGER.info("fold results: no fold_*/result.json under %s, nothing to aggregate", logdir)
            return
        runner = instantiate(cfg.runner, cfg=cfg)
        runner._split_callbacks()  # the experiment-scoped callbacks, as the runner builds them
        for key, callback in runner.experiment_callbacks.items():
            LOGGER.info("fold results: %s.on_experiment_end over %s", key, logdir)
            callback.on_experiment_end(runner)


__all__ = ["FoldResultsCallback", "sweeps_folds"]
