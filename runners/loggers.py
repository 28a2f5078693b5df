"""Per-stage CSV metric logs (one folder per fold)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, TextIO

from catalyst.core import ILogger


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
                handle = open(path, "w", newline="")
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
