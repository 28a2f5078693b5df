"""gCAM-CCL interpretation of a trained collaborative network, from subjects to result files.

:func:`compute_subject_maps` runs Grad-CAM and guided Grad-CAM for every view over a set of
subjects; :func:`fusion.workflows.ccl_maps.analyse_subject_maps` turns the maps into the paper's
outputs (significant edges, hub degrees, significant SNPs, histograms, figures) and, with a ground
truth, recovery scores.
Both are plain PyTorch/NumPy; ``fusion_callbacks.activation_maps.ActivationMapCallback`` calls them.

Each subject gets the map of one class, its own (``map_class="label"``, default: the paper's
class-specific maps are averaged within each class) or the predicted one (``"predicted"``).

Map kinds: ``gradcam`` and ``guided_gradcam`` (the paper's), and, not in the paper,
``guided_backprop``, ``gradient`` (plain input gradient) and ``integrated_gradients`` (against a
reference input, by default the training subjects' mean). Significance can be computed from any
of them, by the paper's frequency rule on the signed values or on their magnitude
(``absolute``), or by the class-contrast rule, which needs every subject's map for every class
(``rule: contrast``; :func:`significance_spec`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from fusion import io
from fusion.errors import ConfigError, InputError
from fusion.interpret.gradcam import grad_cam, resolve_layer
from fusion.interpret.guided_backprop import guided_backprop, input_gradient
from fusion.interpret.integrated_gradients import integrated_gradients
from fusion.models.ccl import mean_of_views

if TYPE_CHECKING:
    import pandas

MAP_KINDS = ("gradcam", "guided_gradcam", "guided_backprop", "gradient", "integrated_gradients")
RULES = ("frequency", "contrast")
BY_CLASS = "_by_class"  # suffix of the (n, C, *spatial) arrays: every subject's map of every class


@dataclass(frozen=True)
class ViewSpec:
    """One view of a collaborative network to explain.

    Args:
        name: the view's batch key and file suffix (``"fc"``, ``"snp"``).
        input_index: position of the view's tensor in ``model(*inputs)``.
        view_index: position of the view's logits in the ``(B, m_views, C)`` output.
        layer: dotted module path of the Grad-CAM target layer in that view's branch.
    """

    name: str
    input_index: int
    view_index: int
    layer: str


def view_specs(target_layers: Mapping[str, str], view_order: Sequence[str]) -> list[ViewSpec]:
    """Views to explain, from ``{view name: layer path}`` and the model's input order.

    The i-th name of ``view_order`` is both the model's i-th input and its i-th view of logits.
    """
    specs = []
    for name, layer in target_layers.items():
        if name not in view_order:
            raise ConfigError(
                f"target_layers names view {name!r}, which is not one of the inputs {list(view_order)}"
            )
        index = list(view_order).index(name)
        specs.append(ViewSpec(name=name, input_index=index, view_index=index, layer=layer))
    return specs


def compute_subject_maps(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    views: Sequence[ViewSpec],
    view_order: Sequence[str],
    n_classes: int,
    variant: str = "eq10",
    upsample_mode: str = "nearest",
    relu_map: bool | None = None,
    map_class: str = "label",
    kinds: Sequence[str] | Mapping[str, Sequence[str]] = ("gradcam", "guided_gradcam"),
    device: str | torch.device = "cpu",
    progress: bool = True,
    by_class: Sequence[str] | Mapping[str, Sequence[str]] = (),
    baselines: Mapping[str, torch.Tensor] | None = None,
    ig_steps: int | Mapping[str, int] = 32,
) -> dict[str, np.ndarray]:
    """Per-subject Grad-CAM and guided Grad-CAM maps for every view.

    Args:
        model: collaborative network, ``model(*[batch[v] for v in view_order]) -> (B, m, C)``.
        batches: iterable of dataset batches ``{"fc": (B,1,264,264), "snp": (B,1,750),
            "label": (B,), "index": (B,)}``.
        views: which views and layers to explain (:func:`view_specs`).
        n_classes: number of classes C.
        variant, upsample_mode, relu_map: Grad-CAM options (:func:`fusion.interpret.gradcam.grad_cam`).
        map_class: ``"label"`` (each subject's own class) or ``"predicted"``.
        kinds: map kinds to compute, from :data:`MAP_KINDS`: one list for every view, or
            ``{view name: list}`` (each backward pass through the FC network costs ~100x one
            through the SNP network, so compute there only what is used).
        device: where to run the model.
        by_class: maps computed for every class too (the contrast rule needs them), as
            ``{view: kinds}`` or a list of views (all their kinds):
            ``"<kind>_<view>_by_class"`` ``(n, C, *spatial)``; costs C backward passes per batch
            instead of one for those kinds.
        baselines: reference input per view for ``integrated_gradients``, broadcastable to
            ``(B, channels, *spatial)``; a view without one uses 0.
        ig_steps: points of the integrated-gradients path, one number for every view or
            ``{view name: points}`` (a view left out gets 32). A path point costs a backward
            pass, ~100x dearer through the FC network than through the SNP network.

    Returns:
        ``{"<kind>_<view>": (n, *input spatial) for each kind and view, "labels": (n,),
        "predicted": (n,), "probabilities": (n, C), "index": (n,)}``, float32 maps in the order
        of the batches, plus the ``_by_class`` arrays.
    """
    if map_class not in ("label", "predicted"):
        raise ConfigError(f"map_class must be 'label' or 'predicted', got {map_class!r}")
    if isinstance(kinds, Mapping):
        missing = [v.name for v in views if v.name not in kinds]
        if missing:
            raise ConfigError(f"kinds names no map kinds for the view(s) {missing}")
        view_kinds = {v.name: list(kinds[v.name]) for v in views}
    else:
        view_kinds = {v.name: list(kinds) for v in views}
    for name, kind_list in view_kinds.items():
        unknown = sorted(set(kind_list) - set(MAP_KINDS))
        if unknown or not kind_list:
            raise ConfigError(
                f"map kinds {unknown or kind_list} of view {name!r} are not a non-empty subset of {MAP_KINDS}"
            )
    every_kinds = ({v: list(k) for v, k in by_class.items()} if isinstance(by_class, Mapping)
                   else {v: list(view_kinds.get(v, [])) for v in by_class})
    unknown_views = sorted(set(every_kinds) - {v.name for v in views})
    if unknown_views:
        raise ConfigError(f"by_class names view(s) {unknown_views} that are not explained")
    for name, wanted in every_kinds.items():
        if not set(wanted) <= set(view_kinds[name]):
            raise ConfigError(f"by_class kinds {wanted} of view {name!r} are not among its kinds {view_kinds[name]}")
    baselines = {v: torch.as_tensor(b).to(device=device, dtype=torch.float32) for v, b in (baselines or {}).items()}
    steps = view_ig_steps(ig_steps, [v.name for v in views])
    for view in views:
        resolve_layer(model, view.layer)
    model = model.to(device)
    # What each view's maps are computed on: for a collaborative network only that view's branch
    # and head (the FC network is not run for the SNP maps); otherwise the whole model.
    plans: dict[str, tuple[nn.Module, ViewSpec, tuple[int, ...]]] = {}
    for view in views:
        if hasattr(model, "single_view"):
            single_view = cast(Callable[[str], nn.Module], model.single_view)
            plans[view.name] = (single_view(view.name), ViewSpec(view.name, 0, 0, view.layer),
                                (view.input_index,))
        else:
            plans[view.name] = (model, view, tuple(range(len(view_order))))
    out: dict[str, list] = {k: [] for k in ("labels", "predicted", "probabilities", "index")}
    for view in views:
        for kind in view_kinds[view.name]:
            out[f"{kind}_{view.name}"] = []
            if kind in every_kinds.get(view.name, ()):
                out[f"{kind}_{view.name}{BY_CLASS}"] = []
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc="activation maps", disable=not progress, leave=False):
            missing = [k for k in (*view_order, "label") if k not in batch]
            if missing:
                raise InputError(f"a batch has no {missing} entries (keys: {sorted(batch)})")
            inputs = tuple(batch[v].to(device=device, dtype=torch.float32) for v in view_order)
            labels = torch.as_tensor(batch["label"]).long().reshape(-1)
            with torch.no_grad():
                logits = model(*inputs)
            probs = mean_of_views(logits)
            chosen = labels if map_class == "label" else probs.argmax(dim=1).cpu()
            if chosen.numel() and (int(chosen.min()) < 0 or int(chosen.max()) >= n_classes):
                raise InputError(f"class indices {sorted(set(chosen.tolist()))} are outside 0..{n_classes - 1}")
            for view in views:
                spatial = tuple(inputs[view.input_index].shape[2:])
                explained, spec, used = plans[view.name]
                args = (explained, tuple(inputs[i] for i in used), spec)
                options = (spatial, variant, upsample_mode, relu_map, baselines.get(view.name), steps[view.name])
                every = every_kinds.get(view.name, [])
                own = [k for k in view_kinds[view.name] if k not in every]
                if own:
                    target = _subject_class_target(spec.view_index, chosen.to(device))
                    for kind, values in _view_maps(*args, target, own, *options).items():
                        out[f"{kind}_{view.name}"].append(values.cpu().numpy().astype(np.float32))
                if every:
                    per_class = [
                        _view_maps(*args, _subject_class_target(spec.view_index, torch.full_like(chosen, c).to(device)),
                                   every, *options)
                        for c in range(n_classes)
                    ]
                    rows = torch.arange(len(chosen))
                    for kind in every:
                        stacked = torch.stack([m[kind] for m in per_class], dim=1)  # (B, C, *spatial)
                        out[f"{kind}_{view.name}{BY_CLASS}"].append(stacked.cpu().numpy().astype(np.float32))
                        out[f"{kind}_{view.name}"].append(stacked[rows, chosen.cpu()].numpy().astype(np.float32))
            out["labels"].append(labels.numpy())
            out["predicted"].append(probs.argmax(dim=1).cpu().numpy())
            out["probabilities"].append(probs.cpu().numpy())
            index = batch.get("index", torch.full((len(labels),), -1))
            out["index"].append(torch.as_tensor(index).reshape(-1).numpy())
    finally:
        model.train(was_training)
    if not out["labels"]:
        raise InputError("no subjects to explain: the loader is empty")
    return {k: np.concatenate(v) for k, v in out.items()}


def view_ig_steps(ig_steps: int | Mapping[str, int], views: Sequence[str], default: int = 32) -> dict[str, int]:
    """Integrated-gradients path points per view, from one number or ``{view: points}``."""
    if isinstance(ig_steps, Mapping):
        unknown = sorted(set(ig_steps) - set(views))
        if unknown:
            raise ConfigError(f"ig_steps names view(s) {unknown} that are not explained (views: {list(views)})")
        wanted = {v: ig_steps.get(v, default) for v in views}
    else:
        wanted = dict.fromkeys(views, ig_steps)
    for view, value in wanted.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"ig_steps of view {view!r} must be a positive integer, got {value!r}")
    return wanted


def _subject_class_target(view_index: int, classes: torch.Tensor):
    """Target scoring each subject by its own class: ``logits[b, view_index, classes[b]]``.

    In eval mode the subjects of a batch do not interact, so the gradient of the summed scores
    gives every subject the map of its own class in one backward pass (not one per class).
    """

    def score(output: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(output.shape[0], device=output.device)
        return output[rows, view_index, classes]

    return score


def _view_maps(model, inputs, view, target, kinds, spatial, variant, upsample_mode, relu_map,
               baseline=None, ig_steps=32):
    """Maps of one view for the score selected by ``target``: ``{kind: (B, *spatial)}``."""
    cam = gbp = None
    if {"gradcam", "guided_gradcam"} & set(kinds):
        cam = grad_cam(model, inputs, view.layer, target, variant=variant, upsample_to=spatial,
                       upsample_mode=upsample_mode, relu_map=relu_map)
    if {"guided_backprop", "guided_gradcam"} & set(kinds):
        gbp = guided_backprop(model, inputs, target, view.input_index)[:, 0]
    maps = {}
    for kind in kinds:
        if kind == "gradcam":
            maps[kind] = cam
        elif kind == "guided_gradcam":
            maps[kind] = cam * gbp
        elif kind == "guided_backprop":
            maps[kind] = gbp
        elif kind == "integrated_gradients":
            maps[kind] = integrated_gradients(model, inputs, target, view.input_index, baseline, ig_steps)[:, 0]
        else:
            maps[kind] = input_gradient(model, inputs, target, view.input_index)[:, 0]
    return maps


def significance_spec(
    spec: str | Mapping, fraction: float = 0.05, class_fraction: float = 0.7
) -> dict:
    """Normalise one view's significance setting.

    ``spec`` is a map kind (``"gradcam"``), using the shared thresholds on signed values, or a
    mapping ``{map: kind, rule: .., fraction: .., class_fraction: .., absolute: bool}`` whose
    missing keys take the shared values (``absolute`` defaults to False: the paper thresholds
    signed maps). ``rule``: ``frequency`` (the paper's, default) or ``contrast``
    (:mod:`fusion.interpret.significance`): significant above a robust z-score ``z`` or, without
    ``z``, above ``fraction`` times the largest contrast; ``class_fraction`` is not used.
    """
    if isinstance(spec, str):
        spec = {"map": spec}
    spec = dict(spec)
    unknown = sorted(set(spec) - {"map", "rule", "fraction", "class_fraction", "absolute", "z"})
    if unknown or spec.get("map") not in MAP_KINDS or spec.get("rule", "frequency") not in RULES:
        raise ConfigError(
            f"a significance setting needs map in {MAP_KINDS} and optional rule in {RULES}, "
            f"fraction, class_fraction, absolute, z; got {spec}"
        )
    return {
        "map": spec["map"],
        "rule": spec.get("rule", "frequency"),
        "fraction": float(spec.get("fraction", fraction)),
        "class_fraction": float(spec.get("class_fraction", class_fraction)),
        "absolute": bool(spec.get("absolute", False)),
        "z": None if spec.get("z") is None else float(spec["z"]),
    }


def save_subject_maps(out_dir: str | os.PathLike, maps: Mapping[str, np.ndarray]) -> list[Path]:
    """Write each map array as ``<out_dir>/<name>.npy`` and the subject table as ``subjects.npz``."""
    out_dir = Path(out_dir)
    paths = [
        io.save_npy(out_dir / f"{name}.npy", array)
        for name, array in maps.items()
        if name.startswith(MAP_KINDS)
    ]
    meta = {k: maps[k] for k in ("labels", "predicted", "probabilities", "index") if k in maps}
    paths.append(io.save_npz(out_dir / "subjects.npz", **meta))
    return paths


def bim_positions(bim: str | os.PathLike, snp_ids: Sequence[str] | None = None) -> list[str] | None:
    """``chromosome:position`` of each SNP from a PLINK ``.bim`` (columns chromosome, id, cM,
    bp, A1, A2), in ``snp_ids`` order (default: the file's order). None when the file gives no
    positions (every bp 0) or lacks one of ``snp_ids``."""
    import pandas as pd

    path = Path(bim)
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, usecols=[0, 1, 3], dtype=str)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read SNP positions from {path}: {err}") from err
    table.columns = ["chromosome", "id", "bp"]
    if table.empty or (table["bp"].astype(float) == 0).all():
        return None
    label = dict(zip(table["id"], table["chromosome"] + ":" + table["bp"]))
    ids = list(table["id"]) if snp_ids is None else [str(i) for i in snp_ids]
    if any(i not in label for i in ids):
        return None
    return [label[i] for i in ids]


def user_table(frame, snp_positions: Sequence[str] | None = None):
    """A significance table as its CSV shows it: 0-based positions in columns that say so
    (``roi_i`` -> ``roi_i_index0``, ``roi`` -> ``roi_index0``, ``index`` -> ``snp_index0``), each
    ROI also named from 1 as the figures name it (``roi_i_name`` = ``ROI001`` for index 0), and
    each SNP's ``chromosome:position`` when known."""
    from fusion.data.power import roi_label

    frame = frame.copy()
    renames = {c: f"{c}_index0" for c in ("roi_i", "roi_j", "roi") if c in frame}
    front: list[str] = []
    for column in renames:
        name = column + "_name" if column != "roi" else "roi_name"
        frame.insert(len(front), name, [roi_label(i) for i in frame[column]])
        front.append(name)
    if "index" in frame:
        renames["index"] = "snp_index0"
        if snp_positions is not None:
            frame.insert(frame.columns.get_loc("id") + 1 if "id" in frame else 1, "position",
                         [str(snp_positions[i]) for i in frame["index"]])
    return frame.rename(columns=renames)


def user_tables(tables: Mapping[int, pandas.DataFrame], snp_positions: Sequence[str] | None = None) -> dict:
    """:func:`user_table` of each class's table."""
    return {c: user_table(t, snp_positions) for c, t in tables.items()}
