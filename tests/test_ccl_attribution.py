"""Integrated gradients, the class-contrast rule, per-view losses and per-view checkpoints."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fusion import io
from fusion.errors import ConfigError, InputError
from fusion.interpret.ccl_maps import (
    compute_subject_maps,
    view_ig_steps,
    view_specs,
)
from fusion.interpret.integrated_gradients import integrated_gradients
from fusion.interpret.significance import class_contrast, contrast_edges, contrast_snps
from fusion.losses.collaborative import collaborative_terms, view_label_losses
from fusion.workflows.ccl_maps import analyse_subject_maps
from tests.test_ccl_interpret_pipeline import LAYERS, ToyCohort, small_model

captum_attr = pytest.importorskip("captum.attr")


def _snp_inputs(batch: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = small_model()
    fc = torch.randn(batch, 1, 16, 16, generator=g)
    snp = torch.randint(0, 3, (batch, 1, 40), generator=g).float()
    return model, fc, snp


@pytest.mark.parametrize("steps", [2, 8, 32])
def test_integrated_gradients_equal_captum(steps):
    model, fc, snp = _snp_inputs()
    baseline = snp.mean(0, keepdim=True)
    classes = torch.tensor([0, 1, 1, 0, 1])
    ours = integrated_gradients(model, (fc, snp), lambda out: out[torch.arange(5), 1, classes], 1, baseline, steps)

    def forward(snp_in, fc_in):  # captum attributes its first input; the FC input is held fixed
        return model(fc_in, snp_in)[:, 1, :]

    ig = captum_attr.IntegratedGradients(forward)
    ref = ig.attribute(snp, baselines=baseline.expand_as(snp), target=classes, additional_forward_args=(fc,),
                       n_steps=steps, method="riemann_middle")
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_integrated_gradients_add_up_to_the_score_change():
    """Completeness: the attributions of a subject sum to score(x) - score(reference)."""
    model, fc, snp = _snp_inputs(seed=3)
    baseline = torch.full((1, 1, 40), 0.7)
    att = integrated_gradients(model, (fc, snp), (1, 0), 1, baseline, steps=256)
    with torch.no_grad():
        change = model(fc, snp)[:, 1, 0] - model(fc, baseline.expand_as(snp))[:, 1, 0]
    # atol: quadrature error at ReLU kinks
    torch.testing.assert_close(att.sum(dim=(1, 2)), change, atol=1e-2 * float(change.abs().max()), rtol=0)
    # the FC input is not attributed, and a constant reference of 0 is the default
    zero = integrated_gradients(model, (fc, snp), (1, 0), 1, None, steps=4)
    torch.testing.assert_close(zero, integrated_gradients(model, (fc, snp), (1, 0), 1, 0.0, steps=4))


def test_integrated_gradients_reject_bad_arguments():
    model, fc, snp = _snp_inputs()
    with pytest.raises(ConfigError, match="steps"):
        integrated_gradients(model, (fc, snp), (1, 0), 1, None, steps=0)
    with pytest.raises(InputError, match="baseline of shape"):
        integrated_gradients(model, (fc, snp), (1, 0), 1, torch.zeros(1, 1, 39))
    # the FC view's logits do not see the SNPs: nothing is attributed to them
    assert integrated_gradients(model, (fc, snp), (0, 0), 1, None, steps=4).abs().max() == 0


def test_class_contrast_by_hand():
    # 4 subjects, 2 classes, 3 features; maps[s, c, f]
    maps = np.array([
        [[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]],
        [[3.0, 0.0, 2.0], [1.0, 1.0, 0.0]],
        [[0.0, 0.0, 2.0], [2.0, 5.0, 0.0]],
        [[1.0, 4.0, 2.0], [2.0, 3.0, 0.0]],
    ])
    labels = np.array([0, 0, 1, 1])
    d = class_contrast(maps, labels)
    # class 0: mean of subjects 0,1 of maps[:, 0] minus mean of subjects 2,3 of maps[:, 0]
    np.testing.assert_allclose(d[0], [2.0 - 0.5, 0.0 - 2.0, 0.0])
    np.testing.assert_allclose(d[1], [2.0 - 0.5, 4.0 - 1.0, 0.0])
    tables = contrast_snps(maps, labels, fraction=0.6, snp_ids=["a", "b", "c"])
    assert tables[0]["id"].tolist() == ["a"]  # 1.5 > 0.6 * 1.5 only for itself
    assert tables[1]["id"].tolist() == ["b"]  # 3.0 is the max; 1.5 is not > 1.8
    assert tables[1]["relative"].tolist() == [1.0]
    tables = contrast_snps(maps, labels, fraction=0.4)
    assert tables[1]["index"].tolist() == [1, 0]  # by decreasing contrast
    # a feature credited alike in both groups (column 2) never passes
    assert all(2 not in t["index"].tolist() for t in tables.values())


def test_contrast_robust_z_threshold():
    rng = np.random.default_rng(1)
    d = rng.normal(0.0, 1.0, 500)
    d[[10, 20]] = [50.0, 6.0]  # one huge feature would set a fraction-of-max threshold on its own
    from fusion.interpret.significance import contrast_mask

    assert np.flatnonzero(contrast_mask(d, fraction=0.2)).tolist() == [10]
    hits = np.flatnonzero(contrast_mask(d, z=4.5)).tolist()
    assert hits == [10, 20]
    # by hand: median and 1.4826 x MAD
    med = np.median(d)
    mad = 1.4826 * np.median(np.abs(d - med))
    np.testing.assert_array_equal(contrast_mask(d, z=2.0), (d - med) / mad > 2.0)
    assert not contrast_mask(np.ones(5), z=1.0).any()  # MAD 0: nothing
    with pytest.raises(ConfigError, match="z must be"):
        contrast_mask(d, z=0)


def test_class_contrast_errors():
    with pytest.raises(InputError, match="only class"):
        class_contrast(np.zeros((3, 2, 4)), np.zeros(3, int))
    with pytest.raises(InputError, match="n_classes"):
        class_contrast(np.zeros((3, 4)), np.zeros(3, int))
    with pytest.raises(InputError, match="has no map"):
        class_contrast(np.zeros((2, 2, 4)), np.array([0, 2]))
    # no positive contrast: nothing is significant
    maps = np.zeros((4, 2, 5))
    assert all(t.empty for t in contrast_snps(maps, np.array([0, 0, 1, 1])).values())


def test_contrast_edges_symmetrise_and_name_networks():
    rng = np.random.default_rng(0)
    maps = rng.normal(0, 0.01, (6, 2, 5, 5))
    labels = np.array([0, 0, 0, 1, 1, 1])
    maps[labels == 1, 1, 1, 3] += 2.0  # only one triangle entry: symmetrised to 1.0 on (1, 3)
    tables = contrast_edges(maps, labels, fraction=0.5, roi_networks=list("ABCDE"))
    top = tables[1].iloc[0]
    assert (top["roi_i"], top["roi_j"], top["network_i"], top["network_j"]) == (1, 3, "B", "D")
    assert top["contrast"] == pytest.approx(1.0, abs=0.05)
    assert len(tables[1]) == 1


def test_view_label_losses_are_each_views_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 3, 4, generator=g)
    target = torch.randint(0, 4, (7,), generator=g)
    per_view = view_label_losses(logits, target)
    expected = torch.stack([F.cross_entropy(logits[:, v], target) for v in range(3)])
    torch.testing.assert_close(per_view, expected)
    label_term, _ = collaborative_terms(logits, target)
    torch.testing.assert_close(per_view.mean(), label_term.mean())


def test_maps_by_class_contain_the_own_class_maps_and_feed_the_contrast(tmp_path):
    model = small_model()
    data = ToyCohort(12)
    views = view_specs(LAYERS, ["fc", "snp"])
    loader = DataLoader(data, batch_size=5)
    baseline = torch.from_numpy(data.snps.mean(0)).view(1, 1, -1)
    kinds = {"fc": ["gradcam"], "snp": ["integrated_gradients", "gradient"]}
    maps = compute_subject_maps(model, loader, views, ["fc", "snp"], 2, kinds=kinds, progress=False,
                                by_class=["snp"], baselines={"snp": baseline}, ig_steps=8)
    every = maps["integrated_gradients_snp_by_class"]
    assert every.shape == (12, 2, 40)
    own = maps["integrated_gradients_snp"]
    np.testing.assert_allclose(own, every[np.arange(12), data.labels], atol=1e-6)
    # the class-1 slice is the IG of the class-1 SNP logit of each subject
    x = torch.from_numpy(data.snps)[:, None]
    ref = integrated_gradients(model.single_view("snp"), (x,), (0, 1), 0, baseline, 8)[:, 0]
    np.testing.assert_allclose(every[:, 1], ref.numpy(), atol=1e-5)
    assert "gradcam_fc_by_class" not in maps
    # only the named kinds are computed for every class; the others stay own-class maps
    some = compute_subject_maps(model, loader, views, ["fc", "snp"], 2, kinds=kinds, progress=False,
                                by_class={"snp": ["integrated_gradients"]}, baselines={"snp": baseline}, ig_steps=8)
    assert "gradient_snp_by_class" not in some
    np.testing.assert_allclose(some["integrated_gradients_snp_by_class"], every, atol=1e-6)
    np.testing.assert_allclose(some["gradient_snp"], maps["gradient_snp"], atol=1e-6)
    with pytest.raises(ConfigError, match="not among its kinds"):
        compute_subject_maps(model, loader, views, ["fc", "snp"], 2, kinds=kinds, progress=False,
                             by_class={"snp": ["gradcam"]})
    summary = analyse_subject_maps(
        tmp_path, maps, {"fc": "gradcam", "snp": {"map": "integrated_gradients", "rule": "contrast", "z": 1.5}},
        snp_ids=data.snp_ids, truth=data.ground_truth, figures=True,
    )
    expected = contrast_snps(every, data.labels, snp_ids=data.snp_ids, z=1.5)
    written = pd.read_csv(tmp_path / "significant_snps_class1.csv")
    assert written["snp_index0"].tolist() == expected[1]["index"].tolist()
    assert summary["significance"]["snp"]["rule"] == "contrast"
    assert (tmp_path / "mean_maps_snp.png").is_file() and (tmp_path / "contrast_snp.png").is_file()
    with pytest.raises(ConfigError, match="by_class"):
        compute_subject_maps(model, loader, views, ["fc", "snp"], 2, kinds=kinds, progress=False, by_class=["eeg"])
    with pytest.raises(ConfigError, match="rule"):
        analyse_subject_maps(tmp_path, maps, {"snp": {"map": "gradient", "rule": "vote"}})


# ------------------------------------------------------------------ per-view checkpoints
class _Runner(SimpleNamespace):
    def stage_dir(self):
        return self.folder


def _fake_runner(tmp_path, model):
    return _Runner(model=model, folder=tmp_path, engine=None, epoch_metrics={}, stage_epoch_step=0,
                   need_early_stop=False)


def test_per_view_checkpoint_keeps_each_views_best_epoch(tmp_path):
    from fusion_callbacks.per_view_checkpoint import PerViewCheckpointCallback

    model = small_model()
    runner = _fake_runner(tmp_path, model)
    cb = PerViewCheckpointCallback(patience=2)
    cb.on_stage_start(runner)
    fc_losses = [0.6, 0.4, 0.5, 0.7, 0.8, 0.9]
    snp_losses = [0.7, 0.6, 0.5, 0.45, 0.46, 0.47]
    snapshots = []
    for epoch, (lf, ls) in enumerate(zip(fc_losses, snp_losses), start=1):
        with torch.no_grad():  # a different model every epoch
            for p in model.parameters():
                p.add_(0.01 * epoch)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        runner.stage_epoch_step = epoch
        runner.epoch_metrics = {"valid": {"label_loss_fc": lf, "label_loss_snp": ls}}
        cb.on_epoch_end(runner)
        if runner.need_early_stop:
            break
    # fc best at epoch 2, snp at epoch 4; nothing improves at epochs 5 and 6 -> stop after 6
    assert epoch == 6 and runner.need_early_stop
    saved = io.load_checkpoint(tmp_path / "checkpoints" / "best_per_view.pth")
    assert saved["epochs"] == {"fc": 2, "snp": 4}
    assert saved["scores"] == {"fc": 0.4, "snp": 0.45}
    state = saved["model_state_dict"]
    for key, value in state.items():
        best = 2 if key.startswith(("views.fc.", "collab.fc.")) else 4
        torch.testing.assert_close(value, snapshots[best - 1][key])
    # the composed model loads into a fresh network
    small_model().load_state_dict(state)


def test_per_view_checkpoint_survives_a_resume(tmp_path):
    from fusion_callbacks.per_view_checkpoint import PerViewCheckpointCallback

    model = small_model()
    runner = _fake_runner(tmp_path, model)
    cb = PerViewCheckpointCallback(patience=None)
    cb.on_stage_start(runner)
    runner.stage_epoch_step = 1
    runner.epoch_metrics = {"valid": {"label_loss_fc": 0.3, "label_loss_snp": 0.9}}
    cb.on_epoch_end(runner)
    fc_best = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("views.fc.")}
    # a new process: fresh callback, state from the resume file, changed weights
    resumed = PerViewCheckpointCallback(patience=None)
    resumed.on_stage_start(runner)
    resumed.load_state_dict(cb.state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    runner.stage_epoch_step = 2
    runner.epoch_metrics = {"valid": {"label_loss_fc": 0.5, "label_loss_snp": 0.8}}
    resumed.on_epoch_end(runner)
    saved = io.load_checkpoint(tmp_path / "checkpoints" / "best_per_view.pth")
    assert saved["epochs"] == {"fc": 1, "snp": 2}
    for key, value in fc_best.items():
        torch.testing.assert_close(saved["model_state_dict"][key], value)


def test_per_view_checkpoint_needs_one_metric_per_view(tmp_path):
    from fusion_callbacks.per_view_checkpoint import PerViewCheckpointCallback

    runner = _fake_runner(tmp_path, small_model())
    cb = PerViewCheckpointCallback()
    runner.epoch_metrics = {"valid": {"label_loss": 0.3}}
    with pytest.raises(ConfigError, match="label_loss_fc"):
        cb.on_epoch_end(runner)
    with pytest.raises(ConfigError, match="patience"):
        PerViewCheckpointCallback(patience=0)


def test_ig_steps_per_view_match_a_direct_call_with_those_steps():
    model = small_model()
    data = ToyCohort(6)
    views = view_specs(LAYERS, ["fc", "snp"])
    loader = DataLoader(data, batch_size=3)
    kinds = {"fc": ["integrated_gradients"], "snp": ["integrated_gradients"]}
    maps = compute_subject_maps(model, loader, views, ["fc", "snp"], 2, kinds=kinds, progress=False,
                                ig_steps={"fc": 1, "snp": 8})
    x_fc, x_snp = torch.from_numpy(data.fc)[:, None], torch.from_numpy(data.snps)[:, None]
    target = _own_class(data.labels)
    fc1 = integrated_gradients(model.single_view("fc"), (x_fc,), target, 0, None, 1)[:, 0]
    fc8 = integrated_gradients(model.single_view("fc"), (x_fc,), target, 0, None, 8)[:, 0]
    snp8 = integrated_gradients(model.single_view("snp"), (x_snp,), target, 0, None, 8)[:, 0]
    np.testing.assert_allclose(maps["integrated_gradients_fc"], fc1.numpy(), atol=1e-5)
    np.testing.assert_allclose(maps["integrated_gradients_snp"], snp8.numpy(), atol=1e-5)
    assert not np.allclose(fc1.numpy(), fc8.numpy(), atol=1e-5)  # the steps reached the FC view
    assert view_ig_steps({"fc": 2}, ["fc", "snp"]) == {"fc": 2, "snp": 32}
    with pytest.raises(ConfigError, match="not explained"):
        view_ig_steps({"mri": 2}, ["fc", "snp"])
    with pytest.raises(ConfigError, match="positive integer"):
        view_ig_steps({"fc": 0}, ["fc", "snp"])


def _own_class(labels: np.ndarray):
    classes = torch.as_tensor(labels).long()

    def score(output: torch.Tensor) -> torch.Tensor:
        return output[torch.arange(output.shape[0]), 0, classes]

    return score
