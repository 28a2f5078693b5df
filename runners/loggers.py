"""Per-stage metric logs, one folder per fold: CSV files and TensorBoard event files."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any, TextIO

from catalyst.core import ILogger

TENSORBOARD_EPOCH_RUN = "epoch"  # event folder of Catalyst's per-epoch values (learning rate, momentum)


class StageCSVLogger(ILogger):
    """Epoch metrics of each loader to ``<logdir>/<stage>/<subdir>/<loader>.csv``.

    Catalyst's ``CSVLogger`` appends every stage to one ``<loader>.csv`` without a stage column;
    with one stage per fold, and folds possibly running as separate jobs into one log directory,
    each fold gets its own files instead. A re-run of a stage rewrites its files.

    Args:
        logdir: the run's folder.
        subdir: folder inside each stage folder.
    """

    def __init__(self, logdir: str | Path, subdir: str = "logs"):
        super().__init__(log_batch_metrics=False, log_epoch_metrics=True)
        self.logdir = Path(logdir)
        self.subdir = subdir
        self._files: dict[str, tuple[TextIO, list[str]]] = {}

    def log_metrics(
        self,
        metrics: dict[str, Any],
        scope: str | None = None,
        stage_key: str | None = None,
        stage_epoch_step: int = 0,
        **kwargs: Any,
    ) -> None:
        """Write one row per loader (``epoch`` then the metrics, sorted) at the end of an epoch."""
        if scope != "epoch":
            return
        for loader_key, values in metrics.items():
            if loader_key.startswith("_"):  # Catalyst's pure epoch metrics (lr, momentum)
                continue
            key = f"{stage_key}/{loader_key}"
            if key not in self._files:
                folder = self.logdir / str(stage_key) / self.subdir
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{loader_key}.csv"
                columns = sorted(values)
                kept: list[list[str]] = []
                if stage_epoch_step > 1 and path.is_file():  # a resumed stage: keep the epochs before it
                    with open(path, newline="") as old:
                        rows = list(csv.reader(old))
                    if rows and rows[0] == ["epoch", *columns]:
                        kept = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < stage_epoch_step]
                handle: TextIO = open(path, "w", newline="")
                writer = csv.writer(handle)
                writer.writerow(["epoch", *columns])
                writer.writerows(kept)
                self._files[key] = (handle, columns)
            handle, columns = self._files[key]
            csv.writer(handle).writerow([stage_epoch_step, *(values.get(c, "") for c in columns)])

    def flush_log(self) -> None:
        """Flush the open files."""
        for handle, _ in self._files.values():
            handle.flush()

    def close_log(self, scope: str | None = None) -> None:
        """Close the files at the end of a stage (and of the experiment)."""
        for handle, _ in self._files.values():
            handle.close()
        self._files = {}

    def __getstate__(self) -> dict[str, Any]:
        # DDP pickles loggers into each stage process; open files stay behind.
        state = self.__dict__.copy()
        state["_files"] = {}
        return state


class StageTensorboardLogger(ILogger):
    """TensorBoard event files per stage and loader: ``<logdir>/<stage>/<subdir>/<loader>/``.

    Catalyst's ``TensorboardLogger`` writes every stage into one folder per loader, with the
    step counted over the whole experiment, so the ten folds of a run become one long curve.
    Here each fold has its own event folders, the step is the fold's own epoch (1, 2, ...), and
    ``tensorboard --logdir <run folder>`` lists the runs ``fold_00/tensorboard/train``,
    ``fold_00/tensorboard/valid``, ... to compare folds and loaders side by side. Catalyst's
    per-epoch values that belong to no loader (learning rate, momentum) go to the ``epoch`` run.

    A resumed stage (first logged epoch > 1) purges the events from that epoch on, so a fold
    interrupted and continued shows each epoch once.

    Args:
        logdir: the run's folder.
        subdir: folder inside each stage folder.
        log_batch_metrics: also log every batch's metrics (tag ``batch/<metric>``, step = batch
            number within the fold's loader, counted over epochs).
    """

    def __init__(self, logdir: str | Path, subdir: str = "tensorboard", log_batch_metrics: bool = False):
        super().__init__(log_batch_metrics=bool(log_batch_metrics), log_epoch_metrics=True)
        self.logdir = Path(logdir)
        self.subdir = subdir
        self._writers: dict[tuple[str, str], Any] = {}

    def folder(self, stage_key: str, run: str) -> Path:
        """Event folder of one stage and loader (or the ``epoch`` run)."""
        return self.logdir / str(stage_key) / self.subdir / run

    def _writer(self, stage_key: str | None, run: str, first_epoch: int) -> Any:
        key = (str(stage_key), run)
        if key not in self._writers:
            from tensorboardX import SummaryWriter

            folder = self.folder(key[0], run)
            folder.mkdir(parents=True, exist_ok=True)
            # Batch steps are not epochs: purging by epoch would drop them, so only epoch logs purge.
            purge = first_epoch if first_epoch > 1 and not self.log_batch_metrics else None
            # tensorboardX names files by the second only: two writers of one folder within a
            # second (a quick resume) would share a file; the suffix keeps them apart, in order.
            suffix = f".{time.time_ns()}.{os.getpid()}"
            self._writers[key] = SummaryWriter(str(folder), purge_step=purge, filename_suffix=suffix)
        return self._writers[key]

    def log_metrics(
        self,
        metrics: dict[str, Any],
        scope: str | None = None,
        stage_key: str | None = None,
        stage_epoch_step: int = 0,
        loader_key: str | None = None,
        loader_batch_step: int = 0,
        loader_batch_len: int = 0,
        **kwargs: Any,
    ) -> None:
        """Loader metrics at the end of each loader (step = the fold's epoch), Catalyst's
        per-epoch values at the end of each epoch, and batch metrics when asked for."""
        if scope == "loader" and loader_key is not None:
            writer = self._writer(stage_key, loader_key, stage_epoch_step)
            for name, value in metrics.items():
                writer.add_scalar(name, float(value), stage_epoch_step)
        elif scope == "epoch":
            values = metrics.get("_epoch_", {})
            if values:
                writer = self._writer(stage_key, TENSORBOARD_EPOCH_RUN, stage_epoch_step)
                for name, value in values.items():
                    writer.add_scalar(name, float(value), stage_epoch_step)
        elif scope == "batch" and self.log_batch_metrics and loader_key is not None:
            step = max(stage_epoch_step - 1, 0) * loader_batch_len + loader_batch_step
            writer = self._writer(stage_key, loader_key, stage_epoch_step)
            for name, value in metrics.items():
                try:
                    writer.add_scalar(f"batch/{name}", float(value), step)
                except (TypeError, ValueError):  # a non-scalar batch entry
                    continue

    def flush_log(self) -> None:
        """Write pending events to disk."""
        for writer in self._writers.values():
            writer.flush()

    def close_log(self, scope: str | None = None) -> None:
        """Close the event files at the end of a stage (and of the experiment)."""
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def __getstate__(self) -> dict[str, Any]:
        # DDP pickles loggers into each stage process; open writers stay behind.
        state = self.__dict__.copy()
        state["_writers"] = {}
        return state
