"""``report.md`` of a finished VAE run directory, from its files alone.

:func:`fusion.workflows.vae_analysis.analyze_vae_run` computes and draws what the report shows;
:func:`write_vae_report` only reads the run directory, so it can be rewritten at any time. A
piece that was not made (no checkpoint, no prepared data, no ground truth) gets a line saying why.

Output names (all in the run directory):
``roc_curves.png``, ``importance.csv`` / ``importance.png`` (fusion.evaluate.importance),
``latent_tsne.png`` / ``latent_tsne.npz``, ``group_difference_decoded.nii.gz`` (every modality,
unthresholded, ``(X, Y, Z, n_modalities)``), ``group_difference_top{k}.nii.gz`` (thresholded, summed;
paper Fig. 3), ``group_difference_input_top{k}.nii.gz``, ``group_difference.png``,
``group_difference_comparison.png``, ``report.md``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fusion import io
from fusion.rundir import fold_dirs

__all__ = ["write_vae_report"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


# --------------------------------------------------------------------------- report
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def _image(lines: list[str], logdir: Path, name: str, alt: str, missing: str) -> None:
    if (logdir / name).is_file():
        lines.append(f"![{alt}]({name})")
    else:
        lines.append(f"_Not available: {missing}._")
    lines.append("")


def _verdict_lines(results: Mapping[str, Any]) -> list[str]:
    """The warning banner (when the run is flagged) and the pooled statistics, for the top of the report."""
    stats = results.get("statistics")
    if not stats:
        return []
    lines: list[str] = []
    if results.get("interpretable") is False:
        lines += ["> **WARNING: the VAE's importance and group maps are not interpretable.**"]
        lines += [f"> - {reason}" for reason in results.get("flags", [])]
        lines += [""]
    pooled = stats.get("pooled_auc", {})
    perm = stats.get("permutation") or {}
    text = f"Pooled test ROC-AUC {_fmt(pooled.get('auc'))} (95% bootstrap CI {_fmt(pooled.get('ci', [None])[0])}-" \
           f"{_fmt(pooled.get('ci', [None, None])[1])}, n = {pooled.get('n')})"
    if perm:
        text += f"; SVM label-permutation p = {perm['p']:.3g} ({perm['n_perm']} permutations, SVM refitted)"
    lines += [text + ".", ""]
    scored = {k: v for k, v in (stats.get("pca_baselines") or {}).items() if isinstance(v.get("auc"), float)}
    if scored:
        lines += ["PCA baselines on the same folds (pooled AUC): " + ", ".join(
            f"{k.replace('@', ' l=')} {_fmt(v['auc'])}" for k, v in scored.items()) + ".", ""]
    return lines


def write_vae_report(logdir: PathLike, name: str = "report.md") -> Path:
    """Assemble ``report.md`` (or ``name``) in a VAE run directory from its result files and figures.

    Sections: classification (AUC per fold, mean and std, ROC curves), modality importance (figure
    and top-10 table), latent structure (t-SNE), group differences (figures, comparison with the
    inputs) and recovery of the planted truth. Missing pieces get a line saying why.
    """
    logdir = Path(logdir)
    results_path = logdir / "results.json"
    results = io.read_json(results_path) if results_path.is_file() else {}
    analysis = results.get("analysis", {})
    skipped = analysis.get("skipped", {})
    lines = [f"# VAE run report: `{logdir.name}`", ""]
    facts = [f"{k}: {results[k]}" for k in ("latent_dim", "seed") if k in results]
    folds = fold_dirs(logdir)
    facts.append(f"folds: {len(folds)}")
    lines += [", ".join(facts), ""]
    lines += _verdict_lines(results)
    not_interpretable = results.get("interpretable") is False
    caveat = ["> **Not interpretable** (see the warning at the top): this section describes what the model "
              "uses, not a finding about the groups.", ""] if not_interpretable else []

    # Classification.
    lines += ["## Classification (linear SVM on the concatenated latents)", ""]
    rows = []
    for k, path in folds:
        res = io.read_json(path / "result.json") if (path / "result.json").is_file() else None
        if res is not None and res.get("auc") is not None:
            rows.append((k, res.get("auc"), res.get("n_train"), res.get("n_test")))
    if rows:
        lines += ["| fold | ROC-AUC | n train | n test |", "|---:|---:|---:|---:|"]
        lines += [f"| fold_{k:02d} | {_fmt(a, 4)} | {_fmt(ntr)} | {_fmt(nte)} |" for k, a, ntr, nte in rows]
        aucs = np.asarray([a for _, a, _, _ in rows], dtype=float)
        mean = results.get("auc_mean", float(aucs.mean()))
        std = results.get("auc_std", float(aucs.std()))
        lines += ["", f"**Mean ROC-AUC {_fmt(mean, 4)} ± {_fmt(std, 4)}** over {len(rows)} folds.", ""]
    elif "auc_mean" in results:
        lines += [f"**Mean ROC-AUC {_fmt(results['auc_mean'], 4)} ± {_fmt(results.get('auc_std'), 4)}**", ""]
    else:
        lines += ["_Not available: no fold_XX/result.json with an AUC and no results.json._", ""]
    _image(lines, logdir, "roc_curves.png", "ROC curves", skipped.get("roc", "the analysis has not been run"))

    # Importance.
    lines += ["## Modality importance", ""] + caveat
    csv = logdir / "importance.csv"
    if csv.is_file():
        import pandas as pd

        table = pd.read_csv(csv).sort_values("mean", ascending=False, kind="stable").head(10)
        lines += ["Linear-SVM |w| summed per modality, normalised to 1; mean and std over folds.", ""]
        _image(lines, logdir, "importance.png", "top-10 modality importance", "no importance figure")
        lines += ["| rank | modality | domain | importance | std |", "|---:|---|---|---:|---:|"]
        for rank, (_, r) in enumerate(table.iterrows(), start=1):
            lines.append(f"| {rank} | {r['name']} | {r['domain']} | {r['mean']:.4f} | {r['std']:.4f} |")
        lines.append("")
    else:
        lines += [f"_Not available: {skipped.get('importance', 'importance.csv has not been written')}._", ""]

    # Latent structure.
    lines += ["## Latent structure", ""]
    tsne = analysis.get("tsne")
    if tsne:
        lines += [f"t-SNE of the fold_{int(analysis.get('fold', 0)):02d} posterior means, one point per subject and "
                  f"modality ({tsne['n_points']} points, perplexity {tsne['perplexity']:g}, {tsne['backend']}); "
                  "colour = NeuroMark domain, labels = ICN number (1 = ICN01) or GM (sMRI) at the modality's "
                  "median position.", ""]
    _image(lines, logdir, "latent_tsne.png", "latent t-SNE", "the analysis has not been run")

    # Group differences.
    lines += ["## Group differences (patients - controls)", ""] + caveat
    group = results.get("group_difference")
    if group:
        mods = ", ".join(group["modality_names"]) or "none"
        lines += [
            f"Decoded latent group centres of fold_{int(group['fold']):02d} ({group['n_patients']} patients, "
            f"{group['n_controls']} controls), patient minus control, thresholded at the "
            f"{group['threshold_percentile']:g}th percentile of |difference| per modality and summed over the "
            f"top {group['top_k']} modalities by importance ({group['importance_source']}): {mods}.", "",
        ]
        _image(lines, logdir, "group_difference.png", "decoded group difference",
               skipped.get("group_map", "no group-difference figure"))
        comp = group.get("comparison")
        if comp:
            _image(lines, logdir, "group_difference_comparison.png", "decoded vs input group difference",
                   "no comparison figure")
            lines += [
                "Agreement with the voxelwise patient-control difference of the inputs (same modalities, "
                "same threshold, within the data's brain mask):", "",
                "| measure | value |", "|---|---:|",
                f"| spatial correlation, summed maps | {_fmt(comp['correlation'])} |",
                f"| spatial correlation, thresholded summed maps | {_fmt(comp['correlation_thresholded'])} |",
                f"| Dice of supra-threshold voxels | {_fmt(comp['dice'])} |",
                "",
                "| modality | correlation | Dice |", "|---|---:|---:|",
            ]
            for _, n, r, d in zip(group["modalities"], group["modality_names"],
                                  comp["correlation_per_modality"], comp["dice_per_modality"]):
                lines.append(f"| {n} | {_fmt(r)} | {_fmt(d)} |")
            lines.append("")
        else:
            why = skipped.get("comparison", skipped.get("inputs", "not computed"))
            lines += [f"_Comparison with the inputs not available: {why}._", ""]
        files = ", ".join(f"`{v}`" for v in group.get("files", {}).values())
        lines += [f"Maps (NIfTI, input grid and affine): {files}.", ""]
    else:
        lines += [f"_Not available: {skipped.get('group_difference', 'the analysis has not been run')}._", ""]

    # Recovery.
    lines += ["## Recovery of the planted effect", ""]
    rec = results.get("recovery")
    if rec:
        planted = rec.get("planted_modalities")
        names = rec.get("planted_modality_names")
        listed = ", ".join(names) if names else ", ".join(f"modality {int(m) + 1}" for m in planted or [])
        lines += [f"Planted modalities: {listed}.", "", "| score | value |", "|---|---:|"]
        for key, what in (("modality_recall", "modality recall (planted found in the importance top-k)"),
                          ("map_correlation", "map correlation (decoded vs planted, mean over planted modalities)"),
                          ("map_dice", "map Dice (top-percentile voxels, mean over planted modalities)")):
            if key in rec:
                lines.append(f"| {what} | {_fmt(rec[key])} |")
        lines.append("")
        per = rec.get("map_per_modality")
        if per:
            lines += ["| planted modality | correlation | Dice |", "|---|---:|---:|"]
            label = dict(zip(map(str, planted or []), rec.get("planted_modality_names", [])))
            lines += [
                f"| {label.get(str(m), f'modality {int(m) + 1}')} | {_fmt(v['correlation'])} | {_fmt(v['dice'])} |"
                for m, v in per.items()
            ]
            lines.append("")
    else:
        lines += [f"_Not available: {skipped.get('recovery', 'the analysis has not been run')}._", ""]

    other = {k: v for k, v in skipped.items() if k in ("affine", "decoded_zero")}
    if other:
        lines += ["## Notes", ""] + [f"- {v}" for v in other.values()] + [""]
    return io.write_text(logdir / name, "\n".join(lines))
