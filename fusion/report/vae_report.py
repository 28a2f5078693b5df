"""Analysis and report of a finished VAE run directory.

:func:`analyze_vae_run` runs the interpretation of one fold's model over a run directory (see
``docs/architecture.md``, "Run directory (VAE)"): modality importance, the latent t-SNE, the decoded
group differences and their comparison with the inputs, and, when the data carries a planted
ground truth, the recovery scores. Maps go to NIfTI, figures to PNG, numbers into ``results.json``
(merged with what is there). :func:`write_vae_report` then assembles ``report.md`` from the files of
the run directory alone, so it can be rewritten at any time. A piece that cannot be made (no
checkpoint, no prepared data, no ground truth) is skipped with a line in the report saying why.

Output names (all in the run directory):
``roc_curves.png``, ``importance.csv`` / ``importance.png`` (fusion.evaluate.importance),
``latent_tsne.png`` / ``latent_tsne.npz``, ``group_difference_decoded.nii.gz`` (every modality,
unthresholded, ``(X, Y, Z, n_modalities)``), ``group_difference_top{k}.nii.gz`` (thresholded, summed;
paper Fig. 3), ``group_difference_input_top{k}.nii.gz``, ``group_difference.png``,
``group_difference_comparison.png``, ``report.md``.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusion import io
from fusion.devices import default_device
from fusion.errors import ConfigError, FusionError, InputError
from fusion.rundir import fold_dir, fold_dirs

__all__ = [
    "fold_dirs",
    "load_run_config",
    "find_prepared_dir",
    "load_fold_model",
    "load_fold_latents",
    "modality_labels",
    "build_model",
    "default_device",
    "fold_roc_data",
    "analyze_vae_run",
    "write_vae_report",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
_MODEL_KEYS_IGNORED = ("_target_", "_recursive_", "_convert_", "_partial_")


# --------------------------------------------------------------------------- run directory access
_fold_dir = fold_dir


def load_run_config(logdir: PathLike) -> dict[str, Any] | None:
    """The resolved config Catalyst dumped into ``logdir/configs`` (``_config.json``, else
    ``config.yaml``), or None when there is none."""
    configs = Path(logdir) / "configs"
    if (configs / "_config.json").is_file():
        return io.read_json(configs / "_config.json")
    if (configs / "config.yaml").is_file():
        import yaml

        with open(configs / "config.yaml") as f:
            return yaml.safe_load(f)
    return None


def _is_prepared(path: Path) -> bool:
    return (path / "index.csv").is_file() and (path / "meta.json").is_file()


def find_prepared_dir(logdir: PathLike, config: Mapping[str, Any] | None = None) -> Path | None:
    """The prepared data folder a run was trained on: the first string under the config's ``data``
    node naming a folder with ``index.csv`` and ``meta.json`` (relative paths are tried from the
    current folder and from the run directory's parents). None when not found."""
    config = load_run_config(logdir) if config is None else config
    data = (config or {}).get("data") if isinstance(config, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    candidates = [v for v in data.values() if isinstance(v, str)]
    bases = [Path.cwd(), *Path(logdir).resolve().parents]
    for value in candidates:
        path = Path(value)
        for base in [Path("/")] if path.is_absolute() else bases:
            if _is_prepared(base / path):
                return (base / path).resolve()
    return None


def _import_target(target: str) -> Any:
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"model target {target!r} cannot be imported: {exc}") from exc


def build_model(model_config: Mapping[str, Any], in_shape: Sequence[int] | None = None) -> Any:
    """Build the network a run's ``model`` config node describes (``_target_`` + keyword arguments;
    ``fusion.models.MultimodalVAE`` when there is no target).

    Args:
        model_config: the config node.
        in_shape: the data's grid ``(X, Y, Z)``, used when the config leaves ``in_shape`` null
            (the runner then takes it from the prepared data).
    """
    if not isinstance(model_config, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(model_config).__name__}")
    target = model_config.get("_target_", "fusion.models.MultimodalVAE")
    cls = _import_target(str(target))
    kwargs = {k: v for k, v in model_config.items() if k not in _MODEL_KEYS_IGNORED}
    if kwargs.get("in_shape", "absent") is None:
        if in_shape is None:
            raise ConfigError("the model config leaves in_shape null and no data grid is known (pass --prepared)")
        kwargs["in_shape"] = tuple(int(s) for s in in_shape)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model config {dict(kwargs)} does not fit {target}: {exc}") from exc


def load_fold_model(
    logdir: PathLike,
    fold: int = 0,
    model_config: Mapping[str, Any] | None = None,
    checkpoint: str = "best.pth",
    device: str = "cpu",
    in_shape: Sequence[int] | None = None,
) -> Any:
    """The trained model of one fold, in eval mode.

    Args:
        logdir: run directory.
        fold: fold number.
        model_config: the ``model`` config node (default: read from ``logdir/configs``).
        checkpoint: file name under ``fold_XX/checkpoints``.
        device: torch device to load onto.
        in_shape: the data's grid, for configs that leave ``in_shape`` null.
    """
    import torch

    path = _fold_dir(logdir, fold) / "checkpoints" / checkpoint
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    if model_config is None:
        config = load_run_config(logdir)
        if not config or "model" not in config:
            raise InputError(
                f"{Path(logdir) / 'configs'} holds no config with a 'model' node: cannot rebuild the network "
                "(pass the model config explicitly)"
            )
        model_config = config["model"]
    model = build_model(model_config, in_shape)
    state = io.load_checkpoint(path)
    if isinstance(state, Mapping) and "model_state_dict" in state:
        state = state["model_state_dict"]
    if not isinstance(state, Mapping):
        raise InputError(f"{path} holds no model state dict")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{path} does not fit the model built from the run config: {exc}") from exc
    return model.to(device).eval()


def load_fold_latents(logdir: PathLike, fold: int = 0) -> dict[str, np.ndarray]:
    """``fold_XX/latents.npz`` checked: ``mu (n, n_modalities, l)``, ``labels (n,)``, ``subject_ids``."""
    path = _fold_dir(logdir, fold) / "latents.npz"
    if not path.is_file():
        raise InputError(f"latents file {path} does not exist")
    data = io.load_npz(path)
    for key in ("mu", "labels"):
        if key not in data:
            raise InputError(f"{path} has no {key!r} array (keys: {sorted(data)})")
    mu, labels = data["mu"], data["labels"]
    if mu.ndim != 3 or labels.shape != (mu.shape[0],):
        raise InputError(f"{path}: mu must be (n, n_modalities, l) and labels (n,), got {mu.shape} and {labels.shape}")
    return data


def modality_labels(n_modalities: int, meta: Mapping[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """``(names, domains)`` per modality: from the prepared data's ``meta.json`` when it has them,
    else NeuroMark's (53 ICNs + sMRI) or generic ones."""
    if meta and len(meta.get("modality_names", [])) == n_modalities and len(meta.get("modality_domains", [])) == n_modalities:
        return list(meta["modality_names"]), list(meta["modality_domains"])
    from fusion.data.neuromark import generic_modality_domains, generic_modality_names

    return generic_modality_names(n_modalities - 1), generic_modality_domains(n_modalities - 1)


_SCORE_KEYS = ("decision_scores", "scores", "test_scores", "decision_function", "score")
_LABEL_KEYS = ("test_labels", "labels", "y_true", "y_test")
_ID_KEYS = ("test_subject_ids", "test_subjects", "subject_ids", "test_ids")


def fold_roc_data(fold_dir: PathLike, latents: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(labels, decision scores)`` of a fold's test subjects from ``fold_XX/result.json``.

    Labels are read from the result when stored there, else looked up by test subject id in the
    fold's latents. None when the result holds no scores.
    """
    path = Path(fold_dir) / "result.json"
    if not path.is_file():
        return None
    result = io.read_json(path)
    scores = next((result[k] for k in _SCORE_KEYS if isinstance(result.get(k), list)), None)
    if scores is None:
        return None
    scores = np.asarray(scores, dtype=float)
    labels = next((result[k] for k in _LABEL_KEYS if isinstance(result.get(k), list)), None)
    if labels is None and latents is not None and "subject_ids" in latents:
        ids = next((result[k] for k in _ID_KEYS if isinstance(result.get(k), list)), None)
        if ids is not None:
            lookup = {str(s): int(y) for s, y in zip(latents["subject_ids"], latents["labels"])}
            missing = [s for s in ids if str(s) not in lookup]
            if missing:
                raise InputError(f"{path}: test subjects {missing[:3]} are not in the fold's latents")
            labels = [lookup[str(s)] for s in ids]
    if labels is None:
        return None
    labels = np.asarray(labels, dtype=int)
    if labels.shape != scores.shape:
        raise InputError(f"{path}: {labels.size} test labels but {scores.size} decision scores")
    return labels, scores


# --------------------------------------------------------------------------- analysis
def _importance(logdir: Path, n_modalities: int, planted: Sequence[int] | None) -> dict[str, Any]:
    """Modality importance over folds (fusion.evaluate.importance), with CSV and figure."""
    from fusion.evaluate.importance import analyze_importance

    return analyze_importance(logdir, n_modalities=n_modalities, planted_modalities=planted)


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
        effect = np.asarray(nib.load(effect_path).get_fdata(dtype=np.float32))
        if effect.ndim != 4:
            raise InputError(f"{effect_path} must be 4D (X, Y, Z, n_modalities), got shape {effect.shape}")
        return truth, np.moveaxis(effect, -1, 0)
    return None


def analyze_vae_run(
    logdir: PathLike,
    fold: int = 0,
    model: Any = None,
    model_config: Mapping[str, Any] | None = None,
    dataset: Any = None,
    prepared_dir: PathLike | None = None,
    top_k: int = 5,
    percentile: float = 99.0,
    tsne_perplexity: float = 30.0,
    tsne_max_iter: int = 1000,
    tsne_max_subjects: int | None = None,
    tsne_backend: str = "auto",
    seed: int = 0,
    batch_size: int = 8,
    device: str | None = None,
    cut_coords: int = 7,
    mask_fraction: float = 1e-3,
    report: bool = True,
    report_name: str = "report.md",
) -> dict[str, Any]:
    """Interpret fold ``fold`` of a finished VAE run and (optionally) write ``report.md``.

    Group centres are the mean latents of all patients and all controls of the cohort (every
    subject is embedded by the fold's frozen encoder, as in the paper); the top-``top_k`` modalities
    come from the importance averaged over all folds. Thresholds and correlations are taken within
    the data's brain mask: voxels whose mean absolute input (over subjects and modalities) exceeds
    ``mask_fraction`` of its maximum (see :func:`fusion.interpret.group_maps.data_mask`).

    Args:
        logdir: run directory.
        fold: fold whose model and latents are used (the paper uses the first).
        model: the trained network; default: rebuilt from the run config and ``best.pth``.
        model_config: the run's ``model`` config node (default: read from ``logdir/configs``).
        dataset: a ``PreparedVolumes`` of the cohort; default: opened from ``prepared_dir``.
        prepared_dir: prepared data folder; default: found from the run config.
        top_k: modalities summed in the group-difference map (paper: 5).
        percentile: per-modality threshold percentile of ``|difference|`` (paper: 99).
        tsne_perplexity, tsne_max_iter, tsne_max_subjects, tsne_backend: see
            :func:`fusion.interpret.latent_space.embed_latents`.
        seed: seed of the t-SNE (and its subject subset).
        batch_size: latents decoded at once.
        device: torch device for decoding (default: CUDA when present).
        cut_coords: number of axial cuts in the brain figures.
        mask_fraction: relative intensity threshold of the data's brain mask.
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
        decoded_group_difference,
        data_mask,
        input_group_difference,
        percentile_threshold,
        recovery_scores,
    )
    from fusion.interpret.latent_space import embed_latents
    from fusion.report import vae_figures as figs

    logdir = Path(logdir)
    latents = load_fold_latents(logdir, fold)
    mu, labels = latents["mu"], latents["labels"].astype(int)
    n_modalities = mu.shape[1]
    skipped: dict[str, str] = {}
    added: dict[str, Any] = {}
    device = device or default_device()

    # Data: the prepared cohort gives the affine, the inputs' group difference and the ground truth.
    config = load_run_config(logdir)
    if dataset is None:
        prepared = Path(prepared_dir) if prepared_dir is not None else find_prepared_dir(logdir, config)
        if prepared is not None:
            if not _is_prepared(prepared):
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
        mu, perplexity=tsne_perplexity, max_iter=tsne_max_iter, max_subjects=tsne_max_subjects,
        seed=seed, backend=tsne_backend,
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
        decoded = decoded_group_difference(model, mu, labels, batch_size=batch_size, device=device)
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
                f"{percentile:g}th pct", cut_coords=cut_coords,
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
                    affine, logdir / "group_difference_comparison.png", cut_coords=cut_coords,
                )
            else:
                skipped["comparison"] = "no prepared data to compute the inputs' group difference from"
        else:
            skipped["group_map"] = "no modality importance: the top modalities cannot be chosen"
        added["group_difference"] = group
        if truth is not None:
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
        "tsne": {"backend": embedding.backend, "perplexity": float(tsne_perplexity), "max_iter": int(tsne_max_iter),
                 "n_points": int(embedding.coords.shape[0]), "seed": int(seed)},
        "skipped": skipped,
    }
    _merge_results(logdir, added)
    if report:
        write_vae_report(logdir, report_name)
    return added


def _dataset_dir(dataset: Any) -> Path | None:
    for attr in ("prepared_dir", "root", "path", "directory"):
        value = getattr(dataset, attr, None)
        if value is not None and _is_prepared(Path(value)):
            return Path(value)
    return None


def _merge_results(logdir: Path, added: Mapping[str, Any]) -> None:
    """Update ``results.json`` with ``added``; the ``recovery`` dict is merged key by key."""
    path = logdir / "results.json"
    results = io.read_json(path) if path.is_file() else {}
    for key, value in added.items():
        if key == "recovery" and isinstance(results.get("recovery"), dict):
            results["recovery"] = {**results["recovery"], **value}
        else:
            results[key] = value
    io.write_json(path, results)


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
                  "colour = NeuroMark domain, labels = ICN number (1 = ICN01) or GM (sMRI) at the modality's median position.", ""]
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
            for m, n, r, d in zip(group["modalities"], group["modality_names"],
                                  comp["correlation_per_modality"], comp["dice_per_modality"]):
                lines.append(f"| {n} | {_fmt(r)} | {_fmt(d)} |")
            lines.append("")
        else:
            lines += [f"_Comparison with the inputs not available: {skipped.get('comparison', skipped.get('inputs', 'not computed'))}._", ""]
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
            lines += [f"| {label.get(str(m), f'modality {int(m) + 1}')} | {_fmt(v['correlation'])} | {_fmt(v['dice'])} |"
                      for m, v in per.items()]
            lines.append("")
    else:
        lines += [f"_Not available: {skipped.get('recovery', 'the analysis has not been run')}._", ""]

    other = {k: v for k, v in skipped.items() if k in ("affine", "decoded_zero")}
    if other:
        lines += ["## Notes", ""] + [f"- {v}" for v in other.values()] + [""]
    return io.write_text(logdir / name, "\n".join(lines))


def analysis_error_report(logdir: PathLike, error: FusionError) -> Path:
    """Record a failed analysis in ``results.json`` and rewrite ``report.md`` around it."""
    logdir = Path(logdir)
    _merge_results(logdir, {"analysis": {"error": str(error), "skipped": {"group_difference": f"analysis failed: {error}"}}})
    return write_vae_report(logdir)
