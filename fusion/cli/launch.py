"""Where the installed configs and Catalyst adapters are, and the ``catalyst-dl`` command lines
that train with them, so that every ``fusion`` command works from any folder.

The configs (``conf/``) and adapters (``runners/``, ``callbacks/``) install as ``fusion_conf``,
``fusion_runners`` and ``fusion_callbacks``; they are located here without being imported, so the
science package never imports Catalyst or Hydra.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fusion.errors import ConfigError


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if Path(location).is_dir():
            return Path(location).resolve()
    raise ConfigError(f"package {name!r} is not installed: reinstall fusion (pip install .) to get it")


def config_dir() -> Path:
    """The folder of the shipped Hydra configs (``conf/`` of a checkout, ``fusion_conf`` once installed)."""
    return _package_dir("fusion_conf")


def runners_dir() -> Path:
    """The folder of the Catalyst runners, which ``catalyst-dl run`` imports as ``args.expdir``."""
    return _package_dir("fusion_runners")


def catalyst_command() -> list[str]:
    """``catalyst-dl`` of this interpreter's environment (or ``python -m catalyst.dl``)."""
    script = Path(sys.executable).parent / "catalyst-dl"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "catalyst.dl"]


def training_command(
    config_name: str,
    overrides: Sequence[str] = (),
    configs: str | os.PathLike | None = None,
    multirun: bool = False,
    flags: Sequence[str] = (),
) -> list[str]:
    """``catalyst-dl run --hydra`` with ``config_name`` from the folder ``configs`` (default: the
    shipped configs) and the installed runners as experiment folder. Hydra's own ``flags``
    (``--cfg job``, ``--info``) go before the key=value ``overrides``, which come last and win."""
    folder = Path(configs).resolve() if configs is not None else config_dir()
    return [
        *catalyst_command(), "run", "--hydra", *(["--multirun"] if multirun else []), *flags,
        "--config-dir", str(folder), "--config-name", config_name,
        f"args.expdir={runners_dir()}", *overrides,
    ]


def quiet_entry_point() -> dict[str, str]:
    """This environment, with the two warnings that Catalyst's ``@hydra.main()`` (no version_base,
    no config_path) raises on every run silenced; our configs set what those defaults change."""
    env = dict(os.environ)
    rule = "ignore::UserWarning:catalyst.dl.scripts.hydra_run"
    env["PYTHONWARNINGS"] = f"{env['PYTHONWARNINGS']},{rule}" if env.get("PYTHONWARNINGS") else rule
    return env
