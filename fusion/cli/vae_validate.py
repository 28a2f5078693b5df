"""``fusion vae-validate``: the VAE with its defaults on a family of cohorts it was not tuned on.

For every variant of :data:`fusion.data.vae_variants.VAE_VARIANTS` and every cohort seed: the
cohort is generated and prepared (with the variant's voxel size), ``conf/vae.yaml`` is trained on
it through ``catalyst-dl`` (its aggregation writes the pooled AUC with its CI, the SVM permutation
p-value and both PCA baselines on the same folds; its analysis writes modality recall and map
correlation), and a mass-univariate reference (voxelwise Welch t per modality on the same
subjects) is scored the same way. One record per run is written as soon as it finishes, so an
interrupted validation resumes where it stopped; ``validation.json`` and ``validation.md``
summarise the runs (mean over seeds per variant).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from fusion import io
from fusion.cli.launch import quiet_entry_point, training_command
from fusion.errors import ConfigError, FusionError

if TYPE_CHECKING:
    from nibabel.spatialimages import SpatialImage

DEFAULT_SEEDS = (0, 1, 2)
# What --quick changes: tiny grid and model, 3 folds, 1 epoch, few permutations (a test, seconds).
QUICK: dict[str, Any] = {
    "size": "tiny", "n_subjects": 24, "variants": ("embedded", "null"), "seeds": (0,),
    "overrides": ("folds.n_splits=3", "stage.num_epochs=1", "stage.batch_size=4", "model.channels=[2,2]",
                  "model.head_channels=[2]", "model.latent_dim=3", "statistics.n_perm=20", "statistics.n_boot=200",
                  "statistics.pca_components=[2]", "callbacks.analysis.tsne_max_iter=250",
                  "callbacks.analysis.tsne_perplexity=5", "callbacks.progress=null"),
}
# Extra runs of a variant beside the defaults: what each confound option does on the site cohort.
CONFOUND_RUNS: dict[str, dict[str, tuple[str, ...]]] = {
    "site_confound": {"regress_site": ("confounds.regress=[site]",), "combat": ("confounds.combat_site=site",)},
}


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    from fusion.data.vae_variants import VAE_VARIANTS

    parser.add_argument("--out", default="runs/vae_validate", help="folder of cohorts, runs and the summary")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variants (default: all): " + ", ".join(VAE_VARIANTS))
    parser.add_argument("--seeds", default=None, help="comma-separated cohort seeds (default 0,1,2)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny cohorts and model, 3 folds, 1 epoch (seconds per run)")
    parser.add_argument("--no-confound-runs", action="store_true",
                        help="skip the extra confound-option runs of the site variant")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every VAE run (after --)")


def _parse_list(text: str | None, default: tuple, cast=str) -> list:
    if not text:
        return list(default)
    return [cast(t.strip()) for t in text.split(",") if t.strip()]


def _cohort(out: Path, variant: str, seed: int, quick: bool) -> tuple[Path, dict]:
    """Generate and prepare one cohort (skipped when already there); returns the prepared folder."""
    from fusion.data.prepare import prepare_cohort
    from fusion.data.synthetic_volumes import make_vae_cohort
    from fusion.data.vae_variants import variant_settings

    spec = variant_settings(variant)
    size = QUICK["size"] if quick else spec["size"]
    n_subjects = QUICK["n_subjects"] if quick else spec["n_subjects"]
    voxel_size = spec["voxel_size"] if size == spec["size"] else None
    folder = out / "cohorts" / f"{variant}-s{seed}"
    prepared = folder / "prepared"
    if not (prepared / "index.csv").is_file():
        manifest = folder / "manifest.csv"
        if not manifest.is_file():
            make_vae_cohort(folder, size=size, n_subjects=n_subjects, effect=spec["effect"], seed=seed,
                            overwrite=True, progress=False, **spec["knobs"])
        prepare_cohort(manifest, prepared, progress=False, voxel_size=voxel_size)
    return prepared, {"size": size, "voxel_size": voxel_size, "doc": spec["doc"]}


def univariate_reference(prepared: Path) -> dict[str, Any] | None:
    """Voxelwise Welch t (patients vs controls) per modality on every subject of a prepared folder.

    A modality's score is its peak |t| inside the brain; modality recall is the share of planted
    modalities among the top-k by that score (k = their number, as for the VAE's importance);
    map correlation is the mean over planted modalities of the Pearson r of the mean
    patient-minus-control difference with the planted effect map. None without ground truth.
    """
    import nibabel as nib
    import pandas as pd

    from fusion.evaluate.importance import modality_recall
    from fusion.interpret.group_maps import map_correlation

    truth_path = prepared / "ground_truth.json"
    if not truth_path.is_file():
        return None
    truth = io.read_json(truth_path)
    planted = [int(m) for m in truth.get("effect_modalities", [])]
    index = pd.read_csv(prepared / "index.csv", dtype={"subject_id": str})
    labels = index["label"].to_numpy(dtype=int)
    data = np.stack([io.load_npy(prepared / p) for p in index["path"]]).astype(np.float64)   # (n, M, X, Y, Z)
    mask = np.abs(data).mean(axis=(0, 1)) > 1e-3 * np.abs(data).mean(axis=(0, 1)).max()
    a, b = data[labels == 1], data[labels == 0]
    diff = a.mean(0) - b.mean(0)
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    t = np.where(se > 0, diff / np.where(se > 0, se, 1.0), 0.0)
    score = np.array([np.abs(t[m][mask]).max() for m in range(t.shape[0])])
    out: dict[str, Any] = {"peak_t": score.tolist(), "planted_modalities": planted}
    if planted:
        effect_image = cast("SpatialImage", nib.load(str(prepared / truth["effect_map"])))  # typed as FileBasedImage
        effect = np.moveaxis(np.asarray(effect_image.get_fdata()), -1, 0)
        out["modality_recall"] = modality_recall(score, planted)
        out["map_correlation"] = float(np.nanmean([map_correlation(diff[m], effect[m], mask) for m in planted]))
    return out


def _train(prepared: Path, logdir: Path, overrides: list[str], log: Path) -> float:
    """Run ``conf/vae.yaml`` on ``prepared`` into ``logdir``; returns the wall time (s)."""
    cmd = training_command("vae", [f"logdir={logdir.resolve()}", f"data.prepared_dir={prepared.resolve()}",
                                   "args.autoresume=last", *overrides])
    start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=quiet_entry_point())
    if proc.returncode != 0:
        raise FusionError(f"VAE run {logdir} failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - start


def _record(logdir: Path, prepared: Path, info: dict, seconds: float) -> dict[str, Any]:
    results = io.read_json(logdir / "results.json")
    stats = results.get("statistics", {})
    baselines = {k: v for k, v in (stats.get("pca_baselines") or {}).items() if isinstance(v.get("auc"), float)}
    best = max(baselines, key=lambda k: baselines[k]["fold_auc"]) if baselines else None
    recovery = results.get("recovery", {})
    return {
        **info,
        "vae_auc": results.get("auc_mean"), "vae_auc_std": results.get("auc_std"),
        "vae_pooled_auc": stats.get("pooled_auc", {}).get("auc"),
        "vae_pooled_ci": stats.get("pooled_auc", {}).get("ci"),
        "permutation_p": (stats.get("permutation") or {}).get("p"),
        "pca": {k: v["fold_auc"] for k, v in baselines.items()},
        "pca_early": max([v["fold_auc"] for v in baselines.values() if v["method"] == "joint"], default=None),
        "pca_late": max([v["fold_auc"] for v in baselines.values() if v["method"] == "per_modality"], default=None),
        "best_pca": best, "best_pca_auc": baselines[best]["fold_auc"] if best else None,
        "interpretable": results.get("interpretable"), "flags": results.get("flags", []),
        "vae_modality_recall": recovery.get("modality_recall"), "vae_map_correlation": recovery.get("map_correlation"),
        "univariate": univariate_reference(prepared),
        "seconds": seconds, "logdir": str(logdir),
    }


def _mean(values: list) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float))]
    return float(np.mean(vals)) if vals else None


def summarise(records: dict[str, dict]) -> list[dict[str, Any]]:
    """One row per variant (and confound option): means over its cohort seeds."""
    groups: dict[str, list[dict]] = {}
    for rec in records.values():
        groups.setdefault(rec["row"], []).append(rec)
    rows = []
    for row, recs in groups.items():
        uni = [r.get("univariate") or {} for r in recs]
        vae, best = _mean([r["vae_auc"] for r in recs]), _mean([r["best_pca_auc"] for r in recs])
        rows.append({
            "row": row, "n_seeds": len(recs), "vae_auc": vae,
            "vae_auc_sd_over_seeds": float(np.std([r["vae_auc"] for r in recs])) if recs else None,
            "pca_early": _mean([r["pca_early"] for r in recs]), "pca_late": _mean([r["pca_late"] for r in recs]),
            "best_pca": best, "vae_minus_best_pca": None if vae is None or best is None else vae - best,
            "permutation_p": _mean([r["permutation_p"] for r in recs]),
            "vae_modality_recall": _mean([r["vae_modality_recall"] for r in recs]),
            "univariate_modality_recall": _mean([u.get("modality_recall") for u in uni]),
            "vae_map_correlation": _mean([r["vae_map_correlation"] for r in recs]),
            "univariate_map_correlation": _mean([u.get("map_correlation") for u in uni]),
            "flagged": sum(1 for r in recs if r.get("interpretable") is False),
            "minutes": sum(r["seconds"] for r in recs) / 60,
        })
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    def f(v, d=3):
        return "–" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))

    lines = ["| variant | seeds | VAE AUC | early PCA | late PCA | VAE − best PCA | perm. p | recall VAE / univ. | "
             "map r VAE / univ. | flagged | min |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['row']} | {r['n_seeds']} | {f(r['vae_auc'])} ± {f(r['vae_auc_sd_over_seeds'])} | "
            f"{f(r['pca_early'])} | {f(r['pca_late'])} | {f(r['vae_minus_best_pca'])} | {f(r['permutation_p'])} | "
            f"{f(r['vae_modality_recall'], 2)} / {f(r['univariate_modality_recall'], 2)} | "
            f"{f(r['vae_map_correlation'], 2)} / {f(r['univariate_map_correlation'], 2)} | "
            f"{r['flagged']}/{r['n_seeds']} | {f(r['minutes'], 1)} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from fusion.data.vae_variants import VAE_VARIANTS, variant_settings

    out = Path(args.out)
    variants = _parse_list(args.variants, QUICK["variants"] if args.quick else tuple(VAE_VARIANTS))
    for v in variants:
        variant_settings(v)  # unknown names fail before anything runs
    try:
        seeds = _parse_list(args.seeds, QUICK["seeds"] if args.quick else DEFAULT_SEEDS, int)
    except ValueError as err:
        raise ConfigError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from err
    overrides = [*(QUICK["overrides"] if args.quick else ()), *args.overrides]
    records_dir = out / "records"
    start = time.perf_counter()
    records: dict[str, dict] = {}
    for variant in variants:
        extra = {} if args.no_confound_runs else CONFOUND_RUNS.get(variant, {})
        for seed in seeds:
            prepared, info = _cohort(out, variant, seed, args.quick)
            for option, option_overrides in {"": (), **extra}.items():
                row = variant + (f" + {option}" if option else "")
                key = f"{variant}{'-' + option if option else ''}-s{seed}"
                path = records_dir / f"{key}.json"
                if path.is_file():
                    records[key] = io.read_json(path)
                    print(f"{key}: done earlier ({records[key]['seconds']:.0f} s)", flush=True)
                    continue
                logdir = out / "runs" / key
                seconds = _train(prepared, logdir, [*overrides, *option_overrides], out / "logs" / f"{key}.log")
                rec = {"row": row, "variant": variant, "option": option or None, "seed": seed,
                       **_record(logdir, prepared, info, seconds)}
                io.write_json(path, rec)
                records[key] = rec
                print(f"{key}: VAE AUC {rec['vae_auc']:.3f}, best PCA {rec['best_pca_auc'] or float('nan'):.3f}, "
                      f"p {rec['permutation_p']}, {seconds:.0f} s", flush=True)
    rows = summarise(records)
    elapsed = time.perf_counter() - start
    io.write_json(out / "validation.json", {"rows": rows, "records": records, "overrides": overrides,
                                            "seconds_this_call": elapsed})
    table = markdown(rows)
    io.write_text(out / "validation.md", "# VAE validation family\n\n" + table)
    print(table)
    print(f"vae-validate: {len(records)} run(s), {elapsed / 60:.1f} min in this call -> {out / 'validation.md'}")
    return 0
