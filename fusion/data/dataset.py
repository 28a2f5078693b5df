"""``PreparedVolumes``: a torch Dataset over a prepared folder (one ``(54, X, Y, Z)`` array per subject).

Each item is one subject: its 54 volumes in one read (the paper's batching: the loader's
``(k, 54, X, Y, Z)`` batch is reshaped to ``(k * 54, 1, X, Y, Z)`` for the model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from fusion import io
from fusion.errors import ConfigError, InputError

CACHE_MODES: tuple[str, ...] = ("none", "ram")


class PreparedVolumes(Dataset):
    """Subjects of a prepared folder, memory-mapped from disk or cached in RAM.

    Args:
        prepared_dir: folder written by :func:`fusion.data.prepare.prepare_cohort`.
        indices: positions in ``index.csv`` to expose, in this order (default: all).
        cache: ``"none"`` memory-maps each subject's ``.npy`` on access; ``"ram"`` reads the
            selected subjects once, here (in their stored dtype).
        transform: optional callable applied to each item's ``(54, X, Y, Z)`` float32 tensor,
            returning a tensor (or array) of the same kind, e.g. a torchio transform, which
            accepts a 4D ``(C, W, H, D)`` tensor::

                import torchio as tio
                PreparedVolumes(path, transform=tio.RandomNoise(std=0.05))

    Items are ``{"volumes": FloatTensor (54, X, Y, Z), "label": int, "index": int}`` where
    ``index`` is the subject's position in ``index.csv`` (stable across subsets).

    Attributes:
        indices: ``(n,)`` positions in ``index.csv`` of this dataset's items.
        labels: ``(n,)`` int64 labels of the items (0 control, 1 patient).
        subject_ids: ids of the items.
        affine: ``(4, 4)`` voxel-to-world of the grid.
        shape: spatial shape ``(X, Y, Z)``.
        n_modalities: number of volumes per subject (54).
        meta: the folder's ``meta.json``.
        index_table: the whole ``index.csv``.
    """

    def __init__(
        self,
        prepared_dir: str | Path,
        indices: Sequence[int] | np.ndarray | None = None,
        cache: str = "none",
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        if cache not in CACHE_MODES:
            raise ConfigError(f"cache: {cache!r} is not supported; expected one of {list(CACHE_MODES)}")
        if transform is not None and not callable(transform):
            raise ConfigError(f"transform must be callable, got {type(transform).__name__}")
        self.prepared_dir = Path(prepared_dir)
        self.cache = cache
        self.transform = transform
        self.meta = _read_meta(self.prepared_dir)
        self.index_table = _read_index(self.prepared_dir)
        n_all = len(self.index_table)
        if indices is None:
            self.indices = np.arange(n_all, dtype=np.int64)
        else:
            self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
            outside = self.indices[(self.indices < 0) | (self.indices >= n_all)]
            if outside.size:
                raise InputError(f"indices {outside[:5].tolist()} are outside 0..{n_all - 1} "
                                 f"(prepared folder {self.prepared_dir} has {n_all} subjects)")
        self.shape = tuple(int(s) for s in self.meta["shape"])
        self.n_modalities = int(self.meta["n_modalities"])
        self.affine = np.asarray(self.meta["affine"], dtype=np.float64)
        self.labels = self.index_table["label"].to_numpy(dtype=np.int64)[self.indices]
        self.subject_ids = [str(s) for s in self.index_table["subject_id"].to_numpy()[self.indices]]
        self._paths = [self.prepared_dir / str(p) for p in self.index_table["path"].to_numpy()[self.indices]]
        missing = [str(p) for p in self._paths if not p.is_file()]
        if missing:
            raise InputError(f"prepared folder {self.prepared_dir}: {len(missing)} subject file(s) listed in "
                             f"index.csv are missing, e.g. {missing[:3]}; re-run `fusion prepare`")
        self._ram: list[np.ndarray] | None = None
        if cache == "ram":
            self._ram = [self._read(j) for j in range(len(self.indices))]

    def __len__(self) -> int:
        return len(self.indices)

    def _read(self, item: int) -> np.ndarray:
        path = self._paths[item]
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise InputError(
                f"prepared file {path} (subject {self.subject_ids[item]!r}) cannot be read: {err}"
            ) from err
        expected = (self.n_modalities, *self.shape)
        if tuple(array.shape) != expected:
            raise InputError(f"prepared file {path} (subject {self.subject_ids[item]!r}) has shape "
                             f"{tuple(array.shape)}; expected {expected} (meta.json); re-run `fusion prepare`")
        return np.array(array) if self.cache == "ram" else array

    def __getitem__(self, item: int) -> dict[str, Any]:
        if not -len(self) <= item < len(self):
            raise IndexError(f"item {item} out of range for {len(self)} subjects")
        item = item % len(self)
        array = self._ram[item] if self._ram is not None else self._read(item)
        volumes = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
        if self.transform is not None:
            volumes = self.transform(volumes)
            volumes = torch.as_tensor(np.asarray(volumes) if not isinstance(volumes, torch.Tensor) else volumes)
            volumes = volumes.to(torch.float32)
        return {"volumes": volumes, "label": int(self.labels[item]), "index": int(self.indices[item])}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.prepared_dir)!r}, n={len(self)}, shape={self.shape}, "
                f"n_modalities={self.n_modalities}, cache={self.cache!r})")


def _read_meta(prepared_dir: Path) -> dict[str, Any]:
    if not prepared_dir.is_dir():
        raise InputError(
            f"prepared folder {prepared_dir} does not exist; run `fusion prepare --manifest M --out {prepared_dir}`"
        )
    path = prepared_dir / "meta.json"
    if not path.is_file():
        raise InputError(
            f"prepared folder {prepared_dir} has no meta.json; expected a folder written by `fusion prepare`"
        )
    try:
        meta = io.read_json(path)
    except ValueError as err:
        raise InputError(f"{path} is not valid JSON ({err}); re-run `fusion prepare`") from err
    for key in ("shape", "affine", "n_modalities"):
        if key not in meta:
            raise InputError(f"{path} lacks the key {key!r}; expected a meta.json written by `fusion prepare`")
    return meta


def _read_index(prepared_dir: Path) -> pd.DataFrame:
    path = prepared_dir / "index.csv"
    if not path.is_file():
        raise InputError(
            f"prepared folder {prepared_dir} has no index.csv; expected a folder written by `fusion prepare`"
        )
    table = pd.read_csv(path, dtype={"subject_id": str, "path": str})
    missing = [c for c in ("subject_id", "label", "path") if c not in table.columns]
    if missing:
        raise InputError(f"{path} lacks column(s) {missing}; expected subject_id,label,path")
    if table.empty:
        raise InputError(f"{path} lists no subjects")
    if not set(table["label"].unique().tolist()) <= {0, 1}:
        raise InputError(f"{path}: labels must be 0/1, found {sorted(table['label'].unique().tolist(), key=str)}")
    return table
