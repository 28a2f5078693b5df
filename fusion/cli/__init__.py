"""The ``fusion`` command: data preparation, cohorts, sweeps and analyses.

Each subcommand lives in its own module under ``fusion.cli`` exposing ``add_arguments(parser)``
and ``run(args) -> int``; modules are imported only when their command runs. Training itself is
``fusion run vae|ccl`` (in a checkout also ``catalyst-dl run --hydra --config-dir conf --config-name
vae|ccl``, see README).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from fusion import __version__
from fusion.errors import FusionError

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("fusion.cli.run", "train a pipeline (vae, ccl, ...) with a shipped Hydra config, from any folder"),
    "conf-dir": ("fusion.cli.run", "print the folder of the shipped Hydra configs"),
    "cohort-vae": ("fusion.cli.cohort_vae", "write the embedded synthetic ICN + sMRI cohort (NIfTI + manifest)"),
    "manifest": ("fusion.cli.manifest", "write a VAE manifest from a BIDS-derivatives folder and participants.tsv"),
    "prepare": ("fusion.cli.prepare", "validate a VAE manifest and write one prepared array per subject"),
    "cohort-ccl": ("fusion.cli.cohort_ccl", "write the embedded synthetic FC + SNP cohort (files + manifest)"),
    "vae-table1": ("fusion.cli.vae_table1", "VAE latent sizes + PCA baselines -> Table I"),
    "vae-seeds": ("fusion.cli.vae_seeds", "VAE over 5 seeds at one latent size -> mean/std AUC"),
    "vae-validate": (
        "fusion.cli.vae_validate", "the VAE and its baselines on the validation family of cohorts -> table"
    ),
    "vae-analyze": ("fusion.cli.vae_analyze", "importance, t-SNE, group maps and report for a finished VAE run"),
    "sample": ("fusion.cli.generate", "decode subjects sampled from the prior of a trained VAE"),
    "interpolate": ("fusion.cli.generate", "decode an interpolation between two latents of a trained VAE"),
    "ccl-table3": ("fusion.cli.ccl_table3", "gCAM-CCL and baselines on the same test subjects -> Table III"),
    "ccl-validate": (
        "fusion.cli.ccl_validate", "gCAM-CCL and its baselines on the validation family of cohorts -> table"
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusion", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fusion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fusion`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv[:1])  # prints usage / help / version, or the unknown-command error, and exits
        return 2
    # The command's own module defines the rest of its arguments.
    command = argv[0]
    module_name, help_text = COMMANDS[command]
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(prog=f"fusion {command}", description=help_text)
    sub_parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.add_arguments(sub_parser, command)
    args = sub_parser.parse_args(argv[1:])
    args.command = command
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(module.run(args) or 0)
    except FusionError as err:
        print(f"fusion {command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
