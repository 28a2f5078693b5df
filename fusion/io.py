"""Atomic, safe writers and readers for result files.

A result file is written to a temporary file in the same folder and renamed into place, so a
killed run never leaves a half-written JSON/CSV/NPZ/NIfTI and never clobbers an earlier result
with a partial one. Readers refuse pickled payloads.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from fusion.errors import InputError

if TYPE_CHECKING:
    import matplotlib.figure
    import pandas

PathLike = str | os.PathLike


@contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Args:
        path: final destination.
        suffix: suffix the temporary file must carry (some writers infer the format from it,
            e.g. ``.nii.gz`` for nibabel, ``.npz`` for NumPy).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def write_json(path: PathLike, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON (NumPy scalars and arrays allowed).

    NaN is refused: a missing value must be written as ``null`` or ``"n/a"`` on purpose.
    """
    text = json.dumps(data, indent=2, default=_json_default, allow_nan=False)
    return write_text(path, text + "\n")


def read_json(path: PathLike) -> Any:
    """Read a JSON file."""
    with open(path) as f:
        return json.load(f)


def write_csv(path: PathLike, frame: pandas.DataFrame, **kwargs: Any) -> Path:
    """Atomically write a pandas DataFrame as CSV (no index unless asked)."""
    kwargs.setdefault("index", False)
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def save_npz(path: PathLike, **arrays: np.ndarray) -> Path:
    """Atomically write arrays to an uncompressed ``.npz``."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **cast(dict[str, Any], arrays))  # numpy's stub types **kwds like allow_pickle
    return Path(path)


def load_npz(path: PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` into memory; pickled (object) arrays are refused.

    Raises:
        InputError: an unreadable file, or one holding pickled Python objects (never unpickled).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except ValueError as err:  # numpy's refusal of object arrays, or not an npz at all
        raise InputError(f"{path} cannot be read safely: {err}; expected numeric arrays written by fusion") from err


def load_npy(path: PathLike, mmap_mode: Literal["r+", "r", "w+", "c"] | None = None) -> np.ndarray:
    """Read one ``.npy`` array; object arrays (pickled Python objects) are refused, never unpickled.

    Raises:
        InputError: naming the file.
    """
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise InputError(f"{path} cannot be read safely: {err}; expected a numeric .npy array") from err


def load_checkpoint(path: PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """Load a torch checkpoint with ``weights_only=True``: tensors and plain containers only.

    A file holding other pickled Python objects (an object whose unpickling would run code) is
    refused before anything in it executes.

    Raises:
        InputError: naming the file and why it was refused.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            f"checkpoint {path} holds pickled Python objects that safe loading (weights_only=True) refuses "
            f"({first}); it was not written by fusion, or it was altered: do not load it"
        ) from err
    except (OSError, RuntimeError, EOFError) as err:
        raise InputError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); "
                         "expected a torch checkpoint written by fusion (truncated file?)") from err


def save_npy(path: PathLike, array: np.ndarray) -> Path:
    """Atomically write one array as ``.npy`` (memory-mappable)."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)
    return Path(path)


def save_nifti(path: PathLike, data: np.ndarray, affine: np.ndarray) -> Path:
    """Atomically write a NIfTI image (``.nii`` or ``.nii.gz``, from the name)."""
    import nibabel as nib

    suffix = ".nii.gz" if str(path).endswith(".nii.gz") else ".nii"
    image = nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.asarray(affine, dtype=float))
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(image, tmp)
    return Path(path)


def save_figure(path: PathLike, figure: matplotlib.figure.Figure, dpi: int = 120) -> Path:
    """Atomically save a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return Path(path)
