"""Per-subject maps of a collaborative network, result files, figures and the callback."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from fusion import io
from fusion.errors import InputError
from fusion.interpret.ccl_maps import (
    compute_subject_maps,
    save_subject_maps,
    view_specs,
)
from fusion.interpret.gradcam import grad_cam, view_class_target
from fusion.interpret.guided_backprop import guided_grad_cam
from fusion.models.ccl import CollaborativeNet, FCNet, SNPNet
from fusion.workflows.ccl_maps import analyse_subject_maps

N_ROIS, N_SNPS = 16, 40
LAYERS = {"fc": "views.fc.features.conv2.relu", "snp": "views.snp.features.conv1.relu"}


def small_model() -> CollaborativeNet:
    fc = FCNet(channels=(4, 4, 4, 8), kernels=(3, 3, 3, 2), paddings=(1, 1, 1, 0),
               pools=(2, 2, 2, None), n_rois=N_ROIS)
    snp = SNPNet(channels=(4, 4, 8), kernels=(5, 5, 7), pools=(2, 2, None), n_snps=N_SNPS)
    return CollaborativeNet({"fc": fc, "snp": snp}, n_classes=2).eval()


class ToyCohort(Dataset):
    """Random symmetric 'FC' and 0/1/2 'SNPs' with the item layout of CCLDataset."""

    def __init__(self, n: int = 12):
        rng = np.random.default_rng(0)
        fc = rng.standard_normal((n, N_ROIS, N_ROIS)).astype(np.float32)
        self.fc = (fc + fc.transpose(0, 2, 1)) / 2
        self.snps = rng.integers(0, 3, (n, N_SNPS)).astype(np.float32)
        self.labels = np.arange(n) % 2
        self.class_names = ["low", "high"]
        self.snp_ids = [f"rs{k}" for k in range(N_SNPS)]
        self.ground_truth = {"edges": [[0, 1], [2, 3]], "snps": [5, 6, 7]}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"fc": torch.from_numpy(self.fc[i])[None], "snp": torch.from_numpy(self.snps[i])[None],
                "label": int(self.labels[i]), "index": i}


def test_subject_maps_are_each_subjects_class_map():
    model, data = small_model(), ToyCohort()
    views = view_specs(LAYERS, ["fc", "snp"])
    maps = compute_subject_maps(model, DataLoader(data, batch_size=5), views, ["fc", "snp"], 2,
                                progress=False)
    assert maps["gradcam_fc"].shape == (12, N_ROIS, N_ROIS)
    assert maps["guided_gradcam_snp"].shape == (12, N_SNPS)
    np.testing.assert_array_equal(maps["labels"], data.labels)
    np.testing.assert_array_equal(maps["index"], np.arange(12))
    fc = torch.from_numpy(data.fc[:, None])
    snp = torch.from_numpy(data.snps[:, None])
    for i in (0, 3):  # subject 0 is class 0, subject 3 class 1
        target = view_class_target(0, int(data.labels[i]))
        cam = grad_cam(model, (fc[i:i + 1], snp[i:i + 1]), LAYERS["fc"], target,
                       upsample_to=(N_ROIS, N_ROIS))
        np.testing.assert_allclose(maps["gradcam_fc"][i], cam[0].numpy(), atol=1e-6)
        target = view_class_target(1, int(data.labels[i]))
        ggc = guided_grad_cam(model, (fc[i:i + 1], snp[i:i + 1]), LAYERS["snp"], target,
                              input_index=1)
        np.testing.assert_allclose(maps["guided_gradcam_snp"][i], ggc[0, 0].numpy(), atol=1e-6)


def test_subject_maps_reject_a_label_outside_the_classes():
    model, data = small_model(), ToyCohort()
    data.labels = data.labels * 2  # classes 0 and 2 for a 2-class model
    with pytest.raises(InputError, match=r"outside 0\.\.1"):
        compute_subject_maps(model, DataLoader(data, batch_size=4), view_specs(LAYERS, ["fc", "snp"]),
                             ["fc", "snp"], 2, progress=False)


def test_analysis_writes_tables_and_recovery(tmp_path):
    model, data = small_model(), ToyCohort()
    views = view_specs(LAYERS, ["fc", "snp"])
    maps = compute_subject_maps(model, DataLoader(data, batch_size=6), views, ["fc", "snp"], 2,
                                progress=False)
    save_subject_maps(tmp_path / "maps", maps)
    assert np.load(tmp_path / "maps" / "gradcam_fc.npy").shape == (12, N_ROIS, N_ROIS)
    coords = np.random.default_rng(0).uniform(-60, 60, (N_ROIS, 3))
    summary = analyse_subject_maps(
        tmp_path / "out", maps, {"fc": "gradcam", "snp": "guided_gradcam"}, fraction=0.05,
        class_fraction=0.5, class_names=data.class_names, roi_networks=["N"] * N_ROIS,
        roi_coords=coords, snp_ids=data.snp_ids, truth=data.ground_truth, figures=False)
    out = tmp_path / "out"
    edges = pd.read_csv(out / "significant_edges_high.csv")
    # 0-based positions only in columns that say so, names from 1 as in the figures
    assert list(edges.columns) == ["roi_i_name", "roi_j_name", "roi_i_index0", "roi_j_index0",
                                   "network_i", "network_j", "frequency"]
    assert (edges["frequency"] > 0.5).all() and (edges["roi_i_index0"] < edges["roi_j_index0"]).all()
    assert (edges["roi_i_name"] == [f"ROI{i + 1:03d}" for i in edges["roi_i_index0"]]).all()
    assert list(pd.read_csv(out / "significant_snps_low.csv").columns) == ["snp_index0", "id", "frequency"]
    hubs = pd.read_csv(out / "hub_degrees_low.csv")
    assert list(hubs.columns) == ["roi_name", "roi_index0", "network", "degree"]
    assert hubs.loc[hubs["roi_index0"] == 0, "roi_name"].item() == "ROI001"
    recovery = summary["recovery"]
    assert set(recovery) >= {"edge_precision", "edge_recall", "snp_precision", "snp_recall"}
    assert recovery["n_edges_found"] == len(
        set(map(tuple, pd.concat([pd.read_csv(out / f"significant_edges_{c}.csv")
                                  for c in ("low", "high")])[["roi_i_index0", "roi_j_index0"]].to_numpy())))


@pytest.mark.slow
def test_callback_explains_each_fold_and_adds_recovery(tmp_path):
    from fusion_callbacks.activation_maps import ActivationMapCallback

    data = ToyCohort()
    model = small_model()
    stage_dir = tmp_path / "fold_00"
    (stage_dir / "checkpoints").mkdir(parents=True)
    torch.save({"model_state_dict": model.state_dict()}, stage_dir / "checkpoints" / "best.pth")
    io.write_json(tmp_path / "results.json", {"accuracy": 0.5})
    runner = SimpleNamespace(
        stages=["fold_00"],
        stage_dir=lambda stage: tmp_path / stage,
        stage_indices={"fold_00": {"train": np.arange(6), "valid": np.arange(6, 8),
                                   "test": np.arange(8, 12)}},
        dataset=data,
        build_model=lambda: small_model().train(),
        logdir=tmp_path,
        engine=None,
        exception=None,
    )
    callback = ActivationMapCallback(LAYERS, significance_maps={"fc": "gradcam", "snp": "gradcam"},
                                     class_fraction=0.4, batch_size=3, figures=False,
                                     device="cpu")
    callback.on_experiment_end(runner)
    assert np.load(stage_dir / "maps" / "gradcam_fc.npy").shape == (4, N_ROIS, N_ROIS)
    subjects = io.load_npz(stage_dir / "maps" / "subjects.npz")
    np.testing.assert_array_equal(subjects["index"], np.arange(8, 12))
    results = io.read_json(tmp_path / "results.json")
    assert results["accuracy"] == 0.5  # kept
    summary = io.read_json(stage_dir / "interpretation" / "summary.json")
    for key in ("edge_precision", "edge_recall", "snp_precision", "snp_recall"):
        assert results["recovery"][key] == pytest.approx(summary["recovery"][key])
    assert set(results["recovery"]["folds"]) == {"fold_00"}
    # A failed run is left alone.
    runner.exception = RuntimeError("boom")
    (tmp_path / "results.json").unlink()
    callback.on_experiment_end(runner)
    assert not (tmp_path / "results.json").exists()


def test_callback_without_saved_maps_gives_the_same_findings(tmp_path):
    from fusion_callbacks.activation_maps import ActivationMapCallback

    data = ToyCohort()
    model = small_model()
    summaries = {}
    for save in (True, False):
        root = tmp_path / str(save)
        stage_dir = root / "fold_00"
        (stage_dir / "checkpoints").mkdir(parents=True)
        torch.save({"model_state_dict": model.state_dict()}, stage_dir / "checkpoints" / "best.pth")
        runner = SimpleNamespace(
            stages=["fold_00"], stage_dir=lambda stage, root=root: root / stage,
            stage_indices={"fold_00": {"train": np.arange(6), "valid": np.arange(6, 8), "test": np.arange(8, 12)}},
            dataset=data, build_model=lambda: small_model().train(), logdir=root, engine=None, exception=None,
        )
        ActivationMapCallback(LAYERS, significance_maps={"fc": "gradcam", "snp": "gradcam"}, class_fraction=0.4,
                              batch_size=3, figures=False, device="cpu", save_maps=save).on_experiment_end(runner)
        assert (stage_dir / "maps").exists() is save
        summaries[save] = io.read_json(stage_dir / "interpretation" / "summary.json")
    assert summaries[False]["recovery"] == summaries[True]["recovery"]
    for key in ("selected", "n_significant"):
        assert summaries[False][key] == summaries[True][key]


def test_callback_rejects_unknown_views_and_missing_checkpoints(tmp_path):
    from fusion.errors import ConfigError, InputError
    from fusion_callbacks.activation_maps import ActivationMapCallback

    with pytest.raises(ConfigError, match="not one of the inputs"):
        ActivationMapCallback({"mri": "x"})
    with pytest.raises(ConfigError, match="significance setting"):
        ActivationMapCallback(LAYERS, significance_maps={"fc": "cam"})
    with pytest.raises(ConfigError, match="significance setting"):
        ActivationMapCallback(LAYERS, significance_maps={"fc": {"map": "gradient", "level": 1}})
    with pytest.raises(ConfigError, match="no target layer"):
        ActivationMapCallback({"fc": LAYERS["fc"]}, significance_maps={"snp": "gradcam"})
    runner = SimpleNamespace(
        stages=["fold_00"], stage_dir=lambda s: tmp_path / s, dataset=ToyCohort(),
        stage_indices={"fold_00": {"train": [0], "test": [1]}}, build_model=small_model,
        logdir=tmp_path, engine=None, exception=None)
    with pytest.raises(InputError, match="best.pth does not exist"):
        ActivationMapCallback(LAYERS, device="cpu").on_experiment_end(runner)


def test_significance_settings_per_view(tmp_path):
    from fusion.interpret.ccl_maps import significance_spec

    assert significance_spec("gradcam") == {"map": "gradcam", "rule": "frequency", "fraction": 0.05, "z": None,
                                            "class_fraction": 0.7, "absolute": False}
    spec = significance_spec({"map": "gradient", "absolute": True, "fraction": 0.3}, 0.05, 0.6)
    assert spec == {"map": "gradient", "rule": "frequency", "fraction": 0.3, "class_fraction": 0.6,
                    "absolute": True, "z": None}
    # absolute: a feature with large negative values in every subject becomes significant.
    labels = np.zeros(4, int)
    maps = {"gradient_snp": np.tile([1.0, -0.9, 0.01], (4, 1)).astype(np.float32), "labels": labels}
    signed = analyse_subject_maps(tmp_path / "a", maps, {"snp": "gradient"}, figures=False)
    assert signed["n_significant"]["snps"] == {"class0": 1}
    absolute = analyse_subject_maps(tmp_path / "b", maps,
                                    {"snp": {"map": "gradient", "absolute": True}}, figures=False)
    assert absolute["n_significant"]["snps"] == {"class0": 2}


def test_map_kinds_per_view_compute_only_what_is_asked():
    model, data = small_model(), ToyCohort()
    views = view_specs(LAYERS, ["fc", "snp"])
    kinds = {"fc": ["gradcam", "guided_gradcam"], "snp": ["gradcam", "gradient"]}
    maps = compute_subject_maps(model, DataLoader(data, batch_size=5), views, ["fc", "snp"], 2,
                                kinds=kinds, progress=False)
    assert {k for k in maps if k.endswith(("_fc", "_snp"))} == {
        "gradcam_fc", "guided_gradcam_fc", "gradcam_snp", "gradient_snp"}
    every = compute_subject_maps(model, DataLoader(data, batch_size=5), views, ["fc", "snp"], 2,
                                 kinds=["gradcam", "gradient"], progress=False)
    np.testing.assert_array_equal(maps["gradient_snp"], every["gradient_snp"])
    from fusion.errors import ConfigError

    with pytest.raises(ConfigError, match="view"):
        compute_subject_maps(model, DataLoader(data, batch_size=5), views, ["fc", "snp"], 2,
                             kinds={"fc": ["gradcam"]}, progress=False)


def test_callback_kinds_follow_each_views_significance_map():
    from fusion_callbacks.activation_maps import ActivationMapCallback

    callback = ActivationMapCallback(LAYERS, significance_maps={"fc": "guided_gradcam", "snp": "gradient"})
    assert callback.kinds == {"fc": ["gradcam", "guided_gradcam"],
                              "snp": ["gradcam", "guided_gradcam", "gradient"]}


@pytest.mark.parametrize("loader_key, expected", [
    ("test", [8, 9, 10, 11]),
    (["valid", "test"], [6, 7, 8, 9, 10, 11]),
    ("all", list(range(12))),
])
def test_callback_subjects_from_split_parts(loader_key, expected):
    from fusion.errors import ConfigError
    from fusion_callbacks.activation_maps import ActivationMapCallback

    split = {"train": np.arange(6), "valid": np.arange(6, 8), "test": np.arange(8, 12)}
    callback = ActivationMapCallback(LAYERS, loader_key=loader_key)
    assert callback.subject_indices(split).tolist() == expected
    with pytest.raises(ConfigError, match="no \\['holdout'\\] subjects"):
        ActivationMapCallback(LAYERS, loader_key="holdout").subject_indices(split, "fold_00")
