"""Checks of the Hydra config a runner is built from, made before any work.

:class:`fusion_runners.base.ConfigRunner` reads optional keys with ``OmegaConf.select``, which
returns the default for a misspelt key; the checks here reject unknown top-level keys, unknown keys
of the nodes the runner reads itself (``folds``, ``stage``), a bad fold selection or resume mode
and an unwritable ``logdir``, each with a :class:`fusion.errors.ConfigError` that names the key.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from fusion.errors import ConfigError

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


def plain_value(node: Any) -> Any:
    """A config value as plain Python (lists and dicts resolved), anything else unchanged."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def validate_config(cfg: DictConfig, config_keys: Collection[str], runner_name: str) -> None:
    """Check the top-level keys (and those of ``folds`` / ``stage``) before any work.

    Args:
        cfg: the whole Hydra config.
        config_keys: the top-level keys the runner understands.
        runner_name: the runner's class name, for the message.

    Raises:
        ConfigError: naming an unknown key and listing the accepted ones, or a missing
            ``logdir``, or a non-empty Catalyst ``stages`` node.
    """
    unknown = sorted({str(key) for key in cfg.keys()} - set(config_keys))
    if unknown:
        raise ConfigError(
            f"unknown top-level config key(s) {unknown} for {runner_name}; "
            f"expected some of {sorted(config_keys)}"
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
        extra = sorted({str(key) for key in value.keys()} - allowed)
        if extra:
            raise ConfigError(
                f"unknown config key(s) {[f'{node}.{k}' for k in extra]}; "
                f"expected some of {sorted(allowed)}"
            )
    selected_folds(cfg)  # validates folds.n_splits / folds.only
    resume_mode(cfg)


def selected_folds(cfg: DictConfig) -> list[int] | None:
    """The folds this process runs (``folds.only``, default all), None without a ``folds`` node.

    Raises:
        ConfigError: ``folds.n_splits`` not an integer >= 2, or ``folds.only`` naming no fold.
    """
    folds = OmegaConf.select(cfg, "folds", default=None)
    if folds is None:
        return None
    n_splits = OmegaConf.select(cfg, "folds.n_splits", default=None)
    if not isinstance(n_splits, int) or isinstance(n_splits, bool) or n_splits < 2:
        raise ConfigError(f"folds.n_splits must be an integer >= 2, got {n_splits!r}")
    only = plain_value(OmegaConf.select(cfg, "folds.only", default=None))
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


def check_writable_dir(path: str | os.PathLike[str], what: str = "logdir") -> None:
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


__all__ = ["check_writable_dir", "plain_value", "resume_mode", "selected_folds", "validate_config"]
