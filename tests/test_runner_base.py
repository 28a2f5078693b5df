"""The config-driven base runner: config validation, stages as folds, per-stage components."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from catalyst.core import Callback, CallbackOrder, CallbackScope
from catalyst.engines import DeviceEngine
from omegaconf import OmegaConf
from torch.utils.data import Dataset

from fusion.errors import ConfigError
from fusion_runners.base import ConfigRunner, fold_stage_name, is_main_process


class ToyCohort(Dataset):
    """Linearly separable points: ``x`` ``(4,)`` and a 0/1 ``label``."""

    def __init__(self, n: int = 24, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.labels = np.arange(n) % 2
        self.x = (rng.normal(size=(n, 4)) + self.labels[:, None] * 2.0).astype(np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.from_numpy(self.x[i]), "label": int(self.labels[i]), "index": i}


class AlternatingSplit(Callback):
    """Experiment-scoped stand-in split: fold f tests every subject with index % n == f."""

    def __init__(self, n_splits: int):
        super().__init__(order=CallbackOrder.internal, scope=CallbackScope.experiment)
        self.n_splits = n_splits
        self.events: list[str] = []

    def on_experiment_start(self, runner) -> None:
        idx = np.arange(len(runner.dataset.labels))
        for fold in range(self.n_splits):
            test = idx[idx % self.n_splits == fold]
            rest = idx[idx % self.n_splits != fold]
            runner.stage_indices[fold_stage_name(fold)] = {
                "train": rest[2:], "valid": rest[:2], "test": test
            }
        self.events.append("start")

    def on_experiment_end(self, runner) -> None:
        self.events.append("end")


class ToyRunner(ConfigRunner):
    """Logistic regression on the toy cohort; the loss goes to ``batch_metrics``."""

    def handle_batch(self, batch) -> None:
        logits = self.model(batch["x"]).squeeze(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["label"].float())
        self.batch_metrics["loss"] = loss
        self.batch_metrics["n_seen"] = float(len(logits))  # mean of a constant is that constant


def _config(tmp_path: Path, **extra) -> dict:
    cfg = {
        "logdir": str(tmp_path / "run"),
        "args": {"seed": 7},
        "engine": {"_target_": "catalyst.engines.DeviceEngine", "device": "cpu"},
        "loggers": {"csv": {"_target_": "fusion_runners.loggers.StageCSVLogger", "logdir": str(tmp_path / "run")}},
        "data": {"_target_": "test_runner_base.ToyCohort", "n": 24},
        "model": {"_target_": "torch.nn.Linear", "in_features": 4, "out_features": 1},
        "folds": {"n_splits": 3, "only": None},
        "stage": {
            "num_epochs": 2,
            "batch_size": 5,
            "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
        },
        "callbacks": {
            "split": {"_target_": "test_runner_base.AlternatingSplit", "n_splits": 3},
            "optimizer": {"_target_": "catalyst.callbacks.OptimizerCallback", "metric_key": "loss"},
            "checkpoint": {
                "_target_": "fusion_callbacks.checkpoint.StageCheckpointCallback",
                "logdir": str(tmp_path / "run"),
                "loader_key": "valid",
                "metric_key": "loss",
                "minimize": True,
            },
            "disabled": None,
        },
    }
    cfg.update(extra)
    return cfg


def test_minimal_config_uses_defaults(tmp_path):
    runner = ToyRunner(cfg={"logdir": str(tmp_path), "model": {"_target_": "torch.nn.Linear",
                                                               "in_features": 2, "out_features": 1}})
    assert runner.stages == ["train"]
    assert runner.get_stage_len("train") == 1
    assert runner.seed == 42
    assert isinstance(runner.get_engine(), DeviceEngine)
    assert list(runner.get_loggers()) == ["console"]
    assert runner.get_optimizer("train", torch.nn.Linear(2, 1)) is None
    assert runner.get_scheduler("train", None) is None
    assert runner.get_criterion("train") is None
    assert runner.get_callbacks("train") == {}


def test_unknown_top_level_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="modle"):
        ToyRunner(cfg={**_config(tmp_path), "modle": {"latent_dim": 3}})


@pytest.mark.parametrize(
    "patch, match",
    [
        ({"folds": {"n_splits": 3, "onyl": 1}}, "folds.onyl"),
        ({"stage": {"num_epoch": 3}}, "stage.num_epoch"),
        ({"folds": {"n_splits": 3, "only": 3}}, "folds.only"),
        ({"folds": {"n_splits": 1}}, "n_splits"),
        ({"stages": {"train": {"num_epochs": 1}}}, "stages"),
        ({"logdir": None}, "logdir"),
    ],
)
def test_bad_config_raises_config_error(tmp_path, patch, match):
    with pytest.raises(ConfigError, match=match):
        ToyRunner(cfg={**_config(tmp_path), **patch})


def test_fold_selection(tmp_path):
    runner = ToyRunner(cfg=_config(tmp_path, folds={"n_splits": 4, "only": [3, 1]}))
    assert runner.all_stages == ["fold_00", "fold_01", "fold_02", "fold_03"]
    assert runner.stages == ["fold_01", "fold_03"]
    assert runner.stage_seed("fold_03") == 7 + 3
    assert ToyRunner(cfg=_config(tmp_path, folds={"n_splits": 4, "only": 2})).stages == ["fold_02"]


def test_missing_split_is_a_config_error(tmp_path):
    runner = ToyRunner(cfg=_config(tmp_path))
    with pytest.raises(ConfigError, match="no subject split for stage 'fold_00'"):
        runner.get_datasets("fold_00")


def test_run_trains_each_fold_with_fresh_components(tmp_path):
    runner = ToyRunner(cfg=_config(tmp_path))
    models = []
    original = runner.get_model

    def recording_get_model(stage):
        model = original(stage)
        models.append((stage, model, model.weight.detach().clone()))
        return model

    runner.get_model = recording_get_model
    runner.run()
    assert runner.exception is None

    # experiment-scoped callback: built once, saw both experiment events, never a stage callback
    split = runner.experiment_callbacks["split"]
    assert split.events == ["start", "end"]
    assert "split" not in runner.callbacks and "disabled" not in runner.callbacks

    # one fresh model per fold, initialised from args.seed + fold
    assert [s for s, _, _ in models] == ["fold_00", "fold_01", "fold_02"]
    assert len({id(m) for _, m, _ in models}) == 3
    torch.manual_seed(7 + 1)
    assert torch.equal(torch.nn.Linear(4, 1).weight, models[1][2])

    # per-fold checkpoints, CSV logs, and the epoch metric equals the loader mean of batch metrics
    for fold in range(3):
        stage = runner.stage_dir(fold_stage_name(fold))
        assert (stage / "checkpoints" / "best.pth").is_file()
        assert (stage / "checkpoints" / "last_full.pth").is_file()
        assert (stage / "logs" / "train.csv").is_file()
    metrics = json.loads((runner.stage_dir("fold_02") / "checkpoints" / "_metrics.json").read_text())
    assert metrics["last"]["valid"]["n_seen"] == pytest.approx(2.0)  # 2 validation subjects
    # 14 training subjects in batches of 5, 5, 4; the mean is weighted by batch size
    assert metrics["last"]["train"]["n_seen"] == pytest.approx((5 * 5 + 5 * 5 + 4 * 4) / 14)

    state = torch.load(runner.stage_dir("fold_01") / "checkpoints" / "best.pth", weights_only=True)
    assert set(state["model_state_dict"]) == {"weight", "bias"}


def test_single_fold_run_matches_the_same_fold_in_a_full_run(tmp_path):
    full = ToyRunner(cfg=_config(tmp_path / "a")).run()
    alone = ToyRunner(cfg=_config(tmp_path / "b", folds={"n_splits": 3, "only": 1})).run()
    assert alone.exception is None
    assert not (tmp_path / "b" / "run" / "fold_00").exists()
    a = torch.load(full.stage_dir("fold_01") / "checkpoints" / "last.pth", weights_only=True)
    b = torch.load(alone.stage_dir("fold_01") / "checkpoints" / "last.pth", weights_only=True)
    for key in a["model_state_dict"]:
        assert torch.allclose(a["model_state_dict"][key], b["model_state_dict"][key])


def test_is_main_process():
    assert is_main_process(None)
    assert is_main_process(DeviceEngine("cpu"))  # rank -1, single process

    class Rank:
        def __init__(self, rank, first=0):
            self.rank, self.workers_global_rank = rank, first

    assert is_main_process(Rank(0)) and not is_main_process(Rank(1))
    assert not is_main_process(Rank(-1, first=2))  # launcher of a second node


def test_names_imported_from_base_stay_there():
    """Callbacks, subclasses and tests import these from ``fusion_runners.base``; the config checks
    and the resume logic live in modules of their own."""
    import fusion_runners.base as base
    from fusion_runners.resume import RUN_METADATA, ResumeMixin

    assert base.RUN_METADATA == RUN_METADATA == "run_metadata.json"
    assert issubclass(base.ConfigRunner, ResumeMixin)
    assert base.fold_stage_name(3) == "fold_03"
    assert base.is_main_process(None)


def test_config_from_omegaconf_keeps_interpolations(tmp_path):
    cfg = OmegaConf.create(_config(tmp_path))
    cfg.stage.batch_size = "${folds.n_splits}"
    runner = ToyRunner(cfg=cfg)
    assert runner.select("stage.batch_size") == 3
