"""Feature sources for the streamed PCA: row-major data read in column chunks.

:func:`fusion.evaluate.pca.gram_matrices` and :class:`~fusion.evaluate.pca.GramPCA` never hold all
features at once; they read ``(n_samples, chunk)`` blocks from a :class:`ChunkSource`: an in-memory
array (:class:`ArraySource`), a callable (:class:`CallableSource`), or per-subject ``.npy`` files
read by byte ranges (:class:`NpyStackSource`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from fusion.errors import InputError

__all__ = ["ArraySource", "CallableSource", "ChunkSource", "NpyStackSource", "as_source"]


@runtime_checkable
class ChunkSource(Protocol):
    """Row-major feature data readable in column chunks.

    ``read(start, stop)`` returns the columns ``start:stop`` of every sample, shape
    ``(n_samples, stop - start)``; ``rows`` (optional elsewhere) restricts to a subset of samples.
    """

    n_samples: int
    n_features: int

    def read(self, start: int, stop: int, rows: np.ndarray | None = None) -> np.ndarray: ...


class ArraySource:
    """An in-memory (or memory-mapped) 2D array ``(n_samples, n_features)`` as a chunk source."""

    def __init__(self, X: np.ndarray):
        X = np.asarray(X) if not isinstance(X, np.memmap) else X
        if X.ndim != 2:
            raise InputError(f"X must be 2D (n_samples, n_features), got shape {X.shape}")
        self.X = X
        self.n_samples, self.n_features = X.shape

    def read(self, start: int, stop: int, rows: np.ndarray | None = None) -> np.ndarray:
        block = self.X[:, start:stop]
        return block if rows is None else block[rows]


class CallableSource:
    """Wrap ``fn(start, stop) -> (n_samples, stop - start)`` as a chunk source.

    Args:
        fn: returns the feature columns ``start:stop`` of every sample.
        n_samples: number of rows ``fn`` returns.
        n_features: total number of columns.
    """

    def __init__(self, fn: Callable[[int, int], np.ndarray], n_samples: int, n_features: int):
        self.fn = fn
        self.n_samples = int(n_samples)
        self.n_features = int(n_features)

    def read(self, start: int, stop: int, rows: np.ndarray | None = None) -> np.ndarray:
        block = np.asarray(self.fn(start, stop))
        if block.shape != (self.n_samples, stop - start):
            raise InputError(
                f"chunk source returned shape {block.shape} for columns {start}:{stop}, "
                f"expected {(self.n_samples, stop - start)}"
            )
        return block if rows is None else block[rows]


class NpyStackSource:
    """One ``.npy`` file per subject, flattened to one feature row per subject, read by byte ranges.

    Reading a column chunk reads only that slice of each file (positioned reads, no memory map),
    so a cohort on the paper grid is streamed without ever being loaded whole and without mapped
    pages accumulating in the process's resident memory.

    Args:
        paths: one ``.npy`` per subject, all with the same shape and dtype (e.g. ``(54, X, Y, Z)``
            float32), C order.
    """

    def __init__(self, paths: Sequence[str | os.PathLike]):
        if len(paths) == 0:
            raise InputError("NpyStackSource needs at least one subject file")
        self.paths = [os.fspath(p) for p in paths]
        shape, dtype, first_offset = _npy_layout(self.paths[0])
        self._offsets = [first_offset]
        for path in self.paths[1:]:
            item_shape, item_dtype, offset = _npy_layout(path)
            if (item_shape, item_dtype) != (shape, dtype):
                raise InputError(
                    f"subject array {path} is {item_dtype} {item_shape}, expected {dtype} {shape} like {self.paths[0]}"
                )
            self._offsets.append(offset)
        self.item_shape = tuple(shape)
        self.dtype = dtype
        self.n_samples = len(self.paths)
        self.n_features = int(np.prod(shape))

    def read(self, start: int, stop: int, rows: np.ndarray | None = None) -> np.ndarray:
        idx = range(self.n_samples) if rows is None else np.asarray(rows)
        itemsize = self.dtype.itemsize
        out = np.empty((len(idx), stop - start), dtype=np.float64)
        buffer = np.empty(stop - start, dtype=self.dtype)
        for out_row, i in enumerate(idx):
            with open(self.paths[i], "rb") as f:
                f.seek(self._offsets[i] + start * itemsize)
                if f.readinto(buffer.data.cast("B")) != buffer.nbytes:
                    raise InputError(f"subject array {self.paths[i]} ended before feature {stop}: truncated file?")
            out[out_row] = buffer
        return out


def _npy_layout(path: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a C-ordered ``.npy`` file, from its header."""
    from numpy.lib import format as npy_format

    try:
        with open(path, "rb") as f:
            version = npy_format.read_magic(f)
            reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, fortran, dtype = reader(f)
            offset = f.tell()
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the .npy header of subject array {path}: {err}") from err
    if fortran and len(shape) > 1:
        raise InputError(f"subject array {path} is stored in Fortran order; expected C order")
    if dtype.hasobject:
        raise InputError(f"subject array {path} holds Python objects; expected numbers")
    return tuple(shape), dtype, offset


def as_source(X: np.ndarray | ChunkSource) -> ChunkSource:
    """Return ``X`` unchanged if it is a chunk source, else wrap a 2D array."""
    if isinstance(X, ChunkSource):
        return X
    return ArraySource(X)
