"""Safe loading: a pickled payload in a checkpoint or an ``.npy``/``.npz`` is refused by every reader
before it can run, and ``.mat`` FC files go through ``scipy.io.loadmat`` only.

The payload is an object whose unpickling creates a marker file; each test checks the marker was
never created (nothing executed) and that the reader raised."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from catalyst.engines import DeviceEngine
from omegaconf import OmegaConf

from fusion import io
from fusion.data.ccl_manifest import read_fc
from fusion.data.dataset import PreparedVolumes
from fusion.data.testing import cached_prepared
from fusion.errors import InputError


class Payload:
    """Unpickling it calls ``open(marker, "w")``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


#: What a callback raises for a poisoned checkpoint: torch's refusal today, fusion.io.load_checkpoint's
#: InputError once the callbacks read checkpoints through it.
REFUSED = (pickle.UnpicklingError, InputError)
REFUSAL = r"Weights only load failed|holds pickled Python objects"


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "payload_ran"
    yield path
    assert not path.exists(), "a pickled payload was executed"


def _poisoned_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    model = torch.nn.Linear(2, 1)
    torch.save({"model_state_dict": model.state_dict(), "extra": Payload(marker)}, path)
    return path


def test_payload_really_runs_when_unpickled_unsafely(tmp_path: Path) -> None:
    """The payload is live: plain pickle executes it (so the refusals below are meaningful)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


def test_io_load_checkpoint_refuses_with_a_clear_error(tmp_path: Path, marker: Path) -> None:
    path = _poisoned_checkpoint(tmp_path / "best.pth", marker)
    with pytest.raises(InputError, match=r"checkpoint .*best\.pth holds pickled Python objects .*weights_only"):
        io.load_checkpoint(path)
    good = tmp_path / "good.pth"
    torch.save({"model_state_dict": torch.nn.Linear(2, 1).state_dict(), "epoch": 3}, good)
    assert io.load_checkpoint(good)["epoch"] == 3
    (tmp_path / "cut.pth").write_bytes(good.read_bytes()[:40])
    with pytest.raises(InputError, match=r"cut\.pth cannot be read"):
        io.load_checkpoint(tmp_path / "cut.pth")


def test_latent_extraction_refuses_a_poisoned_checkpoint(tmp_path: Path, marker: Path) -> None:
    from fusion_callbacks.latents import LatentExtractionCallback

    _poisoned_checkpoint(tmp_path / "fold_00" / "checkpoints" / "best.pth", marker)
    runner = SimpleNamespace(logdir=tmp_path, stage_key="fold_00", engine=DeviceEngine("cpu"),
                             model=torch.nn.Linear(2, 1), stage_indices={})
    with pytest.raises(REFUSED, match=REFUSAL):
        LatentExtractionCallback(logdir=tmp_path, progress=False).on_stage_end(runner)
    assert not (tmp_path / "fold_00" / "latents.npz").exists()


def test_ccl_evaluation_refuses_a_poisoned_checkpoint(tmp_path: Path, marker: Path) -> None:
    from fusion_callbacks.ccl_evaluation import CCLTestEvaluationCallback

    _poisoned_checkpoint(tmp_path / "fold_00" / "checkpoints" / "best.pth", marker)
    runner = SimpleNamespace(logdir=tmp_path, stage_key="fold_00", engine=DeviceEngine("cpu"),
                             model=torch.nn.Linear(2, 1), stage_dir=lambda: tmp_path / "fold_00")
    with pytest.raises(REFUSED, match=REFUSAL):
        CCLTestEvaluationCallback().on_stage_end(runner)
    assert not (tmp_path / "fold_00" / "result.json").exists()


def test_resume_state_with_a_payload_is_refused(tmp_path: Path, marker: Path) -> None:
    from fusion_runners.base import ConfigRunner

    class Runner(ConfigRunner):
        def handle_batch(self, batch):  # pragma: no cover - never trains here
            raise AssertionError

    cfg = OmegaConf.create({"logdir": str(tmp_path), "model": {"_target_": "torch.nn.Linear", "in_features": 2,
                                                               "out_features": 1}})
    runner = Runner(cfg=cfg)
    runner.stage_key = "train"
    _poisoned_checkpoint(runner.resume_path(), marker)
    with pytest.raises(InputError, match=r"resume state of train: checkpoint .*resume\.pth holds pickled Python "
                                         r"objects.*Delete .*args\.autoresume=off"):
        runner._restore_stage()


def test_prepared_volumes_refuse_an_object_array(tmp_path: Path, marker: Path) -> None:
    prepared = tmp_path / "prepared"
    shutil.copytree(cached_prepared(24, True), prepared)
    np.save(prepared / "sub-0002.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"sub-0002\.npy \(subject 'sub-0002'\) cannot be read"):
        PreparedVolumes(prepared, cache="ram")
    dataset = PreparedVolumes(prepared, cache="none")  # lazily: refused when the item is read
    with pytest.raises(InputError, match="sub-0002"):
        dataset[1]


def test_io_readers_refuse_object_arrays(tmp_path: Path, marker: Path) -> None:
    np.savez(tmp_path / "latents.npz", mu=np.zeros((2, 3)), ids=np.array([Payload(marker)], dtype=object))
    with pytest.raises(InputError, match=r"latents\.npz cannot be read safely: Object arrays cannot be loaded"):
        io.load_npz(tmp_path / "latents.npz")
    np.save(tmp_path / "x.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"x\.npy cannot be read safely"):
        io.load_npy(tmp_path / "x.npy")
    io.save_npy(tmp_path / "ok.npy", np.arange(3.0))
    np.testing.assert_array_equal(io.load_npy(tmp_path / "ok.npy"), np.arange(3.0))


def test_fc_npy_reader_refuses_an_object_array(tmp_path: Path, marker: Path) -> None:
    np.save(tmp_path / "s01.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"subject 's01', FC file .*s01\.npy: cannot read .*allow_pickle=False"):
        read_fc(tmp_path / "s01.npy", "s01", n_rois=4)


def test_mat_fc_goes_through_scipy_loadmat_only(tmp_path: Path, marker: Path, monkeypatch) -> None:
    import scipy.io

    fc = np.eye(4, dtype=np.float64) + 0.1
    fc = (fc + fc.T) / 2
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = "text", np.arange(3)
    scipy.io.savemat(tmp_path / "s01.mat", {"fc": fc, "notes": cell, "info": {"site": "A"}})

    calls = []
    real_loadmat = scipy.io.loadmat
    monkeypatch.setattr(scipy.io, "loadmat", lambda *a, **k: calls.append(a) or real_loadmat(*a, **k))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load used for a .mat file"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle used for a .mat file"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle used for a .mat file"))
    out = read_fc(tmp_path / "s01.mat", "s01", n_rois=4)
    assert len(calls) == 1
    np.testing.assert_allclose(out, fc.astype(np.float32))  # the one 2D numeric variable; cell/struct ignored

    # a pickle renamed to .mat is not a MATLAB file: refused by loadmat, nothing unpickled
    (tmp_path / "s02.mat").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(InputError, match=r"subject 's02', FC file .*s02\.mat: cannot read"):
        read_fc(tmp_path / "s02.mat", "s02", n_rois=4)
