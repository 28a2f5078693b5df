"""Monitoring: TensorBoard event files per fold, the run's package list, no warnings on a normal run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pytest
import torch

from fusion_runners.loggers import TENSORBOARD_EPOCH_RUN, StageTensorboardLogger

ROOT = Path(__file__).resolve().parents[1]


def _scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of one tag, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]


def _epoch(logger: StageTensorboardLogger, stage: str, epoch: int, train: float, valid: float) -> None:
    for loader, value in (("train", train), ("valid", valid)):
        logger.log_metrics({"loss": value}, scope="loader", stage_key=stage, stage_epoch_step=epoch,
                           loader_key=loader)
    logger.log_metrics({"train": {"loss": train}, "_epoch_": {"lr": 0.1 / epoch}}, scope="epoch",
                       stage_key=stage, stage_epoch_step=epoch)
    logger.flush_log()


def test_tensorboard_logger_writes_one_event_folder_per_fold_and_loader(tmp_path):
    logger = StageTensorboardLogger(tmp_path)
    for stage, offset in (("fold_00", 0.0), ("fold_01", 10.0)):
        for epoch in (1, 2, 3):
            _epoch(logger, stage, epoch, train=offset + 1.0 / epoch, valid=offset + 2.0 / epoch)
        logger.close_log(scope="stage")
    for stage, offset in (("fold_00", 0.0), ("fold_01", 10.0)):
        base = tmp_path / stage / "tensorboard"
        assert sorted(p.name for p in base.iterdir()) == sorted(["train", "valid", TENSORBOARD_EPOCH_RUN])
        # each fold counts its own epochs from 1
        assert _scalars(base / "train", "loss") == [(e, round(offset + 1.0 / e, 6)) for e in (1, 2, 3)]
        assert _scalars(base / "valid", "loss") == [(e, round(offset + 2.0 / e, 6)) for e in (1, 2, 3)]
        assert _scalars(base / TENSORBOARD_EPOCH_RUN, "lr") == [(e, round(0.1 / e, 6)) for e in (1, 2, 3)]


def test_tensorboard_logger_resumed_fold_shows_each_epoch_once(tmp_path):
    first = StageTensorboardLogger(tmp_path)
    for epoch in (1, 2, 3):  # interrupted after epoch 3; the resume restarts at epoch 2
        _epoch(first, "fold_00", epoch, train=float(epoch), valid=float(epoch))
    first.close_log()
    resumed = StageTensorboardLogger(tmp_path)
    for epoch in (2, 3):
        _epoch(resumed, "fold_00", epoch, train=100.0 + epoch, valid=100.0 + epoch)
    resumed.close_log()
    assert _scalars(tmp_path / "fold_00" / "tensorboard" / "train", "loss") == [(1, 1.0), (2, 102.0), (3, 103.0)]


def test_tensorboard_logger_batch_metrics_only_when_asked(tmp_path):
    for flag in (False, True):
        logger = StageTensorboardLogger(tmp_path / str(flag), log_batch_metrics=flag)
        for epoch in (1, 2):
            for batch in (1, 2, 3):
                logger.log_metrics({"loss": torch.tensor(epoch * 10.0 + batch)}, scope="batch", stage_key="fold_00",
                                   stage_epoch_step=epoch, loader_key="train", loader_batch_step=batch,
                                   loader_batch_len=3)
            _epoch(logger, "fold_00", epoch, 1.0, 1.0)
        logger.close_log()
        folder = tmp_path / str(flag) / "fold_00" / "tensorboard" / "train"
        if flag:
            assert [s for s, _ in _scalars(folder, "batch/loss")] == [1, 2, 3, 4, 5, 6]
            assert _scalars(folder, "batch/loss")[3] == (4, 21.0)
        else:
            with pytest.raises(KeyError):
                _scalars(folder, "batch/loss")


def test_configs_turn_tensorboard_on_with_one_folder_per_fold():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for name in ("vae", "ccl", "vae_paper", "ccl_paper"):
            cfg = compose(name, overrides=["logdir=runs/x"])
            node = cfg.loggers.tensorboard
            assert node["_target_"] == "fusion_runners.loggers.StageTensorboardLogger", name
            assert node.logdir == "runs/x"


def test_package_list_is_the_running_interpreters():
    from fusion_runners.code_dump import list_packages

    text = list_packages()
    lines = text.splitlines()
    assert lines[0].startswith(f"# packages of {sys.executable} ")
    found = dict(line.split("==", 1) for line in lines[1:])
    for name in ("catalyst", "hydra-core", "tensorboard", "numpy", "torch"):
        assert found[name] == metadata.version(name), name
    assert [n.lower() for n in found] == sorted(n.lower() for n in found)


def test_catalyst_dump_environment_writes_our_package_list(tmp_path):
    import catalyst.utils.sys as environment

    from fusion_runners.code_dump import install, list_packages

    install()
    assert environment._list_pip_packages is list_packages
    environment.dump_environment(logdir=str(tmp_path))
    written = (tmp_path / "configs" / "pip-packages.txt").read_text()
    assert written.splitlines()[0] == list_packages().splitlines()[0]
    assert f"catalyst=={metadata.version('catalyst')}" in written.splitlines()


def test_ccl_runner_has_no_criterion_callback_warning():
    """Catalyst warns when a runner has a criterion but no CriterionCallback; the CCL runner
    computes its loss in handle_batch, so it drops that one warning and keeps the others."""
    from catalyst.core import IRunner

    from fusion_runners.ccl import CCLRunner

    def runner(cls):
        obj = cls.__new__(cls)
        obj.criterion, obj.optimizer, obj.scheduler, obj.callbacks = torch.nn.CrossEntropyLoss(), None, None, {}
        return obj

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        IRunner._check_callbacks(runner(CCLRunner))
    assert any("CriterionCallback" in str(w.message) for w in caught)  # Catalyst's own check does warn
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner(CCLRunner)._check_callbacks()
    assert not caught
    obj = runner(CCLRunner)
    obj.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj._check_callbacks()
    assert [str(w.message).split("``")[1] for w in caught] == ["IOptimizerCallback/OptimizerCallback"]


def test_make_silences_the_hydra_entry_point_warnings_only():
    """The Makefile's filter removes the two warnings of Catalyst's ``@hydra.main()`` (and the test
    sees them without it, so it would notice the filter going stale)."""
    make = (ROOT / "Makefile").read_text()
    found = re.search(r"ignore::UserWarning:[\w.]+", make)
    assert found, "the Makefile's HYDRA command has no warning filter"
    code = "import catalyst.dl.scripts.hydra_run"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "version_base" in plain.stderr
    env["PYTHONWARNINGS"] = found.group(0)
    filtered = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert filtered.returncode == 0 and "Warning" not in filtered.stderr, filtered.stderr
