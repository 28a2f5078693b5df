"""``fusion run NAME [overrides]``: train a pipeline with a shipped config from any folder.

The same as ``catalyst-dl run --hydra --config-dir conf --config-name NAME`` in a checkout, with
the configs and runners found where ``pip install`` put them; relative paths in the config
(``logdir``, ``data.*``) are relative to the current folder.
"""

from __future__ import annotations

import argparse
import subprocess

from fusion.cli.launch import config_dir, quiet_entry_point, training_command


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    if command == "conf-dir":
        return
    names = sorted(p.stem for p in config_dir().glob("*.yaml"))
    parser.add_argument("config_name", choices=names, metavar="NAME", help=f"one of {', '.join(names)}")
    parser.add_argument("--multirun", "-m", action="store_true", help="Hydra multirun (sweeps, fold jobs)")
    parser.add_argument("--config-dir", default=None, help="another config folder (default: the shipped configs)")
    parser.add_argument("overrides", nargs=argparse.REMAINDER,
                        help="Hydra overrides, e.g. logdir=runs/x stage.num_epochs=2")


def run(args: argparse.Namespace) -> int:
    if args.command == "conf-dir":
        print(config_dir())
        return 0
    # Hydra takes its flags (``--cfg job``, ``--info``) before the key=value overrides.
    rest = [o for o in args.overrides if o != "--"]
    overrides = [o for o in rest if "=" in o and not o.startswith("-")]
    flags = [o for o in rest if o not in overrides]
    command = training_command(args.config_name, overrides, args.config_dir, args.multirun, flags)
    return subprocess.run(command, env=quiet_entry_point()).returncode
