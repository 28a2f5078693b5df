"""Run record and resume state: an interrupted run continues with the same numbers.

At the start of a run the main process writes ``<logdir>/run_metadata.json`` (resolved config, git
commit, package versions, seed; see :mod:`fusion.provenance`). After every epoch it saves
``<stage>/resume.pth`` (model, optimizer, scheduler, counters, the state of the stage's callbacks
and of the loaders' random generators), and when a stage has finished (every stage-end callback
included) ``<stage>/complete.json``. Running the same command again (``args.autoresume`` null or
``last``) skips complete stages and continues an interrupted one after its last finished epoch,
with the same numbers as an uninterrupted run; it refuses a log directory whose recorded config
differs in a key that changes results. ``args.autoresume=off`` retrains every selected stage from
scratch.

:class:`ResumeMixin` holds this logic apart from the Catalyst wiring of
:class:`fusion_runners.base.ConfigRunner`, whose event hooks call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from catalyst.core import IRunner
from omegaconf import DictConfig, OmegaConf

from fusion import io
from fusion.errors import ConfigError, InputError
from fusion.provenance import collect_run_metadata, config_differences, json_safe
from fusion_runners.engines import is_main_process

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

#: Counters a stage's resume state restores, and those a skipped stage's ``complete.json`` sets.
_STAGE_COUNTERS: tuple[str, ...] = ("stage_epoch_step", "stage_batch_step", "stage_sample_step")
_GLOBAL_COUNTERS: tuple[str, ...] = ("global_epoch_step", "global_batch_step", "global_sample_step")


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


class ResumeMixin(IRunner):
    """Run record, resume state and completion markers of :class:`fusion_runners.base.ConfigRunner`.

    It replaces Catalyst's experiment and stage loops (to skip finished stages and start after the
    last saved epoch), hence the ``IRunner`` base. The runner it is mixed into provides ``cfg``,
    ``autoresume`` (``"last"`` or ``"off"``), ``logdir``, ``stage_dir()``, ``all_stages``,
    ``stages``, ``seed`` and the loaders' generators ``_loader_generators``.
    """

    cfg: DictConfig
    autoresume: str
    need_early_stop: bool
    _loader_generators: dict[str, torch.Generator]
    _resumed_from_epoch: int

    # ------------------------------------------------------------------ run layout
    def resume_path(self, stage: str | None = None) -> Path:
        """Resume state of a stage, rewritten after every epoch: ``logdir/<stage>/resume.pth``."""
        return self.stage_dir(stage) / RESUME_STATE

    def complete_path(self, stage: str | None = None) -> Path:
        """Marker of a finished stage (training and every stage-end callback): ``complete.json``."""
        return self.stage_dir(stage) / STAGE_COMPLETE

    def is_stage_complete(self, stage: str) -> bool:
        """Whether ``stage`` finished in an earlier run into this logdir."""
        return self.complete_path(stage).is_file()

    # ------------------------------------------------------------------ run record
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

    # ------------------------------------------------------------------ stage state
    def _stage_state(self) -> dict[str, Any]:
        """Everything needed to continue this stage after the current epoch."""
        state = self.engine.pack_checkpoint(
            model=self.model, criterion=self.criterion, optimizer=self.optimizer, scheduler=self.scheduler
        )
        state.update(
            stage=self.stage_key,
            **{key: int(getattr(self, key)) for key in _STAGE_COUNTERS + _GLOBAL_COUNTERS},
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
        return {
            attr: _plain_state(getattr(callback, attr)) for attr in _CALLBACK_STATE_ATTRS if hasattr(callback, attr)
        }

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

    def _save_resume_state(self) -> None:
        """Write the stage's resume state (atomically: a kill leaves the previous epoch's)."""
        with io.atomic_path(self.resume_path(), suffix=".pth") as tmp:
            torch.save(self._stage_state(), tmp)

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
        for key in _STAGE_COUNTERS + _GLOBAL_COUNTERS:
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

    # ------------------------------------------------------------------ completion markers
    def _mark_stage_complete(self) -> None:
        """Write the stage's ``complete.json`` (counters included) and drop its resume state."""
        io.write_json(self.complete_path(), {
            "stage": self.stage_key,
            "epochs": int(self.stage_epoch_step),
            "num_epochs": int(self.stage_epoch_len),
            "resumed_after_epoch": int(getattr(self, "_resumed_from_epoch", 0)),
            **{key: int(getattr(self, key)) for key in _GLOBAL_COUNTERS},
        })
        self.resume_path().unlink(missing_ok=True)

    def _discard_stage_progress(self) -> None:
        """Remove an earlier run's completion marker and resume state of the current stage."""
        for path in (self.complete_path(), self.resume_path()):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ Catalyst loops
    def _run_experiment(self) -> None:
        """Catalyst's experiment loop, skipping stages an earlier run finished (``autoresume``).

        A skipped stage's global epoch/batch/sample counters are taken from its ``complete.json``
        so that the stages after it see the same counters (hence seeds) as in an uninterrupted run.
        """
        self._run_event("on_experiment_start")
        for stage in self.stages:
            self.stage_key = stage
            if self.autoresume == "last" and self.is_stage_complete(stage):
                done = io.read_json(self.complete_path(stage))
                for key in _GLOBAL_COUNTERS:
                    if isinstance(done.get(key), int):
                        setattr(self, key, done[key])
                if is_main_process(self.engine):
                    print(f"=== {stage}: complete in an earlier run, skipped ({self.complete_path(stage)})",
                          flush=True)
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


__all__ = ["RESUME_IGNORED_KEYS", "RUN_METADATA", "ResumeMixin"]
