"""``fusion vae-analyze``: importance, t-SNE, group maps, recovery and a report for a VAE run.

Every option left out takes the value the run itself used: its ``callbacks.analysis`` node in
``<logdir>/configs/_config.json`` (seed, t-SNE iterations, perplexity and subject subset, fold,
top-k, percentile, mask fraction), else the defaults below. The report goes to
``report_analyze.md`` beside the run's ``report.md``, which is replaced only with
``--replace-report``.

Example::

    fusion vae-analyze --logdir runs/demo/vae --tsne-iter 2000
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Option -> (key of the run's ``callbacks.analysis`` node, default when the run has none).
RUN_DEFAULTS: dict[str, tuple[str, Any]] = {
    "fold": ("fold", 0),
    "top_k": ("top_k", 5),
    "percentile": ("percentile", 99.0),
    "perplexity": ("tsne_perplexity", 30.0),
    "tsne_iter": ("tsne_max_iter", 1000),
    "tsne_max_subjects": ("tsne_max_subjects", None),
    "tsne_backend": ("tsne_backend", "auto"),
    "seed": ("seed", 0),
    "mask_fraction": ("mask_fraction", 1e-3),
    "batch_size": ("batch_size", 8),
}
REPORT_NAME = "report_analyze.md"


def add_arguments(parser: argparse.ArgumentParser, command: str = "vae-analyze") -> None:
    parser.add_argument("--logdir", required=True, type=Path, help="finished VAE run directory")
    parser.add_argument("--fold", type=int, default=None,
                        help="fold whose model and latents to interpret (default: the run's)")
    parser.add_argument("--prepared", type=Path, default=None,
                        help="prepared data folder (default: the one named in the run config)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="modalities summed in the group map (default: the run's, else 5)")
    parser.add_argument("--percentile", type=float, default=None,
                        help="per-modality threshold percentile of |difference| (default: the run's, else 99)")
    parser.add_argument("--perplexity", type=float, default=None, help="t-SNE perplexity (default: the run's, else 30)")
    parser.add_argument("--tsne-iter", type=int, default=None, help="t-SNE iterations (default: the run's, else 1000)")
    parser.add_argument("--tsne-max-subjects", type=int, default=None,
                        help="embed a random subset of this many subjects (default: the run's, else all)")
    parser.add_argument("--tsne-all-subjects", action="store_true",
                        help="embed every subject, whatever the run's tsne_max_subjects")
    parser.add_argument("--tsne-backend", choices=("auto", "cuml", "sklearn"), default=None)
    parser.add_argument("--seed", type=int, default=None, help="seed of the t-SNE (default: the run's, else 0)")
    parser.add_argument("--mask-fraction", type=float, default=None,
                        help="brain mask: voxels whose mean |input| exceeds this fraction of its maximum "
                             "(default: the run's, else 1e-3)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="latents decoded at once (default: the run's, else 8)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    parser.add_argument("--replace-report", action="store_true",
                        help=f"rewrite the run's report.md (default: write {REPORT_NAME} beside it)")
    parser.add_argument("--no-report", action="store_true", help="write no report, only the figures and results.json")


def run_analysis_settings(logdir: Path) -> dict[str, Any]:
    """The ``callbacks.analysis`` node of the run's resolved config (empty when there is none)."""
    from fusion.rundir import load_run_config

    config = load_run_config(logdir) or {}
    node = (config.get("callbacks") or {}).get("analysis") if isinstance(config, Mapping) else None
    return dict(node) if isinstance(node, Mapping) else {}


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Each option: the command line's value, else the run's, else the default; plus where each
    came from (``"command line"``, ``"run config"``, ``"default"``)."""
    run_node = run_analysis_settings(args.logdir)
    settings: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option, (key, default) in RUN_DEFAULTS.items():
        given = getattr(args, option)
        if given is not None:
            settings[option], sources[option] = given, "command line"
        elif key in run_node:
            settings[option], sources[option] = run_node[key], "run config"
        else:
            settings[option], sources[option] = default, "default"
    if getattr(args, "tsne_all_subjects", False):
        settings["tsne_max_subjects"], sources["tsne_max_subjects"] = None, "command line"
    settings["sources"] = sources
    return settings


def run(args: argparse.Namespace) -> int:
    from fusion.workflows.vae_analysis import VAEAnalysisSettings, analyze_vae_run

    settings = resolve_settings(args)
    report_name = "report.md" if args.replace_report else REPORT_NAME
    added = analyze_vae_run(
        args.logdir,
        VAEAnalysisSettings(
            fold=settings["fold"], top_k=settings["top_k"], percentile=settings["percentile"],
            tsne_perplexity=settings["perplexity"], tsne_max_iter=settings["tsne_iter"],
            tsne_max_subjects=settings["tsne_max_subjects"], tsne_backend=settings["tsne_backend"],
            seed=settings["seed"], batch_size=settings["batch_size"], mask_fraction=settings["mask_fraction"],
            device=args.device,
        ),
        prepared_dir=args.prepared,
        report=not args.no_report,
        report_name=report_name,
    )
    summary: dict[str, Any] = {"results": str(args.logdir / "results.json")}
    if not args.no_report:
        summary["report"] = str(args.logdir / report_name)
    summary["settings"] = {k: settings[k] for k in RUN_DEFAULTS}
    summary["settings_from"] = settings["sources"]
    group = added.get("group_difference") or {}
    if "comparison" in group:
        summary["group_difference_vs_inputs"] = {k: group["comparison"][k] for k in ("correlation", "dice")}
    if "recovery" in added:
        summary["recovery"] = {k: added["recovery"][k] for k in ("modality_recall", "map_correlation", "map_dice")
                               if k in added["recovery"]}
    if added["analysis"]["skipped"]:
        summary["skipped"] = added["analysis"]["skipped"]
    print(json.dumps(summary, indent=2))
    return 0
