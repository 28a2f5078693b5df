"""``fusion vae-analyze``: importance, t-SNE, group maps, recovery and report.md for a VAE run.

Example::

    fusion vae-analyze --logdir runs/demo/vae --fold 0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser, command: str = "vae-analyze") -> None:
    parser.add_argument("--logdir", required=True, type=Path, help="finished VAE run directory")
    parser.add_argument("--fold", type=int, default=0, help="fold whose model and latents to interpret (default 0)")
    parser.add_argument("--prepared", type=Path, default=None,
                        help="prepared data folder (default: the one named in the run config)")
    parser.add_argument("--top-k", type=int, default=5, help="modalities summed in the group map (default 5)")
    parser.add_argument("--percentile", type=float, default=99.0,
                        help="per-modality threshold percentile of |difference| (default 99)")
    parser.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    parser.add_argument("--tsne-iter", type=int, default=1000, help="t-SNE iterations (default 1000)")
    parser.add_argument("--tsne-max-subjects", type=int, default=None,
                        help="embed a random subset of this many subjects (default: all)")
    parser.add_argument("--tsne-backend", choices=("auto", "cuml", "sklearn"), default="auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the t-SNE (default 0)")
    parser.add_argument("--mask-fraction", type=float, default=1e-3,
                        help="brain mask: voxels whose mean |input| exceeds this fraction of its maximum (default 1e-3)")
    parser.add_argument("--batch-size", type=int, default=8, help="latents decoded at once (default 8)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite report.md")


def run(args: argparse.Namespace) -> int:
    from fusion.report.vae_report import analyze_vae_run

    added = analyze_vae_run(
        args.logdir,
        fold=args.fold,
        prepared_dir=args.prepared,
        top_k=args.top_k,
        percentile=args.percentile,
        tsne_perplexity=args.perplexity,
        tsne_max_iter=args.tsne_iter,
        tsne_max_subjects=args.tsne_max_subjects,
        tsne_backend=args.tsne_backend,
        seed=args.seed,
        batch_size=args.batch_size,
        mask_fraction=args.mask_fraction,
        device=args.device,
        report=not args.no_report,
    )
    summary = {"results": str(args.logdir / "results.json")}
    if not args.no_report:
        summary["report"] = str(args.logdir / "report.md")
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
