"""The VAE run analysis and report, on a fake run directory built to the contract of
docs/architecture.md ("Run directory (VAE)"), plus the `fusion vae-analyze|sample|interpolate` commands."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from fusion import io
from fusion.cli import main
from fusion.data.dataset import PreparedVolumes
from fusion.data.neuromark import modality_domains, modality_names
from fusion.interpret.group_maps import decoded_group_difference, recovery_scores
from fusion.models import MultimodalVAE
from fusion.report.vae_report import write_vae_report
from fusion.workflows.vae_analysis import analyze_vae_run

SHAPE = (9, 11, 10)
N_MOD = 54
LATENT = 5
MODEL_CFG = {"_target_": "fusion.models.vae.MultimodalVAE", "in_shape": None, "channels": [4, 8],
             "head_channels": [4, 2], "latent_dim": LATENT}
# 16 mm voxels over the MNI brain; deliberately not the identity.
AFFINE = np.array([[16.0, 0, 0, -72], [0, 16.0, 0, -104], [0, 0, 16.0, -60], [0, 0, 0, 1]])
PLANTED = [4, 53]
N_SUBJ = 10


def _blob(centre, sigma=1.5):
    grid = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    return np.exp(-sum((g - c) ** 2 for g, c in zip(grid, centre)) / (2 * sigma**2)).astype(np.float32)


def _write_prepared(root: Path) -> Path:
    """A prepared folder (index.csv, meta.json, one .npy per subject) with a planted effect."""
    prepared = root / "prepared"
    prepared.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * (N_SUBJ // 2))
    effect = np.zeros((N_MOD, *SHAPE), np.float32)
    effect[4] = -0.5 * _blob((4, 5, 5))
    effect[53] = 0.4 * _blob((2, 3, 6))
    mask = np.zeros(SHAPE, bool)
    mask[1:-1, 1:-1, 1:-1] = True
    rows = []
    for s in range(N_SUBJ):
        vol = np.stack([_blob((1 + m % 7, 1 + m % 9, 1 + m % 8)) for m in range(N_MOD)])
        vol += 0.05 * rng.normal(size=vol.shape)
        if labels[s]:
            vol += effect
        vol *= mask
        vol /= np.abs(vol).max(axis=(1, 2, 3), keepdims=True)
        io.save_npy(prepared / f"sub-{s:02d}.npy", vol.astype(np.float32))
        rows.append({"subject_id": f"sub-{s:02d}", "label": int(labels[s]), "path": f"sub-{s:02d}.npy"})
    io.write_csv(prepared / "index.csv", pd.DataFrame(rows))
    io.write_json(prepared / "meta.json", {
        "shape": list(SHAPE), "affine": AFFINE.tolist(), "n_modalities": N_MOD,
        "modality_names": modality_names(), "modality_domains": modality_domains(), "dtype": "float32",
    })
    io.write_json(prepared / "ground_truth.json", {
        "effect": True, "effect_modalities": PLANTED, "effect_map": "ground_truth_effect.nii.gz", "seed": 0,
    })
    io.save_nifti(prepared / "ground_truth_effect.nii.gz", np.moveaxis(effect, 0, -1), AFFINE)
    return prepared


def _write_run(root: Path, prepared: Path, n_folds: int = 2, checkpoints: bool = True) -> Path:
    """A finished run: configs, per-fold checkpoint, latents, SVM weights, result; results.json."""
    logdir = root / "run"
    (logdir / "configs").mkdir(parents=True)
    io.write_json(logdir / "configs" / "_config.json", {
        "model": MODEL_CFG, "data": {"_target_": "fusion.data.dataset.PreparedVolumes", "prepared_dir": str(prepared),
                                     "cache": "none"},
    })
    data = PreparedVolumes(prepared)
    x = torch.stack([data[i]["volumes"] for i in range(len(data))])
    rng = np.random.default_rng(1)
    aucs = []
    for k in range(n_folds):
        fold = logdir / f"fold_{k:02d}"
        torch.manual_seed(10 + k)
        model = MultimodalVAE(SHAPE, MODEL_CFG["channels"], MODEL_CFG["head_channels"], LATENT).eval()
        if checkpoints:
            (fold / "checkpoints").mkdir(parents=True)
            torch.save({"model_state_dict": model.state_dict(), "epoch_metrics": {"valid": {"loss": 1.0}}},
                       fold / "checkpoints" / "best.pth")
        with torch.no_grad():
            mu = model.encode(x.reshape(-1, 1, *SHAPE))[0].reshape(N_SUBJ, N_MOD, LATENT).numpy()
        test = np.array([2 * k, 2 * k + 1, 2 * k + 4, 2 * k + 5])
        train = np.setdiff1d(np.arange(N_SUBJ), test)
        fold.mkdir(exist_ok=True)
        io.save_npz(fold / "latents.npz", mu=mu, labels=data.labels, subject_ids=np.array(data.subject_ids),
                    train=train[:-1], val=train[-1:], test=test)
        coef = 0.01 * rng.normal(size=(N_MOD, LATENT))
        coef[PLANTED] += 1.0
        coef[10] += 0.5
        io.save_npz(fold / "svm.npz", coef=coef.ravel(), intercept=np.zeros(1))
        y = data.labels[test]
        scores = y + 0.8 * rng.normal(size=len(test)) - 0.4
        from sklearn.metrics import roc_auc_score

        aucs.append(float(roc_auc_score(y, scores)))
        io.write_json(fold / "result.json", {
            "auc": aucs[-1], "n_train": int(len(train)), "n_test": int(len(test)),
            "test_subject_ids": [data.subject_ids[i] for i in test], "test_labels": y.tolist(),
            "scores": scores.tolist(), "latent_dim": LATENT,
        })
    io.write_json(logdir / "results.json", {
        "auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)), "auc": aucs,
        "folds": [f"fold_{k:02d}" for k in range(n_folds)], "n_folds": n_folds, "latent_dim": LATENT, "seed": 42,
    })
    return logdir


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("vae_run")
    prepared = _write_prepared(root)
    return _write_run(root, prepared), prepared


@pytest.fixture(scope="module")
def analysed(fake_run):
    """`fusion vae-analyze` on the fake run: the prepared data is found through the run config."""
    logdir, prepared = fake_run
    assert main(["vae-analyze", "--logdir", str(logdir), "--fold", "1", "--perplexity", "10", "--tsne-iter", "250",
                 "--device", "cpu"]) == 0
    results = io.read_json(logdir / "results.json")
    return logdir, prepared, {k: results[k] for k in ("analysis", "group_difference", "recovery")}


@pytest.mark.slow
def test_analysis_writes_maps_on_the_input_grid_with_the_input_affine(analysed):
    logdir, prepared, added = analysed
    group = added["group_difference"]
    assert group["fold"] == 1 and group["modalities"][:2] == [4, 53] and group["modalities"][2] == 10
    decoded_img = nib.load(logdir / "group_difference_decoded.nii.gz")
    assert decoded_img.shape == (*SHAPE, N_MOD)
    np.testing.assert_allclose(decoded_img.affine, AFFINE)
    for name in ("group_difference_top5.nii.gz", "group_difference_input_top5.nii.gz"):
        img = nib.load(logdir / name)
        assert img.shape == SHAPE
        np.testing.assert_allclose(img.affine, AFFINE)
    # The stored decoded map is decode(patient centre) - decode(control centre) of fold 1's model.
    latents = io.load_npz(logdir / "fold_01" / "latents.npz")
    model = MultimodalVAE(SHAPE, MODEL_CFG["channels"], MODEL_CFG["head_channels"], LATENT)
    model.load_state_dict(torch.load(logdir / "fold_01/checkpoints/best.pth", weights_only=True)["model_state_dict"])
    expected = decoded_group_difference(model, latents["mu"], latents["labels"])
    np.testing.assert_allclose(np.moveaxis(decoded_img.get_fdata(), -1, 0), expected, atol=1e-5)
    # Recovery numbers are those of recovery_scores on the same maps, within the data's mask.
    effect = np.moveaxis(nib.load(prepared / "ground_truth_effect.nii.gz").get_fdata(), -1, 0)
    mask = np.zeros(SHAPE, bool)
    mask[1:-1, 1:-1, 1:-1] = True
    ref = recovery_scores(expected, effect, PLANTED, 99.0, mask)
    results = io.read_json(logdir / "results.json")
    assert results["recovery"]["map_correlation"] == pytest.approx(ref["map_correlation"], abs=1e-4)
    assert results["recovery"]["map_dice"] == pytest.approx(ref["map_dice"], abs=1e-6)
    assert results["recovery"]["modality_recall"] == 1.0  # modalities 4 and 53 carry the largest weights
    # Earlier results are kept.
    assert results["auc_mean"] == pytest.approx(np.mean(results["auc"])) and results["seed"] == 42
    assert set(group["comparison"]) >= {"correlation", "dice", "correlation_thresholded"}


@pytest.mark.slow
def test_report_lists_every_piece(analysed):
    logdir, _, _ = analysed
    assert not (logdir / "report.md").exists()  # vae-analyze writes its own report unless told to replace
    text = (logdir / "report_analyze.md").read_text()
    results = io.read_json(logdir / "results.json")
    for k, auc in enumerate(results["auc"]):
        assert f"| fold_{k:02d} | {auc:.4f} |" in text
    assert f"Mean ROC-AUC {results['auc_mean']:.4f} ± {results['auc_std']:.4f}" in text
    for png in ("roc_curves.png", "importance.png", "latent_tsne.png", "group_difference.png",
                "group_difference_comparison.png"):
        assert f"]({png})" in text
        with open(logdir / png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "ICN05 (SC)" in text and "sMRI GM" in text  # importance top-10 table
    rec = results["recovery"]
    row_label = "| map correlation (decoded vs planted, mean over planted modalities) "
    assert f"| {rec['map_correlation']:.3f} |" in text.replace(row_label, "")
    assert "modality recall" in text and "Not available" not in text
    # The report is rebuilt from files alone.
    write_vae_report(logdir)
    assert (logdir / "report.md").read_text() == text
    (logdir / "report.md").unlink()


@pytest.mark.slow
def test_missing_pieces_are_skipped_with_a_reason(tmp_path):
    prepared = _write_prepared(tmp_path)
    (prepared / "ground_truth.json").unlink()
    logdir = _write_run(tmp_path, prepared, n_folds=1, checkpoints=False)
    added = analyze_vae_run(logdir, tsne_perplexity=5, tsne_max_iter=250, tsne_max_subjects=3, device="cpu")
    assert "recovery" not in added and "group_difference" not in added
    assert "best.pth" in added["analysis"]["skipped"]["group_difference"]
    results = io.read_json(logdir / "results.json")
    assert "recovery" not in results
    text = (logdir / "report.md").read_text()
    assert "_Not available: checkpoint" in text
    assert "_Not available: the data carries no ground_truth.json._" in text
    assert "](latent_tsne.png)" in text and "](roc_curves.png)" in text


@pytest.mark.slow
def test_sample_and_interpolate_commands(analysed, tmp_path, capsys):
    logdir, prepared, _ = analysed
    out = tmp_path / "gen"
    assert main(["sample", "--logdir", str(logdir), "--n", "3", "--out", str(out), "--device", "cpu"]) == 0
    img = nib.load(out / "samples.nii.gz")
    assert img.shape == (*SHAPE, 3)
    np.testing.assert_allclose(img.affine, AFFINE)
    with open(out / "samples.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"

    assert main(["interpolate", "--logdir", str(logdir), "--from", "sub-01", "--to", "sub-02", "--modality",
                 "ICN05", "--steps", "4", "--out", str(out), "--device", "cpu"]) == 0
    img = nib.load(out / "interpolation.nii.gz")
    assert img.shape == (*SHAPE, 4)
    np.testing.assert_allclose(img.affine, AFFINE)
    info = io.read_json(out / "interpolation.json")
    assert info["start"] == {"subject": "sub-01", "modality": 4, "modality_name": "ICN05 (SC)"}
    latents = io.load_npz(logdir / "fold_00" / "latents.npz")
    model = MultimodalVAE(SHAPE, MODEL_CFG["channels"], MODEL_CFG["head_channels"], LATENT).eval()
    model.load_state_dict(torch.load(logdir / "fold_00/checkpoints/best.pth", weights_only=True)["model_state_dict"])
    with torch.no_grad():
        ends = model.decode(torch.from_numpy(latents["mu"][[1, 2], 4]))[:, 0].numpy()
    vols = img.get_fdata()
    np.testing.assert_allclose(vols[..., 0], ends[0], atol=1e-5)
    np.testing.assert_allclose(vols[..., -1], ends[1], atol=1e-5)

    # Two modalities of one subject, and a bad endpoint.
    assert main(["interpolate", "--logdir", str(logdir), "--from", "4", "--to", "sMRI", "--subject", "sub-03",
                 "--steps", "3", "--method", "slerp", "--out", str(out), "--device", "cpu"]) == 0
    assert io.read_json(out / "interpolation.json")["end"]["modality"] == 53
    assert main(["interpolate", "--logdir", str(logdir), "--from", "sub-99", "--to", "sub-01", "--modality", "4",
                 "--out", str(out)]) == 2
    assert "sub-99" in capsys.readouterr().err


def test_vae_analyze_command_reports_bad_input(tmp_path, capsys):
    assert main(["vae-analyze", "--logdir", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_callback_analyses_the_run_at_experiment_end(fake_run, tmp_path):
    import shutil
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from fusion.errors import InputError
    from fusion_callbacks.vae_analysis import VAEAnalysisCallback

    logdir = tmp_path / "run"
    shutil.copytree(fake_run[0], logdir)
    for name in ("report.md", "results.json"):
        (logdir / name).unlink(missing_ok=True)
    io.write_json(logdir / "results.json", {"auc_mean": 0.5, "seed": 42})
    # A model config that does not fit the checkpoints: the group maps are skipped with the reason.
    wrong = {**MODEL_CFG, "latent_dim": LATENT + 2}
    runner = SimpleNamespace(logdir=logdir, engine=None, exception=None, cfg=OmegaConf.create({"model": wrong}),
                             dataset=PreparedVolumes(fake_run[1]))
    callback = VAEAnalysisCallback(fold=7, tsne_perplexity=5, tsne_max_iter=250, tsne_max_subjects=3, device="cpu")
    failed = SimpleNamespace(**{**vars(runner), "exception": RuntimeError("boom")})
    callback.on_experiment_end(failed)
    assert not (logdir / "report.md").exists()
    callback.on_experiment_end(runner)
    results = io.read_json(logdir / "results.json")
    assert results["analysis"]["fold"] == 0  # fold 7 was not trained: the lowest trained fold
    assert "does not fit" in results["analysis"]["skipped"]["group_difference"]
    assert results["recovery"]["modality_recall"] == 1.0 and results["auc_mean"] == 0.5
    assert "does not fit" in (logdir / "report.md").read_text()
    # Broken latents: logged into the report, or raised when strict.
    io.save_npz(logdir / "fold_00" / "latents.npz", mu=np.zeros((3, 4)), labels=np.zeros(3))
    callback.on_experiment_end(runner)
    assert "analysis failed" in (logdir / "report.md").read_text()
    assert "mu must be" in io.read_json(logdir / "results.json")["analysis"]["error"]
    with pytest.raises(InputError, match="mu must be"):
        VAEAnalysisCallback(strict=True).on_experiment_end(runner)


def test_analysis_settings_are_one_dataclass_shared_by_callback_and_function():
    """The callback's config keys are VAEAnalysisSettings' fields: a misspelt key fails when the
    callback is built (before training), not at the end of the run."""
    from fusion.workflows.vae_analysis import VAEAnalysisSettings
    from fusion_callbacks.vae_analysis import VAEAnalysisCallback

    callback = VAEAnalysisCallback(fold=2, tsne_max_iter=250)
    assert callback.settings == VAEAnalysisSettings(fold=2, tsne_max_iter=250)
    with pytest.raises(TypeError, match="tsne_iters"):
        VAEAnalysisCallback(tsne_iters=250)
