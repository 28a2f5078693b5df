"""PreparedVolumes: items, subsets, RAM cache, float16 storage, torchio transforms, bad folders."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from fusion.data.dataset import PreparedVolumes
from fusion.data.testing import cached_prepared
from fusion.errors import ConfigError, InputError


def test_items_match_the_files() -> None:
    prepared = cached_prepared(24, True)
    data = PreparedVolumes(prepared)
    index = pd.read_csv(prepared / "index.csv", dtype={"subject_id": str})
    assert len(data) == 24 and data.n_modalities == 54 and data.shape == (14, 16, 13)
    assert data.subject_ids == index["subject_id"].tolist()
    np.testing.assert_array_equal(data.labels, index["label"].to_numpy())
    assert data.affine.shape == (4, 4) and data.meta["dtype"] == "float32"
    item = data[5]
    assert set(item) == {"volumes", "label", "index"}
    assert item["volumes"].dtype == torch.float32 and item["volumes"].shape == (54, 14, 16, 13)
    assert item["label"] == index["label"][5] and item["index"] == 5
    np.testing.assert_array_equal(item["volumes"].numpy(), np.load(prepared / index["path"][5]))
    assert data[-1]["index"] == 23
    with pytest.raises(IndexError):
        data[24]


def test_subset_cache_and_loader() -> None:
    prepared = cached_prepared(24, True)
    subset = PreparedVolumes(prepared, indices=[7, 2, 11], cache="ram")
    full = PreparedVolumes(prepared)
    assert len(subset) == 3 and subset.subject_ids == [full.subject_ids[i] for i in (7, 2, 11)]
    np.testing.assert_array_equal(subset.labels, full.labels[[7, 2, 11]])
    for j, i in enumerate((7, 2, 11)):
        assert subset[j]["index"] == i
        assert torch.equal(subset[j]["volumes"], full[i]["volumes"])
    # items are copies: changing one does not change the cache
    subset[0]["volumes"].zero_()
    assert torch.equal(subset[0]["volumes"], full[7]["volumes"])
    batch = next(iter(DataLoader(subset, batch_size=2)))
    assert batch["volumes"].shape == (2, 54, 14, 16, 13) and batch["label"].tolist() == full.labels[[7, 2]].tolist()
    with pytest.raises(InputError, match="outside 0..23"):
        PreparedVolumes(prepared, indices=[0, 24])
    with pytest.raises(ConfigError, match="cache"):
        PreparedVolumes(prepared, cache="gpu")


def test_float16_storage_returns_float32() -> None:
    half = PreparedVolumes(cached_prepared(24, True, dtype="float16"))
    full = PreparedVolumes(cached_prepared(24, True))
    item = half[3]["volumes"]
    assert item.dtype == torch.float32
    torch.testing.assert_close(item, full[3]["volumes"], atol=1e-3, rtol=1e-3)


def test_torchio_transform() -> None:
    import torchio as tio

    prepared = cached_prepared(24, True)
    plain = PreparedVolumes(prepared)[1]["volumes"]
    noisy = PreparedVolumes(prepared, transform=tio.RandomNoise(mean=0.0, std=(0.1, 0.1)))
    torch.manual_seed(0)
    out = noisy[1]["volumes"]
    assert out.dtype == torch.float32 and out.shape == plain.shape
    residual = out - plain
    assert 0.09 < residual.std().item() < 0.11 and abs(residual.mean().item()) < 0.01
    flipped = PreparedVolumes(prepared, transform=tio.Flip(axes=(0,)))[1]["volumes"]
    torch.testing.assert_close(flipped, torch.flip(plain, dims=(1,)))


def test_bad_prepared_folders(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        PreparedVolumes(tmp_path / "nowhere")
    shutil.copytree(cached_prepared(24, True), tmp_path / "p")
    (tmp_path / "p" / "index.csv").rename(tmp_path / "p" / "index.bak")
    with pytest.raises(InputError, match="no index.csv"):
        PreparedVolumes(tmp_path / "p")
    (tmp_path / "p" / "index.bak").rename(tmp_path / "p" / "index.csv")
    (tmp_path / "p" / "sub-0003.npy").unlink()
    with pytest.raises(InputError, match="sub-0003.npy"):
        PreparedVolumes(tmp_path / "p")
    np.save(tmp_path / "p" / "sub-0003.npy", np.zeros((53, 14, 16, 13), dtype=np.float32))
    with pytest.raises(InputError, match=r"sub-0003.*shape \(53, 14, 16, 13\); expected \(54, 14, 16, 13\)"):
        PreparedVolumes(tmp_path / "p")[2]
    (tmp_path / "p" / "meta.json").unlink()
    with pytest.raises(InputError, match="no meta.json"):
        PreparedVolumes(tmp_path / "p")
