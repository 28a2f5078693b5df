"""``fusion vae-table1``: VAE at several latent sizes plus both PCA baselines -> Table I.

Two steps:

1. a Hydra multirun of the VAE pipeline, one job per latent size, launched as a subprocess::

       catalyst-dl run --hydra --multirun --config-dir conf --config-name vae \\
           +experiment=vae_table1 logdir=<LOGDIR>/latent_${model.latent_dim} [overrides]

   The sweep itself (latent sizes, folds, epochs) is in ``conf/experiment/vae_table1.yaml``
   (``hydra.sweeper.params``), so the same command runs on a cluster launcher
   (``hydra/launcher=slurm``, which also aggregates the folds once at the end) by adding that override;
2. aggregation: every job's ``results.json`` gives a VAE cell; the PCA baselines run on the folds of
   the jobs (their ``splits.json``) with the jobs' SVM settings; ``table1.md``, ``table1.csv``,
   ``table1_long.csv``, ``pca_baselines.json`` and ``recovery.csv`` are written to LOGDIR; each job
   gets ``importance.csv`` / ``importance.png`` and, on a cohort with ground truth, its
   ``results.json`` gains ``recovery.modality_recall``.

``--aggregate-only`` redoes step 2 on an existing LOGDIR. This module only starts Catalyst as a
separate process; it never imports catalyst or hydra.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from fusion.cli.launch import quiet_entry_point, training_command
from fusion.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

DEFAULT_LOGDIR = "runs/vae_table1"


# --------------------------------------------------------------------------------------------
# shared by vae-table1 and vae-seeds
# --------------------------------------------------------------------------------------------


def add_sweep_arguments(parser: argparse.ArgumentParser, default_logdir: str, experiment: str) -> None:
    """Arguments common to the sweep commands."""
    parser.add_argument("--logdir", default=default_logdir,
                        help=f"sweep folder: one sub-folder per job plus the tables (default {default_logdir})")
    parser.add_argument("--config-dir", default=None, help="Hydra config folder (default: the shipped configs)")
    parser.add_argument("--config-name", default="vae",
                        help="top-level config (default vae; vae_paper for the paper size)")
    parser.add_argument("--experiment", default=experiment,
                        help=f"experiment config under <config-dir>/experiment (default {experiment})")
    parser.add_argument("--aggregate-only", action="store_true",
                        help="do not train: rebuild the tables from the jobs already in --logdir")
    parser.add_argument("overrides", nargs="*",
                        help="Hydra overrides for every job, after `--` "
                             "(e.g. -- stage.num_epochs=2 hydra/launcher=local)")


def multirun_command(
    config_dir: str | os.PathLike | None, config_name: str, experiment: str, logdir: Path, job_dir: str,
    overrides: Sequence[str],
) -> list[str]:
    """The Hydra multirun command line; ``job_dir`` is the per-job folder pattern under ``logdir``."""
    return training_command(config_name, [
        f"+experiment={experiment}",
        f"logdir={logdir.resolve()}/{job_dir}",
        f"hydra.sweep.dir={logdir.resolve()}/hydra/multirun",
        *overrides,
    ], config_dir, multirun=True)


def launch_multirun(command: list[str], logdir: Path) -> None:
    """Run the multirun in a subprocess; refuse to overwrite a sweep that already has results."""
    existing = sorted(logdir.glob("*/results.json"))
    if existing:
        raise InputError(
            f"{logdir} already holds results of an earlier sweep ({existing[0].parent.name}, ...): "
            "choose another --logdir (LOGDIR=...), or rebuild its tables with --aggregate-only"
        )
    logdir.mkdir(parents=True, exist_ok=True)
    logger.info("launching: %s", " ".join(command))
    env = quiet_entry_point()
    env.setdefault("HYDRA_FULL_ERROR", "1")
    completed = subprocess.run(command, env=env)
    if completed.returncode != 0:
        raise ConfigError(
            f"the Hydra multirun failed with exit code {completed.returncode}; see its output above "
            f"(jobs that finished keep their results in {logdir})"
        )


def collect_jobs(logdir: Path) -> list[dict]:
    """Every finished job under ``logdir``: ``{"dir", "results", "config", "record"}``.

    ``config`` is the job's resolved config (``configs/_config.json`` written by catalyst-dl), or
    an empty dict when absent.
    """
    from fusion import io
    from fusion.evaluate.tables import vae_record

    jobs = []
    for path in sorted(logdir.glob("*/results.json")):
        results = io.read_json(path)
        config_path = path.parent / "configs" / "_config.json"
        config = io.read_json(config_path) if config_path.is_file() else {}
        if "latent_dim" not in results or results.get("latent_dim") is None:
            results["latent_dim"] = (config.get("model") or {}).get("latent_dim")
        record = vae_record(results, source=str(path))
        if results.get("complete") is False:
            logger.warning("%s: only %s of %s folds finished", path, results.get("n_folds"), results.get("n_splits"))
        jobs.append({"dir": path.parent, "results": results, "config": config, "record": record})
    if not jobs:
        raise InputError(f"{logdir}: no job has a results.json (did the sweep run? see the Hydra output)")
    return jobs


def config_value(config: dict, dotted: str, default=None):
    """A value of a resolved config by dotted key (``"folds.n_splits"``), ``default`` if absent."""
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def prepared_dir_of(jobs: list[dict], override: str | None = None) -> Path:
    """The prepared cohort the jobs trained on (all must agree), or ``override``."""
    if override:
        return Path(override)
    dirs = {config_value(j["config"], "data.prepared_dir") for j in jobs}
    dirs.discard(None)
    if len(dirs) != 1:
        raise InputError(
            f"cannot tell which prepared cohort the jobs used (data.prepared_dir: {sorted(dirs) or 'absent'}); "
            "give it with --prepared"
        )
    return Path(dirs.pop())


def planted_modalities(prepared_dir: Path) -> list[int] | None:
    """Planted effect modalities from ``ground_truth.json`` beside the prepared data, if any."""
    from fusion import io

    for path in (prepared_dir / "ground_truth.json", prepared_dir.parent / "ground_truth.json"):
        if path.is_file():
            truth = io.read_json(path)
            if not truth.get("effect", True):
                return None
            planted = truth.get("effect_modalities")
            if not planted:
                return None
            return [int(m) for m in planted]
    return None


def job_importance(jobs: list[dict], planted: list[int] | None, prepared_dir: Path) -> list[dict]:
    """``importance.csv``/``.png`` per job; modality recall merged into its ``results.json``."""
    from fusion import io
    from fusion.workflows.importance import importance_with_figure

    names, domains = modality_labels(prepared_dir)
    rows = []
    for job in jobs:
        try:
            summary = importance_with_figure(job["dir"], n_modalities=len(names), planted_modalities=planted,
                                         names=names, domains=domains)
        except InputError as err:
            logger.warning("importance of %s skipped: %s", job["dir"], err)
            continue
        row = {"job": job["dir"].name, "latent_dim": job["record"]["latent_dim"], "seed": job["record"].get("seed"),
               "top5": " ".join(str(int(m)) for m in summary["top"][:5])}
        if "modality_recall" in summary:
            row["modality_recall"] = summary["modality_recall"]
            results_path = job["dir"] / "results.json"
            results = io.read_json(results_path)
            results.setdefault("recovery", {})
            results["recovery"]["modality_recall"] = summary["modality_recall"]
            results["recovery"]["planted_modalities"] = summary["planted_modalities"]
            io.write_json(results_path, results)
        rows.append(row)
    return rows


def modality_labels(prepared_dir: Path) -> tuple[list[str], list[str]]:
    """Modality names and domains from the prepared ``meta.json`` (NeuroMark's 54 when absent)."""
    from fusion import io
    from fusion.data.neuromark import modality_domains, modality_names

    meta_path = prepared_dir / "meta.json"
    meta = io.read_json(meta_path) if meta_path.is_file() else {}
    names, domains = meta.get("modality_names"), meta.get("modality_domains")
    if names and domains and len(names) == len(domains):
        return list(names), list(domains)
    return modality_names(), modality_domains()


# --------------------------------------------------------------------------------------------
# vae-table1
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    add_sweep_arguments(parser, DEFAULT_LOGDIR, "vae_table1")
    parser.add_argument("--prepared", default=None,
                        help="prepared cohort for the PCA baselines (default: the jobs' data.prepared_dir)")
    parser.add_argument("--pca-dims", default=None,
                        help="comma-separated component counts for the baselines (default: the jobs' latent sizes)")
    parser.add_argument("--chunk-size", type=int, default=32768,
                        help="features streamed per chunk when forming the PCA Gram matrices (default 32768)")
    parser.add_argument("--pca-backend", default="auto", choices=("auto", "cupy", "numpy"),
                        help="Gram products on CuPy (GPU) or NumPy (default auto)")


def table1_caption(jobs: list[dict], latent_dims: Sequence[int]) -> str:
    """Caption stating what differs from the paper's protocol, read from the jobs' configs."""
    config = jobs[0]["config"]
    n_folds = sorted({len(j["record"]["auc"]) for j in jobs})
    n_splits = config_value(config, "folds.n_splits", n_folds[-1])
    epochs = config_value(config, "stage.num_epochs", "?")
    channels = config_value(config, "model.channels", "?")
    seed = config_value(config, "args.seed", jobs[0]["record"].get("seed"))
    prepared = config_value(config, "data.prepared_dir", "?")
    paper_dims = "128/256/512/1024"
    dims = "/".join(str(l) for l in latent_dims)
    parts = [
        f"ROC-AUC on the test folds, mean ± std over {n_splits} stratified folds (paper: 10), seed {seed}",
        f"cohort {prepared}",
        f"VAE: encoder channels {channels}, at most {epochs} epochs per fold",
        f"latent dimensions {dims}"
        + ("" if dims == paper_dims else f" (the paper uses {paper_dims}; scaled to the reduced model and cohort)"),
        "PCA baselines fitted on the train+validation subjects of the same folds, same linear SVM; "
        "early fusion = one PCA on all modalities concatenated, late fusion = one PCA per modality, concatenated; "
        "n/a: more components than the fit set supports (n_fit - 1)",
    ]
    return "; ".join(parts) + "."


def aggregate_table1(
    logdir: Path, prepared: str | None = None, pca_dims: Sequence[int] | None = None,
    chunk_size: int = 32768, pca_backend: str = "auto",
) -> dict:
    """Step 2 of ``vae-table1`` on a finished sweep folder; returns the written paths and records."""
    from fusion import io
    from fusion.evaluate.pca_baselines import baselines_for_run
    from fusion.evaluate.tables import write_table1

    jobs = collect_jobs(logdir)
    seen: dict[int, Path] = {}
    for job in jobs:
        l = job["record"]["latent_dim"]
        if l in seen:
            raise InputError(f"{logdir}: jobs {seen[l].name} and {job['dir'].name} both have latent dimension {l}")
        seen[l] = job["dir"]
    latent_dims = sorted(seen)
    dims = sorted(set(pca_dims or latent_dims) | set(latent_dims))
    splits = [j["dir"] / "splits.json" for j in jobs if (j["dir"] / "splits.json").is_file()]
    if not splits:
        raise InputError(f"{logdir}: no job wrote splits.json; the baselines need the VAE's folds")
    texts = {p.read_text() for p in splits}
    if len({_fold_payload(t) for t in texts}) != 1:
        raise InputError(f"{logdir}: the jobs were trained on different folds; Table I needs one fold set "
                         "(use the same folds.seed for every latent size)")
    prepared_dir = prepared_dir_of(jobs, prepared)
    svm = dict(config_value(jobs[0]["config"], "svm", {}) or {})
    baseline_records = baselines_for_run(
        prepared_dir, dims, splits=splits[0], svm=svm, chunk_size=chunk_size, backend=pca_backend,
    )
    io.write_json(logdir / "pca_baselines.json", {"splits": str(splits[0]), "prepared_dir": str(prepared_dir),
                                                   "svm": svm, "records": baseline_records})
    records = [j["record"] for j in jobs] + baseline_records
    caption = table1_caption(jobs, dims)
    paths = write_table1(logdir, records, dims, caption)

    planted = planted_modalities(prepared_dir)
    recovery = job_importance(jobs, planted, prepared_dir)
    if recovery:
        import pandas as pd

        paths["recovery_csv"] = io.write_csv(logdir / "recovery.csv", pd.DataFrame(recovery))
        if planted is not None:
            lines = ["", f"Modality recall (planted modalities {planted} found in the top-{len(planted)} of the "
                         "SVM importance, mean over folds):", ""]
            lines += [f"- latent {r['latent_dim']}: {r['modality_recall']:.2f} (top-5: {r['top5']})"
                      for r in sorted(recovery, key=lambda r: r["latent_dim"])]
            io.write_text(paths["markdown"], Path(paths["markdown"]).read_text() + "\n".join(lines) + "\n")
    return {"paths": paths, "records": records, "recovery": recovery}


def _fold_payload(text: str) -> str:
    """The fold assignment of a ``splits.json`` (ignoring formatting)."""
    import json

    data = json.loads(text)
    return json.dumps([data.get("subject_ids"), [(f["train"], f["val"], f["test"]) for f in data.get("folds", [])]])


def run(args: argparse.Namespace) -> int:
    logdir = Path(args.logdir)
    if not args.aggregate_only:
        command = multirun_command(args.config_dir, args.config_name, args.experiment, logdir,
                                   "latent_${model.latent_dim}", args.overrides)
        launch_multirun(command, logdir)
    pca_dims = [int(v) for v in args.pca_dims.split(",")] if args.pca_dims else None
    out = aggregate_table1(logdir, args.prepared, pca_dims, args.chunk_size, args.pca_backend)
    print(Path(out["paths"]["markdown"]).read_text())
    print(f"written: {', '.join(str(p) for p in out['paths'].values())}")
    return 0
