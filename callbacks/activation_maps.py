"""Export gCAM-CCL activation maps, significant features and recovery scores after training.

A thin Catalyst adapter around :mod:`fusion.interpret.ccl_maps`: once every fold has trained, it
loads each fold's best checkpoint, explains that fold's test subjects, and writes the results.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from catalyst.core import Callback, CallbackNode, CallbackOrder, CallbackScope
from torch.utils.data import DataLoader, Subset

from fusion import io
from fusion.devices import default_device
from fusion.errors import ConfigError, InputError
from fusion.interpret.ccl_maps import (
    bim_positions,
    compute_subject_maps,
    save_subject_maps,
    significance_spec,
    view_ig_steps,
    view_specs,
)
from fusion.interpret.recovery import load_ground_truth
from fusion.workflows.ccl_maps import analyse_subject_maps

LOGGER = logging.getLogger(__name__)
RECOVERY_KEYS = ("edge_precision", "edge_recall", "snp_precision", "snp_recall")


def _plain(value: Any) -> Any:
    """A Hydra/omegaconf node as plain Python (mappings to dicts), anything else unchanged."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


class ActivationMapCallback(Callback):
    """Grad-CAM / guided Grad-CAM maps of the test subjects of every fold, and what they reveal.

    Experiment-scoped (runs once, in the launching process, after all folds have trained; only
    the main process writes). For each fold stage it:

    1. builds a fresh model (``runner.build_model()``) and loads the fold's ``checkpoint``
       (``checkpoints/best.pth``; conf/ccl.yaml: ``best_per_view.pth``) with
       ``torch.load(weights_only=True)``;
    2. computes, for each view in ``target_layers``, the Grad-CAM and guided Grad-CAM map of every
       test subject for its own class, and saves them as ``<fold>/maps/gradcam_fc.npy``
       ``(n_test, 264, 264)``, ``guided_gradcam_fc.npy``, ``gradcam_snp.npy`` ``(n_test, 750)``,
       ``guided_gradcam_snp.npy`` and ``subjects.npz`` (labels, predictions, dataset indices),
       plus the map its significance is computed from and, for a view with the contrast rule,
       every class's maps (``<kind>_<view>_by_class.npy`` ``(n, C, ...)``);
    3. writes to ``<fold>/interpretation/`` the significant edges, hub degrees and significant
       SNPs per class (CSV), the figures (activation histograms, class-mean maps, connectome,
       hub degrees) and ``summary.json``;
    4. when a ground truth is found, scores recovery and adds a ``recovery`` block
       (``edge_precision``, ``edge_recall``, ``snp_precision``, ``snp_recall``; mean over folds,
       with the per-fold values under ``folds``) to ``<logdir>/results.json``, keeping what is
       already there.

    Args:
        target_layers: ``{view name: dotted layer path}``; view names are the model's input names
            in order (``view_order``).
        variant: ``"eq10"`` (paper) or ``"standard"`` Grad-CAM.
        fraction: per-subject threshold, share of the subject's maximum (paper: 0.05).
        class_fraction: significant when kept in more than this share of a class (paper: 0.7).
        significance_maps: per view, the map its significance is computed from: a kind
            (``"gradcam"``, ``"guided_gradcam"``, ``"guided_backprop"``, ``"gradient"``,
            ``"integrated_gradients"``) or a mapping ``{map, rule, fraction, class_fraction,
            absolute}`` overriding the shared thresholds and rule (see
            ``fusion.interpret.ccl_maps.significance_spec``). Default: Grad-CAM on signed values
            with the shared thresholds, for every view (the paper's rule). A view with
            ``rule: contrast`` gets its maps for every class (``<kind>_<view>_by_class.npy``).
        ig_steps: points of the integrated-gradients path, one number or ``{view: points}``
            (each point is a backward pass through that view); the reference input of a view is the
            mean of that fold's training subjects.
        view_order: the model's inputs = batch keys, in order.
        n_classes: number of classes.
        upsample_mode: interpolation mode from the layer to the input size.
        relu_map: ReLU on the Grad-CAM map (None: the variant's definition).
        map_class: ``"label"`` (each subject's class) or ``"predicted"``.
        recovery_classes: ``"union"`` of the classes' significant features, or one class index.
        loader_key: the subjects to explain and count: a split part (``"test"``), a list of parts
            (``["train", "valid", "test"]``) or ``"all"`` (every part: the paper counts the
            frequency "across all subjects"). The maps of every explained subject are saved.
        checkpoint: checkpoint path inside a fold folder.
        ground_truth: ``ground_truth.json`` path; None looks at the dataset's ``ground_truth``
            attribute, then beside ``data.manifest``.
        atlas: ``"power264"`` gives ROI networks and coordinates to 264 x 264 FC maps; None none.
        batch_size: subjects per forward/backward pass.
        figures: draw the figures.
        device: ``"cpu"``, ``"cuda"``...; None picks CUDA when available.
        min_share: over repeated splits a feature is significant when selected in more than
            this share of them (``significant_features.json``; 0.5: a strict majority).
        save_maps: write every subject's maps to ``<fold>/maps/`` (about 0.4 GB per split of
            300 subjects with 264 x 264 FC); False keeps them in memory only: significance,
            figures and recovery are the same, but the maps cannot be re-thresholded later.

    Example (``conf/ccl.yaml``)::

        callbacks:
          activation_maps:
            _target_: fusion_callbacks.activation_maps.ActivationMapCallback
            target_layers:
              fc: views.fc.features.conv1.relu
              snp: views.snp.features.conv1.relu
            variant: eq10
            fraction: 0.05            # the paper's rule, used by views without their own setting
            class_fraction: 0.7
            significance_maps:
              # Grad-CAM averages the gradients over space, so on FC/SNP inputs (where what
              # matters is *where* a value sits, not what it looks like) it keeps almost every
              # feature; the magnitude of guided Grad-CAM with a stricter per-subject threshold
              # recovers the planted edges of the embedded cohort; for the SNPs, integrated
              # gradients by the class-contrast rule (conf/ccl.yaml gives the measured figures).
              fc: {map: guided_gradcam, absolute: true, fraction: 0.25, class_fraction: 0.5}
              snp: {map: integrated_gradients, rule: contrast, z: 3.5}
    """

    def __init__(
        self,
        target_layers: Mapping[str, str],
        variant: str = "eq10",
        fraction: float = 0.05,
        class_fraction: float = 0.7,
        significance_maps: Mapping[str, str | Mapping] | None = None,
        view_order: Sequence[str] = ("fc", "snp"),
        n_classes: int = 2,
        upsample_mode: str = "nearest",
        relu_map: bool | None = None,
        map_class: str = "label",
        recovery_classes: str | int = "union",
        loader_key: str | Sequence[str] = "test",
        checkpoint: str = "checkpoints/best.pth",
        ground_truth: str | None = None,
        atlas: str | None = "power264",
        batch_size: int = 8,
        figures: bool = True,
        device: str | None = None,
        ig_steps: int | Mapping[str, int] = 32,
        min_share: float = 0.5,
        save_maps: bool = True,
    ) -> None:
        super().__init__(
            order=CallbackOrder.ExternalExtra, node=CallbackNode.master, scope=CallbackScope.experiment
        )
        self.target_layers = dict(target_layers)
        self.variant = variant
        self.fraction = float(fraction)
        self.class_fraction = float(class_fraction)
        self.significance_maps = dict(significance_maps or {v: "gradcam" for v in self.target_layers})
        self.view_order = list(view_order)
        self.n_classes = int(n_classes)
        self.upsample_mode = upsample_mode
        self.relu_map = relu_map
        self.map_class = map_class
        self.recovery_classes = recovery_classes
        self.loader_key: str | list[str] = (
            loader_key if loader_key == "all" else [loader_key] if isinstance(loader_key, str) else list(loader_key)
        )
        self.checkpoint = checkpoint
        self.ground_truth = ground_truth
        self.atlas = atlas
        self.batch_size = int(batch_size)
        self.figures = bool(figures)
        self.device = device
        self.ig_steps = view_ig_steps(_plain(ig_steps), list(self.target_layers))
        self.min_share = float(min_share)
        self.save_maps = bool(save_maps)
        self.views = view_specs(self.target_layers, self.view_order)
        self.significance_maps = {k: _plain(v) for k, v in self.significance_maps.items()}
        # Per view: the paper's two maps, plus the one its significance is computed from.
        self.kinds = {view: ["gradcam", "guided_gradcam"] for view in self.target_layers}
        self.by_class: dict[str, list[str]] = {}  # view -> kinds computed for every class
        for view, setting in self.significance_maps.items():
            if view not in self.target_layers:
                raise ConfigError(
                    f"significance_maps names view {view!r}, which has no target layer "
                    f"({sorted(self.target_layers)})"
                )
            spec = significance_spec(setting, self.fraction, self.class_fraction)
            if spec["map"] not in self.kinds[view]:
                self.kinds[view].append(spec["map"])
            if spec["rule"] == "contrast":
                self.by_class[view] = [spec["map"]]

    # ------------------------------------------------------------------ events
    def on_experiment_end(self, runner: Any) -> None:
        """Explain every fold this process ran, then add the recovery block to results.json."""
        if getattr(runner, "exception", None) is not None:
            return
        from fusion_runners.base import is_main_process

        if not is_main_process(getattr(runner, "engine", None)):
            return
        truth = self._ground_truth(runner)
        per_fold, selected = {}, []
        for stage in runner.stages:
            summary = self.explain_stage(runner, stage, truth)
            selected.append(summary.get("selected", {}))
            if summary.get("recovery") is not None:
                per_fold[stage] = summary["recovery"]
        consensus = write_consensus(Path(runner.logdir), selected, truth, self.min_share,
                                    self._univariate(runner) if any(selected) else None)
        if per_fold or consensus.get("recovery"):
            self._write_recovery(Path(runner.logdir) / "results.json", per_fold, consensus)
        if consensus.get("univariate"):
            path = Path(runner.logdir) / "results.json"
            results = io.read_json(path) if path.is_file() else {}
            results["univariate_agreement"] = consensus["univariate"]
            io.write_json(path, results)
            for kind, agreement in consensus["univariate"].items():
                if agreement["corroborated"] is False:
                    print(f"WARNING: {agreement['n_common']} of the {agreement['n_selected']} significant {kind} "
                          f"are among the {agreement['n_univariate']} the t-test/FDR reference finds: "
                          "not corroborated (see report.md)", flush=True)

    @staticmethod
    def _univariate(runner: Any) -> dict | None:
        """The t-test/FDR reference (:mod:`fusion.interpret.univariate`) on every subject of the
        dataset (those the maps explain with the default ``loader_key: all``); None when it cannot
        be computed."""
        from fusion.interpret.univariate import univariate_features

        dataset = runner.dataset
        if not hasattr(dataset, "arrays"):
            return None
        if hasattr(dataset, "fit"):
            # missing calls imputed from every subject, not from the last fold's training subjects;
            # the t-test does not see the per-feature standardisation this also refits
            dataset.fit(np.arange(len(dataset)))
        fc, snps, y = dataset.arrays()
        if set(np.unique(y).tolist()) != {0, 1}:
            return None  # two classes only
        return univariate_features(fc, snps, y)

    # ------------------------------------------------------------------ work
    def explain_stage(self, runner: Any, stage: str, truth: Mapping | None = None) -> dict:
        """Maps, significance, figures and recovery of one fold; returns its summary."""
        stage_dir = Path(runner.stage_dir(stage))
        split = getattr(runner, "stage_indices", {}).get(stage, {})
        subjects = self.subject_indices(split, stage)
        dataset = runner.dataset
        if hasattr(dataset, "fit") and "train" in split:
            dataset.fit(split["train"])  # imputation and standardisation: this fold's training subjects only
        model = runner.build_model()
        model.load_state_dict(self._load_weights(stage_dir / self.checkpoint))
        loader = DataLoader(Subset(dataset, subjects.tolist()), batch_size=self.batch_size, shuffle=False)
        device = self.device or default_device()
        LOGGER.info("activation maps of %s: %d subjects", stage, len(subjects))
        maps = compute_subject_maps(
            model, loader, self.views, self.view_order, self.n_classes, variant=self.variant,
            upsample_mode=self.upsample_mode, relu_map=self.relu_map, map_class=self.map_class,
            kinds=self.kinds, device=device, by_class=self.by_class,
            baselines=self.baselines(dataset, split), ig_steps=self.ig_steps,
        )
        if self.save_maps:
            save_subject_maps(stage_dir / "maps", maps)
        roi_networks = roi_coords = None
        fc_maps = maps.get("gradcam_fc")
        if self.atlas == "power264" and fc_maps is not None and fc_maps.shape[1:] == (264, 264):
            from fusion.data.power import power_coords, power_networks

            roi_networks, roi_coords = power_networks(), power_coords()
        summary = analyse_subject_maps(
            stage_dir / "interpretation",
            maps,
            self.significance_maps,
            fraction=self.fraction,
            class_fraction=self.class_fraction,
            class_names=getattr(dataset, "class_names", None),
            roi_networks=roi_networks,
            roi_coords=roi_coords,
            snp_ids=getattr(dataset, "snp_ids", None),
            snp_positions=self.snp_positions(dataset),
            truth=truth,
            recovery_classes=self.recovery_classes,
            figures=self.figures,
        )
        summary["files"] = [str(Path(p).relative_to(stage_dir)) for p in summary["files"]]
        summary["settings"] = {
            "target_layers": self.target_layers,
            "variant": self.variant,
            "fraction": self.fraction,
            "class_fraction": self.class_fraction,
            "map_kinds": self.kinds,
            "upsample_mode": self.upsample_mode,
            "map_class": self.map_class,
            "n_subjects": int(len(maps["labels"])),
            "accuracy": float(np.mean(maps["predicted"] == maps["labels"])),
        }
        io.write_json(stage_dir / "interpretation" / "summary.json", summary)
        return summary

    # ------------------------------------------------------------------ helpers
    def baselines(self, dataset: Any, split: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Integrated-gradients reference of each view that needs one: the mean input of the
        fold's training subjects, ``(1, 1, *spatial)`` (genotypes: mean dosage per SNP)."""
        views = [v for v, kinds in self.kinds.items() if "integrated_gradients" in kinds]
        if not views:
            return {}
        if "train" not in split or not len(split["train"]):
            raise ConfigError("integrated gradients need the fold's training subjects for their reference input")
        train = [int(i) for i in split["train"]]
        out = {}
        for view in views:
            total: torch.Tensor | None = None
            for i in train:
                x = dataset[i][view].to(torch.float64)
                total = x if total is None else total + x
            assert total is not None  # train is not empty (checked above)
            out[view] = (total / len(train)).to(torch.float32).unsqueeze(0)
        return out

    def subject_indices(self, split: Mapping[str, Any], stage: str = "?") -> np.ndarray:
        """Dataset indices of the subjects to explain: the split parts named by ``loader_key``
        (``"all"``: every part of the split), in the order of the parts, each subject once."""
        parts = list(split) if self.loader_key == "all" else list(self.loader_key)
        missing = [p for p in parts if p not in split]
        if missing or not parts:
            raise ConfigError(
                f"ActivationMapCallback: stage {stage!r} has no {missing or parts} subjects "
                f"(split parts: {sorted(split)}); loader_key takes a part, a list of parts or 'all'"
            )
        indices = np.concatenate([np.asarray(split[p], dtype=int).reshape(-1) for p in parts])
        _, first = np.unique(indices, return_index=True)
        return indices[np.sort(first)]

    @staticmethod
    def snp_positions(dataset: Any) -> list[str] | None:
        """``chromosome:position`` of the dataset's SNPs when they come from a PLINK set whose
        ``.bim`` gives positions; None otherwise (the figures then number the SNPs from 1)."""
        source = str(getattr(getattr(dataset, "info", None), "genotype_source", "") or "")
        if not source.endswith(".bed") or not Path(source).with_suffix(".bim").is_file():
            return None
        return bim_positions(Path(source).with_suffix(".bim"), getattr(dataset, "snp_ids", None))

    @staticmethod
    def _load_weights(path: Path) -> dict:
        if not path.is_file():
            raise InputError(
                f"ActivationMapCallback: checkpoint {path} does not exist (is a checkpoint callback "
                f"saving 'best' into the fold folder?)"
            )
        state = io.load_checkpoint(path)
        if isinstance(state, dict) and "model_state_dict" in state:
            state = state["model_state_dict"]
        if not isinstance(state, dict):
            raise InputError(f"checkpoint {path} holds no model state dict")
        return state

    def _ground_truth(self, runner: Any) -> Mapping | None:
        if self.ground_truth:
            return load_ground_truth(self.ground_truth)
        truth = getattr(runner.dataset, "ground_truth", None)
        if truth is not None:
            return truth
        manifest = runner.select("data.manifest") if hasattr(runner, "select") else None
        if manifest:
            path = Path(str(manifest)).parent / "ground_truth.json"
            if path.is_file():
                return load_ground_truth(path)
        return None

    @staticmethod
    def _write_recovery(path: Path, per_fold: Mapping[str, Mapping], consensus: Mapping) -> None:
        """``results.json`` ``recovery``: the consensus over splits (a feature selected in most
        repetitions), the mean of the per-split scores, and each split's."""
        mean = {key: float(np.mean([r[key] for r in per_fold.values()])) for key in RECOVERY_KEYS
                if per_fold and all(key in r for r in per_fold.values())}
        block = dict(consensus.get("recovery") or mean)
        block["rule"] = (f"consensus: selected in more than {consensus.get('min_share', 0.5):.0%} of "
                         f"{consensus.get('n_repetitions', len(per_fold))} split(s)")
        block["mean_over_splits"] = mean
        block["folds"] = {stage: dict(r) for stage, r in per_fold.items()}
        results = io.read_json(path) if path.is_file() else {}
        results["recovery"] = block
        io.write_json(path, results)


def write_consensus(logdir: Path, selected: list[dict], truth: Mapping | None, min_share: float,
                    reference: Mapping | None = None) -> dict:
    """``significant_features.json`` at the run root: edges and SNPs selected in most splits
    (1-based ROI and SNP numbers in the file, as everywhere a user reads), with the verdict of
    ``results.json`` copied in, so a list from a model at chance says so where it is read, and,
    given the t-test/FDR ``reference`` on the same subjects, how far each list agrees with it
    (``univariate``; also returned under that key)."""
    from fusion.interpret.consensus import consensus_significance
    from fusion.interpret.univariate import univariate_agreement

    if not selected or not any(selected):
        return {}
    consensus = consensus_significance(selected, dict(truth) if truth is not None else None, min_share)
    if reference is not None:
        kept: dict[str, Any] = {key: [tuple(item[:-1]) if key == "edges" else item[0] for item in consensus[key]]
                                for key in ("edges", "snps") if key in consensus}
        consensus["univariate"] = univariate_agreement(kept, dict(reference))
    results_path = logdir / "results.json"
    verdict = (io.read_json(results_path).get("verdict") if results_path.is_file() else None) or {}
    doc = {
        "interpretable": verdict.get("interpretable"),
        "reasons": verdict.get("reasons", []),
        # per kind: the edges come from the FC view's maps, the SNPs from the SNP view's; a view at
        # chance on its own makes its list not interpretable even when the fused model is
        "features": verdict.get("features") or {},
        "rule": f"selected in more than {min_share:.0%} of {consensus['n_repetitions']} split(s)",
        "index_base": 1,
        "edges": [{"roi_i": i + 1, "roi_j": j + 1, "splits": c} for i, j, c in consensus.get("edges", [])],
        "snps": [{"snp": k + 1, "splits": c} for k, c in consensus.get("snps", [])],
        "recovery": consensus.get("recovery"),
        "univariate": consensus.get("univariate"),
    }
    io.write_json(logdir / "significant_features.json", doc)
    return consensus
