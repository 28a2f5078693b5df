"""VAE runner, its configs and its callbacks, in-process (no subprocess, no training run)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from catalyst.engines import DeviceEngine
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score
from sklearn.svm import SVC

from fusion.errors import ConfigError, InputError
from fusion.evaluate.aggregate import aggregate_results
from fusion.losses.vae_elbo import elbo
from fusion.models.vae import MultimodalVAE
from fusion_callbacks.aggregate import ResultsAggregationCallback
from fusion_callbacks.folds import FoldSplitCallback
from fusion_callbacks.latents import LatentExtractionCallback
from fusion_callbacks.svm import SVMClassificationCallback
from fusion_runners.vae import VAERunner

CONF = Path(__file__).resolve().parents[1] / "conf"
GRID = (6, 7, 5)
N_MOD = 4


class VolumeCohort(torch.utils.data.Dataset):
    """A stand-in PreparedVolumes: ``n`` subjects of ``N_MOD`` volumes on ``GRID``, patients brighter."""

    def __init__(self, n: int = 20, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.labels = np.arange(n) % 2
        self.subject_ids = [f"sub-{i:03d}" for i in range(n)]
        self.shape = GRID
        base = rng.normal(size=(n, N_MOD, *GRID)) * 0.3
        base[:, 0] += self.labels[:, None, None, None] * 0.8
        self.x = np.clip(base, -1, 1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"volumes": torch.from_numpy(self.x[i]), "label": int(self.labels[i]), "index": i}


def _compose(name: str, overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name=name, overrides=overrides or [])


def _fake_runner(tmp_path: Path, model: torch.nn.Module, dataset, split: dict) -> SimpleNamespace:
    return SimpleNamespace(
        logdir=tmp_path, stage_key="fold_00", engine=DeviceEngine("cpu"), model=model,
        dataset=dataset, stage_indices={"fold_00": split}, exception=None, seed=42,
    )


# ---------------------------------------------------------------- configs
def test_vae_config_composes_and_builds_the_runner(tmp_path):
    cfg = _compose("vae", [f"logdir={tmp_path}", "folds.only=3"])
    assert cfg.runner._recursive_ is False
    assert cfg.args.expdir == "runners"
    assert cfg.model.in_shape is None
    runner = instantiate(cfg.runner, cfg=cfg)
    assert isinstance(runner, VAERunner)
    assert runner.stages == ["fold_03"]
    assert len(runner.all_stages) == 10
    assert isinstance(runner.get_engine(), DeviceEngine)
    # every callback and logger node instantiates
    runner._split_callbacks()
    assert list(runner.experiment_callbacks) == ["folds", "results", "analysis"]
    stage_callbacks = runner.get_callbacks("fold_03")
    assert {"optimizer", "checkpoint", "early_stopping", "latents", "svm"} <= set(stage_callbacks)
    assert stage_callbacks["early_stopping"].patience == cfg.stage.patience
    assert set(runner.get_loggers()) == {"console", "csv", "tensorboard"}  # TensorBoard on by default


def test_paper_config_has_the_paper_values():
    cfg = _compose("vae_paper")
    assert list(cfg.model.channels) == [64, 128, 256, 512]
    assert list(cfg.model.head_channels) == [32, 16]
    assert cfg.model.latent_dim == 128
    assert cfg.stage.optimizer.lr == pytest.approx(1e-4)
    assert cfg.loss.beta == 1.0 and cfg.loss.kl_warmup_epochs == 0  # the plain ELBO
    assert cfg.folds.n_splits == 10 and cfg.folds.val_fraction == pytest.approx(0.1)
    assert cfg.args.seed == 42
    assert cfg.engine.device.startswith("cuda")
    VAERunner.validate_config(cfg)


def test_cpu_default_keeps_the_papers_bottleneck_on_the_small_grid():
    """The reduced VAE on the 6 mm grid ends on the paper model's 4x4x4 (a 2x2x2 one lost local effects)."""
    from fusion.data.volume_layout import GRIDS
    from fusion.models.vae import encoder_features, encoder_shapes

    paper = _compose("vae_paper").model.channels
    small = _compose("vae").model.channels
    paper_bottleneck = encoder_shapes(GRIDS["paper"][0], len(paper))[-1]
    assert paper_bottleneck == (4, 4, 4)
    assert encoder_shapes(GRIDS["small"][0], len(small))[-1] == paper_bottleneck
    assert encoder_features(GRIDS["small"][0], small) >= 2048  # the latent layer sees 64 positions x 32 channels


@pytest.mark.parametrize("engine", ["cpu", "gpu", "amp", "ddp", "ddp_cpu"])
def test_engine_group(engine):
    cfg = _compose("vae", [f"engine={engine}"])
    if engine in ("cpu", "ddp_cpu"):
        built = instantiate(cfg.engine)
        assert built.is_ddp == (engine == "ddp_cpu") or engine == "cpu"
    if engine == "ddp_cpu":
        assert cfg.engine.process_group_kwargs.backend == "gloo" and cfg.engine.num_node_workers == 2
    if engine == "ddp":
        assert cfg.engine.process_group_kwargs.backend == "nccl"


def test_unknown_key_from_the_command_line_is_named(tmp_path):
    cfg = _compose("vae", [f"logdir={tmp_path}", "+latnt_dim=32"])
    with pytest.raises(InstantiationException, match="latnt_dim") as info:
        instantiate(cfg.runner, cfg=cfg)  # what catalyst-dl does; Hydra wraps the error
    assert isinstance(info.value.__cause__, ConfigError)


# ---------------------------------------------------------------- runner
def _runner(tmp_path, channels_last: bool = False, **model):
    cfg = OmegaConf.create({
        "stage": {"channels_last": channels_last},
        "logdir": str(tmp_path),
        "model": {"_target_": "fusion.models.vae.MultimodalVAE", "in_shape": None,
                  "channels": [2, 2], "head_channels": [2], "latent_dim": 3, **model},
        "loss": {"beta": 0.5},
    })
    runner = VAERunner(cfg=cfg)
    runner._dataset = VolumeCohort()
    return runner


def test_model_follows_the_data_grid(tmp_path):
    model = _runner(tmp_path).build_model()
    assert model.in_shape == GRID
    with pytest.raises(ConfigError, match="differs from the prepared volumes' grid"):
        _runner(tmp_path, in_shape=[8, 8, 8]).build_model()


def test_handle_batch_scores_every_volume(tmp_path):
    runner = _runner(tmp_path)
    runner.model = runner.build_model().eval()
    batch = torch.utils.data.default_collate([runner.dataset[i] for i in range(3)])
    torch.manual_seed(1)
    runner.handle_batch(batch)
    x = batch["volumes"].reshape(3 * N_MOD, 1, *GRID)
    torch.manual_seed(1)
    recon, mu, logvar = runner.model(x)
    expected = elbo(recon, x, mu, logvar, beta=0.5)
    for key in ("loss", "recon", "kl"):
        assert torch.allclose(runner.batch_metrics[key], expected[key])
    assert torch.allclose(runner.batch_metrics["loss"],
                          runner.batch_metrics["recon"] + 0.5 * runner.batch_metrics["kl"])


def test_kl_warmup_follows_the_training_batches_of_the_fold(tmp_path):
    runner = _runner(tmp_path)
    runner.cfg.loss.kl_warmup_epochs = 1.0
    runner.engine = SimpleNamespace(world_size=1)
    runner.is_train_loader, runner.loader_batch_len, runner.stage_epoch_step = True, 4, 1
    weights = []
    for step in (1, 2, 3, 4):
        runner.loader_batch_step = step
        weights.append(runner.kl_weight())
    assert weights == pytest.approx([0.0, 0.125, 0.25, 0.375])  # beta 0.5 over 4 batches
    runner.stage_epoch_step, runner.loader_batch_step = 2, 1  # a later epoch (or a resumed fold)
    assert runner.kl_weight() == pytest.approx(0.5)
    runner.stage_epoch_step, runner.is_train_loader = 1, False  # validation: always the full beta
    assert runner.kl_weight() == pytest.approx(0.5)
    runner.cfg.loss.kl_warmup_epochs = 0.0
    runner.is_train_loader = True
    assert runner.kl_weight() == pytest.approx(0.5)


def test_channels_last_layout_gives_the_same_numbers(tmp_path):
    losses = []
    for channels_last in (False, True):
        runner = _runner(tmp_path, channels_last=channels_last)
        runner.model = runner.get_model("train")
        conv = runner.model.encoder[2].weight  # (2, 2, 3, 3, 3): the layouts differ
        assert conv.is_contiguous(memory_format=torch.channels_last_3d) == channels_last
        batch = torch.utils.data.default_collate([runner.dataset[i] for i in range(2)])
        torch.manual_seed(5)
        runner.handle_batch(batch)
        losses.append(runner.batch_metrics["loss"].item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


# ---------------------------------------------------------------- callbacks
def test_fold_split_callback_writes_checks_and_fills_stages(tmp_path):
    dataset = VolumeCohort(n=30)
    runner = SimpleNamespace(logdir=tmp_path, dataset=dataset, engine=DeviceEngine("cpu"), stage_indices={})
    FoldSplitCallback(n_splits=3, val_fraction=0.2, seed=5).on_experiment_start(runner)
    saved = json.loads((tmp_path / "splits.json").read_text())
    assert saved["n_splits"] == 3 and saved["subject_ids"] == dataset.subject_ids
    tested = []
    for k in range(3):
        parts = runner.stage_indices[f"fold_{k:02d}"]
        train, valid, test = (set(parts[p].tolist()) for p in ("train", "valid", "test"))
        assert not (train & valid or train & test or valid & test)
        assert train | valid | test == set(range(30))
        assert sorted(test) == saved["folds"][k]["test"]
        tested += sorted(test)
    assert sorted(tested) == list(range(30))
    # the same split again is accepted (e.g. another fold's job); another seed is refused
    before = (tmp_path / "splits.json").stat().st_mtime_ns
    FoldSplitCallback(n_splits=3, val_fraction=0.2, seed=5).on_experiment_start(runner)
    assert (tmp_path / "splits.json").stat().st_mtime_ns == before
    with pytest.raises(ConfigError, match="another run"):
        FoldSplitCallback(n_splits=3, val_fraction=0.2, seed=6).on_experiment_start(runner)


def _trained_fold(tmp_path):
    dataset = VolumeCohort(n=20)
    torch.manual_seed(3)
    model = MultimodalVAE(GRID, (2, 2), (2,), 3)
    ckpt = tmp_path / "fold_00" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save({"model_state_dict": model.state_dict()}, ckpt / "best.pth")
    split = {"train": np.arange(0, 12), "valid": np.arange(12, 14), "test": np.arange(14, 20)}
    other = MultimodalVAE(GRID, (2, 2), (2,), 3)  # the runner's model, with other weights
    return _fake_runner(tmp_path, other, dataset, split), model, dataset, split


def test_latent_extraction_uses_the_best_checkpoint_and_mu(tmp_path):
    runner, model, dataset, split = _trained_fold(tmp_path)
    LatentExtractionCallback(batch_size=3, progress=False).on_stage_end(runner)
    latents = np.load(tmp_path / "fold_00" / "latents.npz", allow_pickle=False)
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(dataset.x).reshape(-1, 1, *GRID)
        expected = model.encode(x)[0].reshape(20, N_MOD, 3).numpy()
    np.testing.assert_allclose(latents["mu"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(latents["labels"], dataset.labels)
    np.testing.assert_array_equal(latents["subject_ids"], dataset.subject_ids)
    np.testing.assert_array_equal(latents["val"], split["valid"])
    np.testing.assert_array_equal(latents["test"], split["test"])


def test_latent_extraction_needs_a_checkpoint(tmp_path):
    runner, *_ = _trained_fold(tmp_path)
    with pytest.raises(InputError, match="last.pth"):
        LatentExtractionCallback(checkpoint="last", progress=False).on_stage_end(runner)


def test_svm_callback_matches_scikit_learn(tmp_path):
    runner, *_ = _trained_fold(tmp_path)
    LatentExtractionCallback(progress=False).on_stage_end(runner)
    SVMClassificationCallback(C=0.5, backend="sklearn").on_stage_end(runner)
    result = json.loads((tmp_path / "fold_00" / "result.json").read_text())
    latents = np.load(tmp_path / "fold_00" / "latents.npz")
    X = latents["mu"].reshape(20, -1)
    fit = np.concatenate([latents["train"], latents["val"]])
    reference = SVC(C=0.5, kernel="linear").fit(X[fit], latents["labels"][fit])
    ref_scores = reference.decision_function(X[latents["test"]])
    np.testing.assert_allclose(result["scores"], ref_scores, rtol=1e-4, atol=1e-6)
    assert result["auc"] == pytest.approx(roc_auc_score(result["test_labels"], result["scores"]))
    assert result["test_subject_ids"] == [f"sub-{i:03d}" for i in range(14, 20)]
    assert (result["n_train"], result["n_val"], result["n_test"]) == (12, 2, 6)
    assert result["latent_dim"] == 3 and result["svm_backend"] == "sklearn"
    weights = np.load(tmp_path / "fold_00" / "svm.npz")
    assert weights["coef"].shape == (N_MOD * 3,)
    np.testing.assert_allclose(X[latents["test"]] @ weights["coef"] + weights["intercept"][0],
                               result["scores"], rtol=1e-6, atol=1e-8)


def _write_result(logdir: Path, fold: int, auc: float, latent_dim: int = 16) -> None:
    path = logdir / f"fold_{fold:02d}" / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auc": auc, "latent_dim": latent_dim, "n_subjects": 40}))


def test_results_aggregation(tmp_path):
    for fold, auc in [(2, 0.9), (0, 0.7), (1, 0.8)]:
        _write_result(tmp_path, fold, auc)
    runner = SimpleNamespace(logdir=tmp_path, engine=DeviceEngine("cpu"), exception=None, seed=42)
    ResultsAggregationCallback(n_splits=5).on_experiment_end(runner)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["auc"] == [0.7, 0.8, 0.9]
    assert results["folds"] == ["fold_00", "fold_01", "fold_02"]
    assert results["auc_mean"] == pytest.approx(0.8)
    assert results["auc_std"] == pytest.approx(np.std([0.7, 0.8, 0.9]))
    assert results["complete"] is False and results["n_splits"] == 5
    assert (results["latent_dim"], results["seed"], results["n_subjects"]) == (16, 42, 40)


def test_results_aggregation_refuses_mixed_runs_and_skips_failures(tmp_path):
    _write_result(tmp_path, 0, 0.7, latent_dim=16)
    _write_result(tmp_path, 1, 0.8, latent_dim=32)
    with pytest.raises(InputError, match="latent_dim"):
        aggregate_results(tmp_path)
    failed = SimpleNamespace(logdir=tmp_path, engine=DeviceEngine("cpu"), exception=RuntimeError("x"), seed=1)
    ResultsAggregationCallback().on_experiment_end(failed)
    assert not (tmp_path / "results.json").exists()
    assert aggregate_results(tmp_path / "empty") is None
