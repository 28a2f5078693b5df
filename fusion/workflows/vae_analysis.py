"""Analysis of a finished VAE run directory: modality importance, the latent t-SNE, decoded group
differences, recovery against a planted ground truth; figures drawn, numbers merged into
``results.json``, then ``report.md`` (:func:`fusion.report.vae_report.write_vae_report`).

See ``docs/architecture.md``, "Run directory (VAE)". A piece that cannot be made (no checkpoint,
no prepared data, no ground truth) is skipped with the reason recorded for the report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from fusion import io
from fusion.data.neuromark import modality_labels
from fusion.devices import default_device
from fusion.errors import ConfigError, FusionError, InputError
from fusion.models.from_run import load_fold_model
from fusion.report.vae_report import write_vae_report
from fusion.rundir import (
    find_prepared_dir,
    fold_dirs,
    fold_roc_data,
    is_prepared,
    load_fold_latents,
    load_run_config,
    merge_results,
)

if TYPE_CHECKING:
    from nibabel.spatialimages import SpatialImage

__all__ = ["VAEAnalysisSettings", "analysis_error_report", "analyze_vae_run"]

log = logging.getLogger(__name__)
PathLike = str | os.PathLike


def _importance(logdir: Path, n_modalities: int, planted: Sequence[int] | None) -> dict[str, Any]:
    """Modality importance over folds (fusion.evaluate.importance), with CSV and figure."""
    from fusion.workflows.importance import importance_with_figure

    return importance_with_figure(logdir, n_modalities=n_modalities, planted_modalities=planted)


def _ground_truth(prepared: Path | None, meta: Mapping[str, Any] | None) -> tuple[dict, np.ndarray] | None:
    """``(ground_truth.json, planted effect (n_modalities, X, Y, Z))`` beside the prepared data or
    its manifest; None when absent."""
    import nibabel as nib

    folders = [] if prepared is None else [prepared]
    manifest = (meta or {}).get("manifest")
    if manifest:
        folders.append(Path(manifest).parent)
    for folder in folders:
        path = folder / "ground_truth.json"
        if not path.is_file():
            continue
        truth = io.read_json(path)
        effect_path = folder / truth.get("effect_map", "ground_truth_effect.nii.gz")
        if not effect_path.is_file():
            raise InputError(f"{path} names an effect map {effect_path} that does not exist")
        effect_image = cast("SpatialImage", nib.load(effect_path))  # nibabel types load() as FileBasedImage
        effect = np.asarray(effect_image.get_fdata(dtype=np.float32))
        if effect.ndim != 4:
            raise InputError(f"{effect_path} must be 4D (X, Y, Z, n_modalities), got shape {effect.shape}")
        return truth, np.moveaxis(effect, -1, 0)
    return None


@dataclass(frozen=True)
class VAEAnalysisSettings:
    """What :func:`analyze_vae_run` computes and how; the fields are the ``callbacks.analysis``
    keys of ``conf/vae.yaml``, so the callback, ``fusion vae-analyze`` and a notebook share them.

    Args:
        fold: fold whose model and latents are used (the paper uses the first).
        top_k: modalities summed in the group-difference map (paper: 5).
        percentile: per-modality threshold percentile of ``|difference|`` (paper: 99).
        tsne_perplexity, tsne_max_iter, tsne_max_subjects, tsne_backend: see
            :func:`fusion.interpret.latent_space.embed_latents`.
        seed: seed of the t-SNE (and its subject subset).
        batch_size: latents decoded at once.
        device: torch device for decoding (default: CUDA when present).
        cut_coords: number of axial cuts in the brain figures.
        mask_fraction: relative intensity threshold of the data's brain mask.
    """

    fold: int = 0
    top_k: int = 5
    percentile: float = 99.0
    tsne_perplexity: float = 30.0
    tsne_max_iter: int = 1000
    tsne_max_subjects: int | None = None
    tsne_backend: str = "auto"
    seed: int = 0
    batch_size: int = 8
    device: str | None = None
    cut_coords: int = 7
    mask_fraction: float = 1e-3


def analyze_vae_run(
    logdir: PathLike,
    settings: VAEAnalysisSettings | None = None,
    *,
    model: Any = None,
    model_config: Mapping[str, Any] | None = None,
    dataset: Any = None,
    prepared_dir: PathLike | None = None,
    report: bool = True,
    report_name: str = "report.md",
    **overrides: Any,
) -> dict[str, Any]:
    """Interpret fold ``fold`` of a finished VAE run and (optionally) write ``report.md``.

    Group centres are the mean latents of all patients and all controls of the cohort (every
    subject is embedded by the fold's frozen encoder, as in the paper); the top-``top_k`` modalities
    come from the importance averaged over all folds. Thresholds and correlations are taken within
    the data's brain mask: voxels whose mean absolute input (over subjects and modalities) exceeds
    ``mask_fraction`` of its maximum (see :func:`fusion.interpret.group_maps.data_mask`).

    Args:
        logdir: run directory.
        settings: what to compute (default :class:`VAEAnalysisSettings`); ``overrides`` replace
            single fields, e.g. ``analyze_vae_run(run, tsne_max_iter=250)``.
        model: the trained network; default: rebuilt from the run config and ``best.pth``.
        model_config: the run's ``model`` config node (default: read from ``logdir/configs``).
        dataset: a ``PreparedVolumes`` of the cohort; default: opened from ``prepared_dir``.
        prepared_dir: prepared data folder; default: found from the run config.
        report: write the report at the end.
        report_name: its file name in ``logdir`` (``fusion vae-analyze`` writes
            ``report_analyze.md`` unless told to replace the run's ``report.md``).

    Returns:
        What was added to ``results.json``: ``{"analysis", "group_difference", "recovery"}``
        (the last two only when computed).
    """
    from fusion.interpret.group_maps import (
        combine_maps,
        compare_maps,
        data_mask,
        decoded_group_difference,
        input_group_difference,
        percentile_threshold,
        recovery_scores,
    )
    from fusion.interpret.latent_space import embed_latents
    from fusion.report import vae_figures as figs

    s = replace(settings or VAEAnalysisSettings(), **overrides)
    fold, top_k, percentile, mask_fraction = s.fold, s.top_k, s.percentile, s.mask_fraction
    logdir = Path(logdir)
    latents = load_fold_latents(logdir, fold)
    mu, labels = latents["mu"], latents["labels"].astype(int)
    n_modalities = mu.shape[1]
    skipped: dict[str, str] = {}
    added: dict[str, Any] = {}
    device = s.device or default_device()

    # Data: the prepared cohort gives the affine, the inputs' group difference and the ground truth.
    config = load_run_config(logdir)
    if dataset is None:
        prepared = Path(prepared_dir) if prepared_dir is not None else find_prepared_dir(logdir, config)
        if prepared is not None:
            if not is_prepared(prepared):
                raise InputError(f"{prepared} is not a prepared data folder (needs index.csv and meta.json)")
            from fusion.data.dataset import PreparedVolumes

            dataset = PreparedVolumes(prepared)
    else:
        prepared = Path(prepared_dir) if prepared_dir is not None else (
            _dataset_dir(dataset) or find_prepared_dir(logdir, config)
        )
    meta = dict(getattr(dataset, "meta", {}) or {}) if dataset is not None else {}
    if dataset is None:
        skipped["inputs"] = "the prepared data folder was not found (pass --prepared)"
    names, domains = modality_labels(n_modalities, meta)
    truth = _ground_truth(prepared, meta)
    planted = [int(m) for m in truth[0].get("effect_modalities", [])] if truth and truth[0].get("effect") else None
    if truth is None:
        skipped["recovery"] = "the data carries no ground_truth.json"
    elif not planted:
        skipped["recovery"] = "the ground truth plants no effect"
        truth = None

    # Importance (all folds) -> top-k modalities.
    importance = None
    try:
        importance = _importance(logdir, n_modalities, planted)
    except InputError as exc:
        skipped["importance"] = str(exc)

    # Latent structure.
    embedding = embed_latents(
        mu, perplexity=s.tsne_perplexity, max_iter=s.tsne_max_iter, max_subjects=s.tsne_max_subjects,
        seed=s.seed, backend=s.tsne_backend,
    )
    io.save_npz(logdir / "latent_tsne.npz", coords=embedding.coords, subject=embedding.subject,
                modality=embedding.modality, fold=np.asarray(fold))
    figs.plot_latent_tsne(
        embedding.coords, embedding.modality, domains, logdir / "latent_tsne.png",
        title=f"t-SNE of the fold_{fold:02d} latents ({len(np.unique(embedding.subject))} subjects x "
        f"{n_modalities} modalities, l = {mu.shape[2]})",
    )

    # ROC curves from every fold's test scores.
    curves, curve_names = [], []
    for k, path in fold_dirs(logdir):
        fold_latents = io.load_npz(path / "latents.npz") if (path / "latents.npz").is_file() else None
        roc = fold_roc_data(path, fold_latents)
        if roc is not None and len(np.unique(roc[0])) == 2:
            curves.append(roc)
            curve_names.append(f"fold_{k:02d}")
    if curves:
        figs.plot_roc_curves(curves, logdir / "roc_curves.png", names=curve_names)
    else:
        skipped["roc"] = "no fold_XX/result.json holds test decision scores and labels"

    # Group differences.
    group: dict[str, Any] | None = None
    if model is None:
        try:
            grid = getattr(dataset, "shape", None) if dataset is not None else None
            model = load_fold_model(logdir, fold, model_config=model_config or (config or {}).get("model"),
                                    device=device, in_shape=grid)
        except (InputError, ConfigError) as exc:
            skipped["group_difference"] = str(exc)
    if model is not None:
        model = model.to(device).eval()
        decoded = decoded_group_difference(model, mu, labels, batch_size=s.batch_size, device=device)
        affine = np.asarray(getattr(dataset, "affine", None) if dataset is not None else np.eye(4), dtype=float)
        if dataset is None:
            skipped["affine"] = "no prepared data: NIfTI maps carry an identity affine"
        mask = None
        input_diff = None
        if dataset is not None:
            subjects = (dataset[i] for i in range(len(dataset)))
            input_diff, intensity = input_group_difference(subjects, progress=True)
            if input_diff.shape[1:] != decoded.shape[1:]:
                raise InputError(
                    f"the model decodes volumes of shape {decoded.shape[1:]} but the data has {input_diff.shape[1:]}"
                )
            mask = data_mask(intensity, mask_fraction)
        if importance is not None:
            top = [int(m) for m in np.argsort(-np.asarray(importance["importance_mean"]), kind="stable")[:top_k]]
            source = f"mean linear-SVM importance over {importance['n_folds']} folds"
        else:
            top = []
            source = "none"
        io.save_nifti(logdir / "group_difference_decoded.nii.gz", np.moveaxis(decoded, 0, -1), affine)
        if not np.any(decoded):
            skipped["decoded_zero"] = (
                "the decoded group difference is zero everywhere: the decoder ignores the latent "
                "(an untrained or collapsed model), so the decoded maps below are empty"
            )
        group = {
            "fold": int(fold),
            "threshold_percentile": float(percentile),
            "top_k": int(top_k),
            "modalities": top,
            "modality_names": [names[m] for m in top],
            "importance_source": source,
            "n_patients": int((labels == 1).sum()),
            "n_controls": int((labels == 0).sum()),
            "mask_voxels": int(mask.sum()) if mask is not None else None,
            "mask_fraction": float(mask_fraction),
            "files": {"decoded": "group_difference_decoded.nii.gz"},
        }
        if top:
            thr = percentile_threshold(decoded[top], percentile, mask)
            fig3 = combine_maps(thr)
            name = f"group_difference_top{top_k}.nii.gz"
            io.save_nifti(logdir / name, fig3, affine)
            group["files"]["combined"] = name
            top_names = ", ".join(names[m].split(" ")[0] for m in top)  # e.g. "ICN12, sMRI"
            figs.plot_brain_map(
                fig3, affine, logdir / "group_difference.png",
                title=f"decoded patient - control, top {len(top)} modalities ({top_names}), "
                f"{percentile:g}th pct", cut_coords=s.cut_coords,
            )
            if input_diff is not None:
                thr_in = percentile_threshold(input_diff[top], percentile, mask)
                in_name = f"group_difference_input_top{top_k}.nii.gz"
                io.save_nifti(logdir / in_name, combine_maps(thr_in), affine)
                group["files"]["input"] = in_name
                group["comparison"] = compare_maps(decoded[top], input_diff[top], percentile, mask)
                figs.plot_map_comparison(
                    [fig3, combine_maps(thr_in)],
                    [f"decoded (VAE) patient - control, modalities {top_names}",
                     f"inputs: mean patient - mean control, modalities {top_names}"],
                    affine, logdir / "group_difference_comparison.png", cut_coords=s.cut_coords,
                )
            else:
                skipped["comparison"] = "no prepared data to compute the inputs' group difference from"
        else:
            skipped["group_map"] = "no modality importance: the top modalities cannot be chosen"
        added["group_difference"] = group
        if truth is not None and planted:  # planted is never empty while truth is set
            effect = truth[1]
            if effect.shape != decoded.shape:
                raise InputError(
                    f"ground-truth effect map has shape {effect.shape} (modalities first) but the decoded "
                    f"differences have {decoded.shape}"
                )
            scores = recovery_scores(decoded, effect, planted, percentile, mask)
            recovery: dict[str, Any] = {
                "map_correlation": scores["map_correlation"],
                "map_dice": scores["map_dice"],
                "map_fold": int(fold),
                "map_per_modality": scores["per_modality"],
                "map_threshold_percentile": scores["threshold_percentile"],
                "planted_modalities": planted,
                "planted_modality_names": [names[m] for m in planted],
            }
            if importance is not None and "modality_recall" in importance:
                recovery["modality_recall"] = float(importance["modality_recall"])
            added["recovery"] = recovery
    elif truth is not None and importance is not None and "modality_recall" in importance:
        added["recovery"] = {"modality_recall": float(importance["modality_recall"]), "planted_modalities": planted}

    added["analysis"] = {
        "fold": int(fold),
        "tsne": {"backend": embedding.backend, "perplexity": float(s.tsne_perplexity), "max_iter": int(s.tsne_max_iter),
                 "n_points": int(embedding.coords.shape[0]), "seed": int(s.seed)},
        "skipped": skipped,
    }
    merge_results(logdir, added)
    if report:
        write_vae_report(logdir, report_name)
    return added


def _dataset_dir(dataset: Any) -> Path | None:
    for attr in ("prepared_dir", "root", "path", "directory"):
        value = getattr(dataset, attr, None)
        if value is not None and is_prepared(Path(value)):
            return Path(value)
    return None


def analysis_error_report(logdir: PathLike, error: FusionError) -> Path:
    """Record a failed analysis in ``results.json`` and rewrite ``report.md`` around it."""
    logdir = Path(logdir)
    skipped = {"group_difference": f"analysis failed: {error}"}
    merge_results(logdir, {"analysis": {"error": str(error), "skipped": skipped}})
    return write_vae_report(logdir)
