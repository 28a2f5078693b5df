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
(``callbacks.folds.FoldSplitCallback``) in ``runner.stage_indices``. Loaders are built inside
``IRunner.on_stage_start`` before any stage callback sees the stage, so the split must exist
earlier: callbacks whose ``scope`` is ``CallbackScope.experiment`` are built once when the
experiment starts and receive only ``on_experiment_start`` / ``on_experiment_end``, always in the
process that launched the run (under DDP the stages run in spawned processes, which never report
experiment events back). Every other callback is a stage callback, instantiated anew per stage.

Interruption and reproducibility. At the start of a run the main process writes
``<logdir>/run_metadata.json`` (resolved config, git commit, package versions, seed; see
:mod:`fusion.provenance`). After every epoch it saves ``<stage>/resume.pth`` (model, optimizer,
scheduler, counters, the state of the stage's callbacks and of the loaders' random generators),
and when a stage has finished (every stage-end callback included) ``<stage>/complete.json``.
Running the same command again (``args.autoresume`` null or ``last``) skips complete stages and
continues an interrupted one after its last finished epoch, with the same numbers as an
uninterrupted run; it refuses a log directory whose recorded config differs in a key that
changes results. ``args.autoresume=off`` retrains every selected stage from scratch.

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
import os
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
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from fusion import io
from fusion.errors import ConfigError, InputError
from fusion.models.compile import compile_model
from fusion.provenance import collect_run_metadata, config_differences, json_safe
from fusion.rundir import fold_name

LOGGER = logging.getLogger(__name__)

#: Sub-keys accepted under the nodes the runner reads itself (others are checked by their targets).
_NODE_KEYS: dict[str, frozenset[str]] = {
    "folds": frozenset({"n_splits", "val_fraction", "seed", "only"}),
    "stage": frozenset(
        {
            "num_epochs",
            "batch_size",
            "valid_batch_size",
            "num_workers",
            "loaders",
            "optimizer",
            "scheduler",
            "patience",
            "channels_last",
            "compile",
        }
    ),
}


#: Files of the run directory written by the runner itself.
RUN_METADATA = "run_metadata.json"
RESUME_STATE = "resume.pth"
STAGE_COMPLETE = "complete.json"

#: Config keys that may differ between an interrupted run and its continuation (they do not change
#: results); any other difference makes a resume refuse the log directory.
RESUME_IGNORED_KEYS: frozenset[str] = frozenset(
    {
        "logdir",
        "folds.only",
        "args.autoresume",
        "args.resume",
        "args.verbose",
        "args.timeit",
        "callbacks.progress",
        "loggers",
        "stage.num_workers",
        "data.cache",
    }
)

#: Callback attributes saved in the resume state when a callback has no ``state_dict`` method
#: (Catalyst's checkpoint and early-stopping callbacks keep their state in these).
_CALLBACK_STATE_ATTRS: tuple[str, ...] = ("best_score", "num_no_improvement_epochs", "top_best_metrics")


def fold_stage_name(fold: int) -> str:
    """Stage name of a cross-validation fold: ``fold_00``, ``fold_01``, ... (:mod:`fusion.rundir`)."""
    return fold_name(fold)


def is_main_process(engine: Any) -> bool:
    """Whether this process should write shared files (once per run, not once per DDP rank).

    True for a non-distributed run, for DDP rank 0, and for the launching process of a DDP run
    (rank -1) on the first node only.
    """
    if engine is None:
        return True
    rank = getattr(engine, "rank", -1)
    if rank == 0:
        return True
    return rank < 0 and getattr(engine, "workers_global_rank", 0) == 0


def _plain(node: Any) -> Any:
    """A config value as plain Python (lists and dicts resolved), anything else unchanged."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _plain_state(value: Any) -> Any:
    """Callback / metric state as types ``torch.load(weights_only=True)`` accepts."""
    if isinstance(value, torch.Tensor) or value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_state(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return str(value)


def resume_mode(cfg: DictConfig) -> str:
    """``"last"`` (default: continue an interrupted run) or ``"off"`` (retrain), from ``args``.

    Raises:
        ConfigError: an unknown ``args.autoresume`` value, or Catalyst's ``args.resume`` (a
            checkpoint path), which this runner replaces.
    """
    if OmegaConf.select(cfg, "args.resume", default=None) is not None:
        raise ConfigError(
            "args.resume (a Catalyst checkpoint path) is not supported: a run continues by itself "
            "from the resume state in its logdir; use args.autoresume=last (default) or off"
        )
    value = OmegaConf.select(cfg, "args.autoresume", default=None)
    if value is None or str(value).lower() == "last":
        return "last"
    if value is False or str(value).lower() in ("off", "false", "none", "never"):
        return "off"
    raise ConfigError(f"args.autoresume must be null, 'last' or 'off', got {value!r}")


def check_writable_dir(path: str | os.PathLike, what: str = "logdir") -> None:
    """Raise ConfigError unless ``path`` is, or can be created as, a writable folder.

    Walks up to the first existing ancestor: it must be a folder this process may write to.
    Nothing is created.
    """
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        detail = "is a file" if probe != path else "exists and is not a folder"
        raise ConfigError(f"{what} {path} cannot be created: {probe} {detail}; choose another {what}")
    if probe.is_dir() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path} cannot be written: no write permission in {probe}; choose another {what}")


class ConfigRunner(IRunner):
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
        unknown = sorted(set(cfg.keys()) - cls.config_keys)
        if unknown:
            raise ConfigError(
                f"unknown top-level config key(s) {unknown} for {cls.__name__}; "
                f"expected some of {sorted(cls.config_keys)}"
            )
        if OmegaConf.select(cfg, "logdir", default=None) in (None, ""):
            raise ConfigError("config key 'logdir' is required (the run's output folder)")
        stages = OmegaConf.select(cfg, "stages", default=None)
        if stages:  # catalyst-dl adds an empty `stages` node; a filled one means the Catalyst layout
            raise ConfigError(
                "config key 'stages' (Catalyst's per-stage layout) is not supported: put the "
                "settings shared by every fold under 'stage'"
            )
        for node, allowed in _NODE_KEYS.items():
            value = OmegaConf.select(cfg, node, default=None)
            if value is None:
                continue
            if not isinstance(value, DictConfig):
                raise ConfigError(f"config key '{node}' must be a mapping, got {value!r}")
            extra = sorted(set(value.keys()) - allowed)
            if extra:
                raise ConfigError(
                    f"unknown config key(s) {[f'{node}.{k}' for k in extra]}; "
                    f"expected some of {sorted(allowed)}"
                )
        cls._selected_folds(cfg)  # validates folds.n_splits / folds.only
        resume_mode(cfg)

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
            value = _plain(OmegaConf.select(self.cfg, key, default=None))
            if cache is not None and (value is None or isinstance(value, (bool, int, float, str))):
                cache[key] = value
        return default if value is None else value

    @staticmethod
    def _selected_folds(cfg: DictConfig) -> list[int] | None:
        folds = OmegaConf.select(cfg, "folds", default=None)
        if folds is None:
            return None
        n_splits = OmegaConf.select(cfg, "folds.n_splits", default=None)
        if not isinstance(n_splits, int) or isinstance(n_splits, bool) or n_splits < 2:
            raise ConfigError(f"folds.n_splits must be an integer >= 2, got {n_splits!r}")
        only = _plain(OmegaConf.select(cfg, "folds.only", default=None))
        if only is None:
            return list(range(n_splits))
        chosen = [only] if not isinstance(only, list) else only
        for fold in chosen:
            if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < n_splits:
                raise ConfigError(
                    f"folds.only must be null, a fold number or a list of fold numbers in "
                    f"[0, {n_splits - 1}], got {only!r}"
                )
        return sorted(set(chosen))

    # ------------------------------------------------------------------ run layout
    @property
    def logdir(self) -> Path:
        """The run's output folder (config key ``logdir``)."""
        return Path(str(self.cfg.logdir))

    def stage_dir(self, stage: str | None = None) -> Path:
        """Output folder of a stage (default: the current one): ``logdir/<stage>``."""
        return self.logdir / (stage or self.stage_key)

    def resume_path(self, stage: str | None = None) -> Path:
        """Resume state of a stage, rewritten after every epoch: ``logdir/<stage>/resume.pth``."""
        return self.stage_dir(stage) / RESUME_STATE

    def complete_path(self, stage: str | None = None) -> Path:
        """Marker of a finished stage (training and every stage-end callback): ``complete.json``."""
        return self.stage_dir(stage) / STAGE_COMPLETE

    def is_stage_complete(self, stage: str) -> bool:
        """Whether ``stage`` finished in an earlier run into this logdir."""
        return self.complete_path(stage).is_file()

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
        folds = self._selected_folds(self.cfg)
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

    def get_datasets(self, stage: str) -> "OrderedDict[str, Dataset]":
        """Subsets of :attr:`dataset` for the loaders named in ``stage.loaders``."""
        if stage not in self.stage_indices:
            raise ConfigError(
                f"no subject split for stage '{stage}': add a split callback such as "
                "callbacks.folds.FoldSplitCallback to the 'callbacks' node"
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

    def get_loaders(self, stage: str) -> "OrderedDict[str, DataLoader]":
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
            sampler = None
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
            model = model.to(memory_format=torch.channels_last_3d)
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

    def _instantiate_callbacks(self, keys: Iterable[str] | None = None) -> "OrderedDict[str, Any]":
        node = OmegaConf.select(self.cfg, "callbacks", default=None)
        callbacks: OrderedDict[str, Any] = OrderedDict()
        if node is None:
            return callbacks
        for key, value in node.items():
            if value is None or (keys is not None and key not in keys):
                continue
            callbacks[key] = instantiate(value)
        return callbacks

    def get_callbacks(self, stage: str) -> "OrderedDict[str, Any]":
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

    # ------------------------------------------------------------------ run record and resume
    def resolved_config(self) -> dict[str, Any]:
        """The whole config as plain Python, interpolations resolved where they can be."""
        try:
            return OmegaConf.to_container(self.cfg, resolve=True)  # type: ignore[return-value]
        except Exception:  # an interpolation that only Hydra's app context can resolve
            return OmegaConf.to_container(self.cfg, resolve=False)  # type: ignore[return-value]

    def _has_progress(self) -> bool:
        return any(
            self.complete_path(stage).is_file() or self.resume_path(stage).is_file()
            for stage in self.all_stages
        )

    def _previous_record(self) -> dict[str, Any] | None:
        path = self.logdir / RUN_METADATA
        if not path.is_file():
            return None
        try:
            return io.read_json(path)
        except (OSError, ValueError) as err:
            raise InputError(f"{path} is not readable JSON ({err}); move it away to start this run") from err

    def check_resumable(self) -> None:
        """Refuse to continue a run in ``logdir`` that was made with another config.

        Called on construction, before ``catalyst-dl`` dumps anything into the log directory.

        Raises:
            ConfigError: the logdir holds finished or interrupted stages of a run whose recorded
                config differs from this one in a key that changes results (see
                ``RESUME_IGNORED_KEYS`` for the keys that may differ).
        """
        if self.autoresume != "last" or not self._has_progress():
            return
        previous = self._previous_record()
        if previous is None:
            return
        differences = config_differences(previous.get("config", {}), json_safe(self.resolved_config()),
                                         RESUME_IGNORED_KEYS)
        if differences:
            shown = ", ".join(differences[:8]) + (" ..." if len(differences) > 8 else "")
            raise ConfigError(
                f"logdir {self.logdir} holds a run with another config (differs in: {shown}); "
                "resuming would mix results: choose another logdir, or set args.autoresume=off "
                "to retrain the selected folds there"
            )

    def _record_run(self) -> None:
        """Write ``run_metadata.json`` (earlier records of this logdir kept under ``history``)."""
        path = self.logdir / RUN_METADATA
        previous = self._previous_record()
        metadata = collect_run_metadata(self.resolved_config(), self.seed)
        metadata["stages"] = list(self.stages)
        metadata["autoresume"] = self.autoresume
        history = list(previous.get("history", [])) if previous else []
        if previous:
            history.append({key: previous.get(key) for key in ("started_at", "git", "stages", "command")})
        metadata["history"] = history
        io.write_json(path, metadata)

    def _stage_state(self) -> dict[str, Any]:
        """Everything needed to continue this stage after the current epoch."""
        state = self.engine.pack_checkpoint(
            model=self.model, criterion=self.criterion, optimizer=self.optimizer, scheduler=self.scheduler
        )
        state.update(
            stage=self.stage_key,
            stage_epoch_step=int(self.stage_epoch_step),
            stage_batch_step=int(self.stage_batch_step),
            stage_sample_step=int(self.stage_sample_step),
            global_epoch_step=int(self.global_epoch_step),
            global_batch_step=int(self.global_batch_step),
            global_sample_step=int(self.global_sample_step),
            stopped=bool(self.need_early_stop or self.stage_epoch_step >= self.stage_epoch_len),
            epoch_metrics=_plain_state(dict(self.epoch_metrics)),
            callbacks={str(key): self._callback_state(cb) for key, cb in self.callbacks.items()},
            generators={key: gen.get_state() for key, gen in self._loader_generators.items()},
        )
        return state

    @staticmethod
    def _callback_state(callback: Any) -> dict[str, Any]:
        state_dict = getattr(callback, "state_dict", None)
        if callable(state_dict):
            return {"state_dict": _plain_state(state_dict())}
        return {attr: _plain_state(getattr(callback, attr)) for attr in _CALLBACK_STATE_ATTRS if hasattr(callback, attr)}

    @staticmethod
    def _load_callback_state(callback: Any, state: Mapping[str, Any]) -> None:
        if "state_dict" in state and callable(getattr(callback, "load_state_dict", None)):
            callback.load_state_dict(state["state_dict"])
            return
        for attr, value in state.items():
            if attr in _CALLBACK_STATE_ATTRS and hasattr(callback, attr):
                if attr == "top_best_metrics":
                    value = [tuple(item) for item in value]
                setattr(callback, attr, value)

    def _restore_stage(self) -> bool:
        """Continue the current stage from its resume state, if any (after the stage-start events).

        Returns:
            True when the saved stage had already stopped (last epoch or early stopping), so no
            epoch is left to train.

        Raises:
            InputError: a resume state that cannot be read safely (``weights_only=True``).
        """
        path = self.resume_path()
        if self.autoresume != "last" or not path.is_file():
            return False
        try:
            state = io.load_checkpoint(path)
        except InputError as err:
            raise InputError(
                f"resume state of {self.stage_key}: {err}. Delete {path} to train {self.stage_key} from "
                "its first epoch, or set args.autoresume=off"
            ) from err
        if state.get("stage") != self.stage_key:
            raise InputError(f"resume state {path} belongs to stage {state.get('stage')!r}, not {self.stage_key!r}")
        self.engine.unpack_checkpoint(
            state, model=self.model, criterion=self.criterion, optimizer=self.optimizer, scheduler=self.scheduler
        )
        for key in ("stage_epoch_step", "stage_batch_step", "stage_sample_step",
                    "global_epoch_step", "global_batch_step", "global_sample_step"):
            setattr(self, key, int(state[key]))
        self.epoch_metrics = dict(state.get("epoch_metrics", {}))
        saved = state.get("callbacks", {})
        for key, callback in self.callbacks.items():
            if str(key) in saved:
                self._load_callback_state(callback, saved[str(key)])
        for key, generator_state in state.get("generators", {}).items():
            if key in self._loader_generators:
                self._loader_generators[key].set_state(generator_state)
        self._resumed_from_epoch = int(state["stage_epoch_step"])
        if is_main_process(self.engine):
            print(f"=== {self.stage_key}: resumed after epoch {self._resumed_from_epoch} of "
                  f"{self.stage_epoch_len} from {path}", flush=True)
        return bool(state.get("stopped", False))

    def _run_experiment(self) -> None:
        """Catalyst's experiment loop, skipping stages an earlier run finished (``autoresume``).

        A skipped stage's global epoch/batch/sample counters are taken from its ``complete.json``
        so that the stages after it see the same counters (hence seeds) as in an uninterrupted run.
        """
        self._run_event("on_experiment_start")
        for self.stage_key in self.stages:
            if self.autoresume == "last" and self.is_stage_complete(self.stage_key):
                done = io.read_json(self.complete_path(self.stage_key))
                for key in ("global_epoch_step", "global_batch_step", "global_sample_step"):
                    if isinstance(done.get(key), int):
                        setattr(self, key, done[key])
                if is_main_process(self.engine):
                    print(f"=== {self.stage_key}: complete in an earlier run, skipped "
                          f"({self.complete_path(self.stage_key)})", flush=True)
                continue
            self.engine.spawn(self._run_stage)
        self._run_event("on_experiment_end")

    def _run_stage(self, rank: int = -1, world_size: int = 1) -> None:
        """Catalyst's stage loop, starting after the last saved epoch when resuming."""
        self._stage_rank, self._stage_world_size = rank, world_size
        self._resumed_from_epoch = 0
        self._run_event("on_stage_start")
        stopped = self._restore_stage()
        while not stopped and self.stage_epoch_step < self.stage_epoch_len:
            self._run_epoch()
            if self.need_early_stop:
                self.need_early_stop = False
                break
        self._run_event("on_stage_end")

    # ------------------------------------------------------------------ events
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
                for path in (self.complete_path(), self.resume_path()):
                    path.unlink(missing_ok=True)
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
            with io.atomic_path(self.resume_path(), suffix=".pth") as tmp:
                torch.save(self._stage_state(), tmp)

    def on_stage_end(self, runner: IRunner) -> None:
        """Mark the stage complete (every stage-end callback has run), drop its resume state,
        then Catalyst's stage teardown."""
        if is_main_process(self.engine):
            io.write_json(self.complete_path(), {
                "stage": self.stage_key,
                "epochs": int(self.stage_epoch_step),
                "num_epochs": int(self.stage_epoch_len),
                "resumed_after_epoch": int(getattr(self, "_resumed_from_epoch", 0)),
                "global_epoch_step": int(self.global_epoch_step),
                "global_batch_step": int(self.global_batch_step),
                "global_sample_step": int(self.global_sample_step),
            })
            self.resume_path().unlink(missing_ok=True)
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


__all__ = [
    "RESUME_IGNORED_KEYS",
    "ConfigRunner",
    "check_writable_dir",
    "fold_stage_name",
    "is_main_process",
    "resume_mode",
]
