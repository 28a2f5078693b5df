"""A Catalyst runner built entirely from a Hydra config.

``catalyst-dl run --hydra --config-dir conf --config-name <name>`` calls
``hydra.utils.instantiate(cfg.runner, cfg=cfg)``; the runner node must carry ``_recursive_: false``
so the whole config reaches :class:`ConfigRunner` unresolved. Catalyst's own ``HydraRunner`` reads
optional keys by attribute and fails on omegaconf >= 2.1; this runner reads them with
``OmegaConf.select`` and validates the top-level keys, so a typo fails early with a
:class:`fusion.errors.ConfigError` that names the key.

Stages are folds: with a ``folds`` node there is one Catalyst stage per cross-validation fold
(``fold_00``, ``fold_01``, ...), ``folds.only`` selects some of them (so folds can run as separate
jobs into one log directory). Every stage gets a fresh, re-seeded model, optimizer, scheduler and
fresh callbacks.

Which subjects each stage trains and validates on is set by a *split callback*
(``fusion_callbacks.folds.FoldSplitCallback``) in ``runner.stage_indices``. Loaders are built inside
``IRunner.on_stage_start`` before any stage callback sees the stage, so the split must exist
earlier: callbacks whose ``scope`` is ``CallbackScope.experiment`` are built once when the
experiment starts and receive only ``on_experiment_start`` / ``on_experiment_end``, always in the
process that launched the run (under DDP the stages run in spawned processes, which never report
experiment events back). Every other callback is a stage callback, instantiated anew per stage.

Interrupted runs continue where they stopped, with the same numbers (``args.autoresume``; the run
record, resume state and completion markers are in :mod:`fusion_runners.resume`). The config is
checked before any work (:mod:`fusion_runners.config_checks`).

Config layout read here (every key optional unless marked)::

    logdir: runs/x                      # required
    runner: {_target_: ..., _recursive_: false}
    args: {seed: 42, autoresume: null|last|off, ...}   # filled in by catalyst-dl
    engine: {_target_: catalyst.engines.DeviceEngine, device: cpu}
    loggers: {name: {_target_: ...} | null}
    data: {_target_: <Dataset class>, ...}    # the whole cohort; must expose ``labels``
    model: {_target_: ...}
    criterion: {_target_: ...} | null
    folds: {n_splits: 10, val_fraction: 0.1, seed: 42, only: null}
    stage: {num_epochs, batch_size, valid_batch_size, num_workers, loaders, optimizer,
            scheduler, patience, channels_last, compile}
    callbacks: {name: {_target_: ...} | null}
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from catalyst.core import CallbackScope, IRunner
from catalyst.engines import DeviceEngine
from catalyst.loggers import ConsoleLogger
from catalyst.utils.misc import set_global_seed
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from fusion.errors import ConfigError
from fusion.models.compile import compile_model
from fusion.rundir import fold_name
from fusion_runners import config_checks
from fusion_runners.code_dump import install as install_code_dump
from fusion_runners.config_checks import check_writable_dir, plain_value, resume_mode, selected_folds
from fusion_runners.engines import is_main_process
from fusion_runners.resume import RUN_METADATA, ResumeMixin  # RUN_METADATA: still importable from here

LOGGER = logging.getLogger(__name__)


def fold_stage_name(fold: int) -> str:
    """Stage name of a cross-validation fold: ``fold_00``, ``fold_01``, ... (:mod:`fusion.rundir`)."""
    return fold_name(fold)


class ConfigRunner(ResumeMixin):
    """Generic config-driven Catalyst runner; subclasses implement only ``handle_batch``.

    Every component is built with ``hydra.utils.instantiate`` from its config node. Batch metrics
    (``self.batch_metrics``) are averaged over each loader, weighted by batch size and synced
    across DDP ranks, and become the loader metrics that checkpointing and early stopping read.

    Args:
        cfg: the whole Hydra config (see the module docstring for its layout).

    Attributes:
        stage_indices: ``{stage: {loader_key: subject indices}}``, filled by a split callback;
            a ``"test"`` entry is kept for evaluation callbacks and is not a training loader.
        experiment_callbacks: the experiment-scoped callbacks of this run, by config name.
    """

    #: Top-level config keys this runner understands; subclasses extend it.
    config_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "runner",
            "args",
            "logdir",
            "engine",
            "loggers",
            "data",
            "model",
            "criterion",
            "folds",
            "stage",
            "stages",
            "callbacks",
        }
    )

    def __init__(self, cfg: DictConfig | Mapping[str, Any]):
        super().__init__()
        install_code_dump()  # before catalyst-dl's dump_code: fold jobs sharing a logdir must not race
        if not isinstance(cfg, DictConfig):
            cfg = OmegaConf.create(dict(cfg))
        self.cfg: DictConfig = cfg
        self.validate_config(cfg)
        self.stage_indices: dict[str, dict[str, np.ndarray]] = {}
        self.experiment_callbacks: OrderedDict[str, Any] = OrderedDict()
        self._stage_callback_keys: list[str] | None = None
        self._dataset: Dataset | None = None
        self._loader_generators: dict[str, torch.Generator] = {}
        self.autoresume: str = resume_mode(cfg)  # "last" | "off"
        check_writable_dir(self.logdir)
        self.check_resumable()

    # ------------------------------------------------------------------ config
    @classmethod
    def validate_config(cls, cfg: DictConfig) -> None:
        """Check the top-level keys (and those of ``folds`` / ``stage``) before any work.

        Raises:
            ConfigError: naming an unknown key and listing the accepted ones, or a missing
                ``logdir``, or a non-empty Catalyst ``stages`` node.
        """
        config_checks.validate_config(cfg, cls.config_keys, cls.__name__)

    def select(self, key: str, default: Any = None) -> Any:
        """An optional config value by dotted key (plain Python), ``default`` when absent or null.

        Inside a loader, scalar values are remembered per key (``OmegaConf.select`` costs ~0.1 ms,
        and ``handle_batch`` reads a few keys per batch); the cache is dropped at every loader's
        start and end, and the config is never modified during a run.
        """
        cache = self.__dict__.get("_select_cache")
        if cache is not None and key in cache:
            value = cache[key]
        else:
            value = plain_value(OmegaConf.select(self.cfg, key, default=None))
            if cache is not None and (value is None or isinstance(value, (bool, int, float, str))):
                cache[key] = value
        return default if value is None else value

    # ------------------------------------------------------------------ run layout
    @property
    def logdir(self) -> Path:
        """The run's output folder (config key ``logdir``)."""
        return Path(str(self.cfg.logdir))

    def stage_dir(self, stage: str | None = None) -> Path:
        """Output folder of a stage (default: the current one): ``logdir/<stage>``."""
        return self.logdir / (stage or self.stage_key)

    @property
    def seed(self) -> int:
        """The run's seed (``args.seed``, 42 when absent)."""
        return int(self.select("args.seed", 42))

    @property
    def name(self) -> str:
        """Run name shown by Catalyst loggers."""
        return type(self).__name__

    @property
    def all_stages(self) -> list[str]:
        """Every stage the config defines: one per fold, or a single ``train`` stage."""
        n_splits = self.select("folds.n_splits")
        if n_splits is None:
            return ["train"]
        return [fold_stage_name(i) for i in range(n_splits)]

    @property
    def stages(self) -> list[str]:
        """The stages this process runs (``folds.only`` selects folds)."""
        folds = selected_folds(self.cfg)
        if folds is None:
            return self.all_stages
        return [fold_stage_name(i) for i in folds]

    def stage_seed(self, stage: str) -> int:
        """Seed of a stage: ``args.seed`` + the stage's position among all stages.

        A fold gets the same seed whether it runs alone (``folds.only``) or with the others.
        """
        return self.seed + self.all_stages.index(stage)

    def get_stage_len(self, stage: str) -> int:
        """Number of epochs of a stage (``stage.num_epochs``, default 1)."""
        n_epochs = self.select("stage.num_epochs", 1)
        if not isinstance(n_epochs, int) or n_epochs < 1:
            raise ConfigError(f"stage.num_epochs must be a positive integer, got {n_epochs!r}")
        return n_epochs

    # ------------------------------------------------------------------ components
    def get_engine(self):
        """The engine from ``engine`` (default: ``DeviceEngine`` on the best available device)."""
        node = OmegaConf.select(self.cfg, "engine", default=None)
        return DeviceEngine() if node is None else instantiate(node)

    def get_loggers(self) -> dict[str, Any]:
        """Loggers from ``loggers`` (null entries skipped; default: console only)."""
        node = OmegaConf.select(self.cfg, "loggers", default=None)
        if node is None:
            return {"console": ConsoleLogger()}
        return {key: instantiate(value) for key, value in node.items() if value is not None}

    @property
    def dataset(self) -> Dataset:
        """The whole cohort, built once per process from the ``data`` node."""
        if self._dataset is None:
            node = OmegaConf.select(self.cfg, "data", default=None)
            if node is None:
                raise ConfigError("config key 'data' (the dataset node with a _target_) is required")
            self._dataset = instantiate(node)
        return self._dataset

    def get_datasets(self, stage: str) -> OrderedDict[str, Dataset]:
        """Subsets of :attr:`dataset` for the loaders named in ``stage.loaders``."""
        if stage not in self.stage_indices:
            raise ConfigError(
                f"no subject split for stage '{stage}': add a split callback such as "
                "fusion_callbacks.folds.FoldSplitCallback to the 'callbacks' node"
            )
        split = self.stage_indices[stage]
        datasets: OrderedDict[str, Dataset] = OrderedDict()
        for key in self.select("stage.loaders", ["train", "valid"]):
            if key not in split:
                raise ConfigError(
                    f"stage.loaders names '{key}' but the split of stage '{stage}' has only "
                    f"{sorted(split)}"
                )
            datasets[key] = Subset(self.dataset, np.asarray(split[key], dtype=int).tolist())
        return datasets

    def get_loaders(self, stage: str) -> OrderedDict[str, DataLoader]:
        """DataLoaders over :meth:`get_datasets`; training loaders shuffle (seeded per stage).

        Under DDP each loader gets a ``DistributedSampler`` for this rank.
        """
        batch_size = self.select("stage.batch_size", 1)
        valid_batch_size = self.select("stage.valid_batch_size", batch_size)
        num_workers = self.select("stage.num_workers", 0)
        engine = self.engine
        ddp = engine is not None and engine.is_ddp
        loaders: OrderedDict[str, DataLoader] = OrderedDict()
        self._loader_generators = {}
        for key, dataset in self.get_datasets(stage).items():
            train = key.startswith("train")
            generator = torch.Generator().manual_seed(self.stage_seed(stage))
            self._loader_generators[key] = generator  # its state is part of the resume state
            sampler: DistributedSampler | None = None
            if ddp:
                sampler = DistributedSampler(
                    dataset,
                    num_replicas=engine.world_size,
                    rank=engine.rank,
                    shuffle=train,
                    seed=self.stage_seed(stage),
                )
            loaders[key] = DataLoader(
                dataset,
                batch_size=batch_size if train else valid_batch_size,
                shuffle=train and sampler is None,
                sampler=sampler,
                num_workers=num_workers,
                generator=generator,
            )
        return loaders

    def build_model(self) -> torch.nn.Module:
        """A new model from the ``model`` node (subclasses may add arguments known at run time)."""
        node = OmegaConf.select(self.cfg, "model", default=None)
        if node is None or "_target_" not in node:
            raise ConfigError("config key 'model' needs a _target_ (the model class)")
        return instantiate(node)

    @property
    def channels_last(self) -> bool:
        """``stage.channels_last``: keep 5D weights and inputs channels-last (NDHWC).

        Same numbers, but oneDNN's 3D convolutions on the CPU run about 3x faster in this layout.
        """
        return bool(self.select("stage.channels_last", False))

    def get_model(self, stage: str) -> torch.nn.Module:
        """A fresh model per stage, initialised from :meth:`stage_seed`."""
        set_global_seed(self.stage_seed(stage))
        model = self.build_model()
        if self.channels_last:
            # torch's stubs of Module.to omit its documented memory_format argument
            model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        # stage.compile: false | true | {backend, mode, dynamic, fullgraph}; in place, so
        # checkpoints keep plain state_dict keys (see fusion.models.compile)
        return compile_model(model, self.select("stage.compile", False), field="stage.compile")

    def get_criterion(self, stage: str):
        """The criterion from ``criterion``, or None (the loss is computed in ``handle_batch``)."""
        node = OmegaConf.select(self.cfg, "criterion", default=None)
        return None if node is None else instantiate(node)

    def get_optimizer(self, stage: str, model: torch.nn.Module) -> torch.optim.Optimizer | None:
        """The optimizer from ``stage.optimizer`` over the model's parameters (fresh per stage)."""
        node = OmegaConf.select(self.cfg, "stage.optimizer", default=None)
        if node is None:
            return None
        return instantiate(node, params=model.parameters())

    def get_scheduler(self, stage: str, optimizer: torch.optim.Optimizer):
        """The scheduler from ``stage.scheduler`` (null: none)."""
        node = OmegaConf.select(self.cfg, "stage.scheduler", default=None)
        if node is None or optimizer is None:
            return None
        return instantiate(node, optimizer=optimizer)

    def _instantiate_callbacks(self, keys: Iterable[str] | None = None) -> OrderedDict[str, Any]:
        node = OmegaConf.select(self.cfg, "callbacks", default=None)
        callbacks: OrderedDict[str, Any] = OrderedDict()
        if node is None:
            return callbacks
        for key, value in node.items():
            if value is None or (keys is not None and key not in keys):
                continue
            callbacks[key] = instantiate(value)
        return callbacks

    def get_callbacks(self, stage: str) -> OrderedDict[str, Any]:
        """Fresh stage-scoped callbacks from ``callbacks`` (null entries skipped)."""
        if self._stage_callback_keys is None:  # used outside run(): split them now
            self._split_callbacks()
        return self._instantiate_callbacks(self._stage_callback_keys)

    def _split_callbacks(self) -> None:
        """Build every callback once; keep the experiment-scoped ones, remember the others."""
        built = self._instantiate_callbacks()
        experiment = [
            (key, cb)
            for key, cb in built.items()
            if getattr(cb, "scope", CallbackScope.stage) == CallbackScope.experiment
        ]
        experiment.sort(key=lambda item: getattr(item[1], "order", 0))
        self.experiment_callbacks = OrderedDict(experiment)
        self._stage_callback_keys = [k for k in built if k not in self.experiment_callbacks]

    # ------------------------------------------------------------------ events
    def on_experiment_start(self, runner: IRunner) -> None:
        """Engine and loggers (Catalyst), the experiment-scoped callbacks (e.g. the split), then
        the run record ``run_metadata.json`` (main process)."""
        super().on_experiment_start(runner)
        self._split_callbacks()
        for callback in self.experiment_callbacks.values():
            callback.on_experiment_start(self)
        if is_main_process(self.engine):  # after the data and the split were accepted
            self._record_run()

    def on_stage_start(self, runner: IRunner) -> None:
        """Catalyst's stage setup (DDP process group, loaders, components, callbacks), then
        create the stage's folder and announce the stage (main process only).

        With ``args.autoresume=off`` an earlier run's resume state and completion marker of this
        stage are removed first, so a kill cannot leave a stale marker beside new files.
        """
        super().on_stage_start(runner)
        if is_main_process(self.engine):
            self.stage_dir().mkdir(parents=True, exist_ok=True)
            if self.autoresume == "off":
                self._discard_stage_progress()
            sizes = {k: len(v) for k, v in self.stage_indices.get(self.stage_key, {}).items()}
            detail = ", ".join(f"{k} {n}" for k, n in sizes.items())
            print(f"=== {self.stage_key} ({detail}) -> {self.stage_dir()}", flush=True)

    def on_loader_start(self, runner: IRunner) -> None:
        """Reset the running means of the batch metrics and the per-loader config cache."""
        super().on_loader_start(runner)
        # Catalyst seeded with seed + rank + global_epoch_step, which depends on the folds run
        # before this one in the same process; reseed from the fold's own seed and epoch so a fold
        # trains the same alone (folds.only) or after others.
        set_global_seed(self.stage_seed(self.stage_key) + max(0, self.engine.rank) + self.stage_epoch_step)
        self._metric_sums: dict[str, list[float]] = {}
        self._select_cache: dict[str, Any] | None = {}

    def on_batch_end(self, runner: IRunner) -> None:
        """Accumulate every numeric batch metric, weighted by the batch size."""
        for key, value in self.batch_metrics.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    continue
                value = value.detach().item()
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            sums = self._metric_sums.setdefault(key, [0.0, 0.0])
            sums[0] += float(value) * self.batch_size
            sums[1] += self.batch_size
        super().on_batch_end(runner)

    def on_loader_end(self, runner: IRunner) -> None:
        """Loader means of the batch metrics (synced across DDP ranks) become loader metrics.

        Metrics a callback already put into ``loader_metrics`` are left as they are.
        """
        means = {key: total / count for key, (total, count) in self._metric_sums.items() if count}
        if means and self.engine.is_ddp:
            means = {key: float(v) for key, v in self.engine.sync_metrics(means).items()}
        for key, value in means.items():
            self.loader_metrics.setdefault(key, value)
        self._select_cache = None
        super().on_loader_end(runner)

    def on_epoch_end(self, runner: IRunner) -> None:
        """Catalyst's epoch logging, then the stage's resume state (after every epoch-end
        callback, so checkpoint and early-stopping decisions of this epoch are in it)."""
        super().on_epoch_end(runner)
        if is_main_process(self.engine) and not self.is_infer_stage:
            self._save_resume_state()

    def on_stage_end(self, runner: IRunner) -> None:
        """Mark the stage complete (every stage-end callback has run), drop its resume state,
        then Catalyst's stage teardown."""
        if is_main_process(self.engine):
            self._mark_stage_complete()
        super().on_stage_end(runner)

    def on_experiment_end(self, runner: IRunner) -> None:
        """Experiment-scoped callbacks (e.g. result aggregation), then Catalyst's log closing."""
        for callback in self.experiment_callbacks.values():
            callback.on_experiment_end(self)
        super().on_experiment_end(runner)

    def __getstate__(self) -> dict[str, Any]:
        # DDP pickles the runner into every stage process: let each process load its own data.
        state = self.__dict__.copy()
        state["_dataset"] = None
        return state


__all__ = ["RUN_METADATA", "ConfigRunner", "fold_stage_name", "is_main_process"]
