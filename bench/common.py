"""Shared pieces of the benchmarks: result records, timing, the benchmark cohort."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Bytes per GiB.
GIB = float(2**30)


@dataclass(frozen=True)
class Sizes:
    """Every size a benchmark uses; ``quick()`` shrinks them so the whole suite runs in < 60 s.

    Args:
        data_size, data_subjects: grid (``"small"`` 27x32x26, the reduced config's, or ``"tiny"``
            14x16x13) and subjects of the cohort for the data-path, loader and reduced-MFU figures.
        train_size, train_subjects: the same for the cohort of the timed training runs (runner
            overhead, DDP), kept tiny so that per-batch overheads are not drowned in compute.
        epochs: training epochs per timed run (the first one is warm-up and not counted).
        repeats: interleaved repetitions of each side of a timed comparison (median taken).
        batch_size: subjects per training batch (x 54 volumes).
        paper_grid: grid of the paper-channel model in the MFU figure (the paper's 53x63x52; smaller
            with ``--quick``).
        paper_volumes: volumes per training step of the paper-size model (MFU).
        paper_steps: timed training steps of the paper-size model (after one warm-up step).
        pca_subjects: subjects of the PCA memory benchmark (paper grid, 54 x 173,628 features).
        pca_dtype: stored dtype of its per-subject files.
        ddp_epochs: epochs of each DDP / single-process run (the first is warm-up).
        overhead_repeats: runs of the runner-overhead figure (runner and bare loop in lockstep).
        overhead_epochs: epochs of each of those runs (the first is warm-up).
        ddp_pairs: interleaved (DDP, single-process) pairs of runs; each run is a child process
            whose start-up (imports, process group) is not timed but costs wall time.
    """

    data_size: str = "small"
    data_subjects: int = 10
    train_size: str = "tiny"
    train_subjects: int = 16
    epochs: int = 3
    repeats: int = 3
    batch_size: int = 1
    paper_grid: tuple[int, int, int] = (53, 63, 52)
    paper_volumes: int = 2
    paper_steps: int = 2
    pca_subjects: int = 300
    pca_dtype: str = "float16"
    ddp_epochs: int = 3
    ddp_pairs: int = 1
    overhead_repeats: int = 2
    overhead_epochs: int = 11

    @classmethod
    def quick(cls) -> Sizes:
        return cls(data_size="tiny", data_subjects=8, train_size="tiny", train_subjects=8, epochs=2, repeats=2,
                   paper_grid=(14, 16, 13), paper_volumes=1, paper_steps=1, pca_subjects=6, ddp_epochs=2,
                   overhead_repeats=1, overhead_epochs=3)


def record(numerator: float, denominator: float, *, numerator_label: str, denominator_label: str,
           target: str | None, met: bool | None, note: str = "", **details: Any) -> dict[str, Any]:
    """One benchmark's entry of ``results.json``: both measured values, their ratio, the target.

    Args:
        numerator, denominator: the two values measured side by side (units in the labels).
        target: e.g. ``"<= 1.05"``; None when the figure is reported only.
        met: whether the ratio meets the target (None when there is none).
        details: further measured values (plain numbers, strings or dicts of them).
    """
    numerator, denominator = float(numerator), float(denominator)
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        raise ValueError(f"benchmark values must be finite with a non-zero denominator, got "
                         f"{numerator} / {denominator} ({numerator_label} / {denominator_label})")
    return {
        "numerator": numerator,
        "numerator_label": numerator_label,
        "denominator": denominator,
        "denominator_label": denominator_label,
        "ratio": numerator / denominator,
        "target": target,
        "met": met,
        "note": note,
        "details": details,
    }


def check_target(ratio: float, target: str) -> bool:
    """Whether ``ratio`` meets a target written ``"<= x"`` or ``">= x"``."""
    op, value = target.split()
    return ratio <= float(value) if op == "<=" else ratio >= float(value)


def timed(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def make_cohort(root: Path, size: str, n_subjects: int) -> tuple[Path, Path]:
    """The embedded synthetic VAE cohort (gzipped NIfTI) and its prepared ``.npy`` folder.

    Returns:
        ``(manifest.csv, prepared folder)`` under ``root``.
    """
    from fusion.data.prepare import prepare_cohort
    from fusion.data.synthetic_volumes import make_vae_cohort

    manifest = make_vae_cohort(root / "cohort", size=size, n_subjects=n_subjects, progress=False)
    prepare_cohort(manifest, root / "prepared", progress=False)
    return manifest, root / "prepared"
