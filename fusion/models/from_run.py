"""Rebuild a trained network from a run directory: its ``model`` config node and a fold's checkpoint."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fusion import io
from fusion.errors import ConfigError, InputError
from fusion.rundir import fold_dir, load_run_config

__all__ = ["build_model", "load_fold_model"]

PathLike = str | os.PathLike
_MODEL_KEYS_IGNORED = ("_target_", "_recursive_", "_convert_", "_partial_")


def _import_target(target: str) -> Any:
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"model target {target!r} cannot be imported: {exc}") from exc


def build_model(model_config: Mapping[str, Any], in_shape: Sequence[int] | None = None) -> Any:
    """Build the network a run's ``model`` config node describes (``_target_`` + keyword arguments;
    ``fusion.models.MultimodalVAE`` when there is no target).

    Args:
        model_config: the config node.
        in_shape: the data's grid ``(X, Y, Z)``, used when the config leaves ``in_shape`` null
            (the runner then takes it from the prepared data).
    """
    if not isinstance(model_config, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(model_config).__name__}")
    target = model_config.get("_target_", "fusion.models.MultimodalVAE")
    cls = _import_target(str(target))
    kwargs = {k: v for k, v in model_config.items() if k not in _MODEL_KEYS_IGNORED}
    if kwargs.get("in_shape", "absent") is None:
        if in_shape is None:
            raise ConfigError("the model config leaves in_shape null and no data grid is known (pass --prepared)")
        kwargs["in_shape"] = tuple(int(s) for s in in_shape)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model config {dict(kwargs)} does not fit {target}: {exc}") from exc


def load_fold_model(
    logdir: PathLike,
    fold: int = 0,
    model_config: Mapping[str, Any] | None = None,
    checkpoint: str = "best.pth",
    device: str = "cpu",
    in_shape: Sequence[int] | None = None,
) -> Any:
    """The trained model of one fold, in eval mode.

    Args:
        logdir: run directory.
        fold: fold number.
        model_config: the ``model`` config node (default: read from ``logdir/configs``).
        checkpoint: file name under ``fold_XX/checkpoints``.
        device: torch device to load onto.
        in_shape: the data's grid, for configs that leave ``in_shape`` null.
    """

    path = fold_dir(logdir, fold) / "checkpoints" / checkpoint
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    if model_config is None:
        config = load_run_config(logdir)
        if not config or "model" not in config:
            raise InputError(
                f"{Path(logdir) / 'configs'} holds no config with a 'model' node: cannot rebuild the network "
                "(pass the model config explicitly)"
            )
        model_config = config["model"]
    model = build_model(model_config, in_shape)
    state = io.load_checkpoint(path)
    if isinstance(state, Mapping) and "model_state_dict" in state:
        state = state["model_state_dict"]
    if not isinstance(state, Mapping):
        raise InputError(f"{path} holds no model state dict")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{path} does not fit the model built from the run config: {exc}") from exc
    return model.to(device).eval()
