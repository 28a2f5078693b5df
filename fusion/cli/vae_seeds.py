"""``fusion vae-seeds``: the VAE pipeline over several seeds at one latent size -> mean and std of AUC.

A Hydra multirun over ``args.seed`` (values and latent size in ``conf/experiment/vae_seeds.yaml``),
one job per seed in ``<LOGDIR>/seed_<seed>``, then ``seeds.md`` and ``seeds.csv`` in LOGDIR: the
AUC of each seed (mean and std over its folds) and the mean and std over seeds (the paper reports
0.8374 ± 0.0027 over 5 seeds at latent size 128). Each job also gets its importance files and, on a
cohort with ground truth, ``recovery.modality_recall``; ``recovery.csv`` lists them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fusion.cli.vae_table1 import (
    add_sweep_arguments,
    collect_jobs,
    config_value,
    job_importance,
    launch_multirun,
    multirun_command,
    planted_modalities,
    prepared_dir_of,
)
from fusion.errors import InputError

logger = logging.getLogger(__name__)

DEFAULT_LOGDIR = "runs/vae_seeds"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    add_sweep_arguments(parser, DEFAULT_LOGDIR, "vae_seeds")
    parser.add_argument("--prepared", default=None,
                        help="prepared cohort, for the ground truth (default: the jobs' data.prepared_dir)")


def seeds_caption(jobs: list[dict]) -> str:
    """Caption stating the protocol, read from the jobs' configs."""
    config = jobs[0]["config"]
    n_splits = config_value(config, "folds.n_splits", len(jobs[0]["record"]["auc"]))
    folds_seed = config_value(config, "folds.seed")
    same_folds = len({str(config_value(j["config"], "folds.seed")) for j in jobs}) == 1
    parts = [
        f"VAE ROC-AUC over {len(jobs)} seeds at latent dimension {jobs[0]['record']['latent_dim']} "
        f"(paper: 5 seeds at 128, 0.8374 ± 0.0027)",
        f"{n_splits} stratified folds per seed (paper: 10)",
        "folds fixed (folds.seed = " + str(folds_seed) + ")" if same_folds
        else "folds redrawn with each seed (folds.seed = args.seed)",
        f"cohort {config_value(config, 'data.prepared_dir', '?')}",
        f"encoder channels {config_value(config, 'model.channels', '?')}, "
        f"at most {config_value(config, 'stage.num_epochs', '?')} epochs per fold",
        "std in the last row is over the seeds' mean AUCs",
    ]
    return "; ".join(parts) + "."


def aggregate_seeds(logdir: Path, prepared: str | None = None) -> dict:
    """Step 2 of ``vae-seeds`` on a finished sweep folder."""
    from fusion import io
    from fusion.evaluate.tables import write_seeds

    jobs = collect_jobs(logdir)
    seeds = [j["record"].get("seed") for j in jobs]
    if len(set(seeds)) != len(seeds):
        raise InputError(f"{logdir}: several jobs share a seed ({seeds}); expected one job per seed")
    paths = write_seeds(logdir, [j["record"] for j in jobs], seeds_caption(jobs))
    recovery = []
    try:
        prepared_dir = prepared_dir_of(jobs, prepared)
    except InputError as err:
        logger.warning("no ground truth scored: %s", err)
    else:
        recovery = job_importance(jobs, planted_modalities(prepared_dir), prepared_dir)
    if recovery:
        import pandas as pd

        paths["recovery_csv"] = io.write_csv(logdir / "recovery.csv", pd.DataFrame(recovery))
        recalls = [r["modality_recall"] for r in recovery if "modality_recall" in r]
        if recalls:
            by_seed = sorted(recovery, key=lambda r: int(r["seed"]))
            lines = ["", "Modality recall per seed: " + ", ".join(
                f"seed {r['seed']}: {r['modality_recall']:.2f}" for r in by_seed)]
            io.write_text(paths["markdown"], Path(paths["markdown"]).read_text() + "\n".join(lines) + "\n")
    return {"paths": paths, "recovery": recovery}


def run(args: argparse.Namespace) -> int:
    logdir = Path(args.logdir)
    if not args.aggregate_only:
        command = multirun_command(args.config_dir, args.config_name, args.experiment, logdir,
                                   "seed_${args.seed}", args.overrides)
        launch_multirun(command, logdir)
    out = aggregate_seeds(logdir, args.prepared)
    print(Path(out["paths"]["markdown"]).read_text())
    print(f"written: {', '.join(str(p) for p in out['paths'].values())}")
    return 0
