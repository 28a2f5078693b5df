"""A VAERunner that times its training loaders, and the benchmark configs that drive it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from catalyst.core import IRunner
from omegaconf import DictConfig

from fusion.io import write_json
from fusion_runners.vae import VAERunner

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

#: Callbacks of ``conf/vae.yaml`` that run after training (latents, SVM, aggregation, analysis) or draw a
#: progress bar, and the loggers: switched off so a benchmark run is training and validation only.
_OFF = ("callbacks.progress", "callbacks.latents", "callbacks.svm", "callbacks.results", "callbacks.analysis",
        "loggers.console", "loggers.csv", "loggers.tensorboard")


def timing_file(logdir: str | Path, rank: int) -> Path:
    """Where rank ``rank`` of a timed run writes its training-loader timings."""
    return Path(logdir) / "bench_timing" / f"rank_{max(rank, 0)}.json"


class TimedVAERunner(VAERunner):
    """:class:`fusion_runners.vae.VAERunner` plus wall-clock and CPU timing of every training loader.

    The clock starts after the runner's and every callback's ``on_loader_start`` are due (Catalyst
    calls the runner first on ``*_start`` events) and stops when every callback's
    ``on_loader_end`` has run (the runner is called last on ``*_end`` events), so the time covers
    data loading, ``handle_batch`` and every per-batch callback (backward and optimizer step).

    ``after_train_batch`` (a callable taking the runner) runs after each training batch with the
    clocks paused: the runner-overhead benchmark steps its bare PyTorch loop there, so the two
    sides alternate batch by batch and share the machine's load.

    Attributes:
        train_timings: one ``{"epoch", "seconds", "cpu_seconds", "batches", "samples",
            "batch_seconds", "batch_cpu_seconds"}`` per training loader (``cpu_seconds``: this process's CPU time;
            ``batch_seconds`` / ``batch_cpu_seconds``: wall / CPU time of each batch, from the end
            of the previous one), also
            written to :func:`timing_file` (one file per DDP rank).
        loader_timings: ``{"stage", "loader", "epoch", "seconds", "batches"}`` of every loader.
        epoch_timings: ``{"stage", "epoch", "seconds"}``: from the runner's ``on_epoch_start`` (before
            the callbacks') to its ``on_epoch_end`` (after theirs: checkpoints and resume state saved).
        stage_timings: ``{"stage", "seconds", "after_last_epoch_seconds"}``; the latter covers the
            stage-end callbacks (latent extraction, SVM).
    """

    def __init__(self, cfg: DictConfig | dict[str, Any]):
        super().__init__(cfg)
        self.train_timings: list[dict[str, Any]] = []
        self.loader_timings: list[dict[str, Any]] = []
        self.epoch_timings: list[dict[str, Any]] = []
        self.stage_timings: list[dict[str, Any]] = []
        self.after_train_batch: Callable[[IRunner], None] | None = None

    def on_stage_start(self, runner: IRunner) -> None:
        self._bench_stage_start = time.perf_counter()
        super().on_stage_start(runner)

    def on_epoch_start(self, runner: IRunner) -> None:
        self._bench_epoch_start = time.perf_counter()
        super().on_epoch_start(runner)

    def on_epoch_end(self, runner: IRunner) -> None:
        super().on_epoch_end(runner)
        self._bench_epoch_end = time.perf_counter()
        self.epoch_timings.append({"stage": self.stage_key, "epoch": int(self.stage_epoch_step),
                                   "seconds": self._bench_epoch_end - self._bench_epoch_start})

    def on_stage_end(self, runner: IRunner) -> None:
        super().on_stage_end(runner)
        end = time.perf_counter()
        last_epoch_end = getattr(self, "_bench_epoch_end", self._bench_stage_start)
        self.stage_timings.append({"stage": self.stage_key, "seconds": end - self._bench_stage_start,
                                   "after_last_epoch_seconds": end - max(last_epoch_end, self._bench_stage_start)})

    def on_loader_start(self, runner: IRunner) -> None:
        super().on_loader_start(runner)
        self._bench_batches = 0
        self._bench_samples = 0
        self._bench_wall = self._bench_cpu = 0.0
        self._bench_batch_seconds: list[float] = []
        self._bench_batch_cpu: list[float] = []
        self._bench_start = time.perf_counter()
        self._bench_cpu_start = time.process_time()
        self._bench_batch_start, self._bench_batch_cpu_start = self._bench_start, self._bench_cpu_start

    def on_batch_end(self, runner: IRunner) -> None:
        self._bench_batches += 1
        self._bench_samples += int(self.batch_size)
        super().on_batch_end(runner)
        if self.is_train_loader:
            now, cpu = time.perf_counter(), time.process_time()
            self._bench_batch_seconds.append(now - self._bench_batch_start)
            self._bench_batch_cpu.append(cpu - self._bench_batch_cpu_start)
            if self.after_train_batch is not None:
                self._bench_wall += now - self._bench_start
                self._bench_cpu += cpu - self._bench_cpu_start
                self.after_train_batch(self)
                cpu = self._bench_cpu_start = time.process_time()
                now = self._bench_start = time.perf_counter()
            self._bench_batch_start, self._bench_batch_cpu_start = now, cpu

    def on_loader_end(self, runner: IRunner) -> None:
        seconds = self._bench_wall + time.perf_counter() - self._bench_start
        cpu_seconds = self._bench_cpu + time.process_time() - self._bench_cpu_start
        self.loader_timings.append({"stage": self.stage_key, "loader": self.loader_key,
                                    "epoch": int(self.stage_epoch_step), "seconds": seconds,
                                    "batches": self._bench_batches})
        if self.is_train_loader:
            self.train_timings.append({"epoch": int(self.stage_epoch_step), "seconds": seconds,
                                       "cpu_seconds": cpu_seconds, "batches": self._bench_batches,
                                       "samples": self._bench_samples, "batch_seconds": self._bench_batch_seconds,
                                       "batch_cpu_seconds": self._bench_batch_cpu})
            write_json(timing_file(self.logdir, getattr(self.engine, "rank", -1)), self.train_timings)
        super().on_loader_end(runner)


def compose_config(logdir: Path, prepared: Path, epochs: int, batch_size: int, engine: str = "cpu",
                   extra: list[str] | None = None) -> DictConfig:
    """``conf/vae.yaml`` (reduced model) on a prepared cohort: one fold, training + validation only.

    Args:
        logdir: the run's output folder.
        prepared: prepared cohort folder.
        epochs: ``stage.num_epochs``.
        batch_size: subjects per training batch.
        engine: a ``conf/engine`` entry (``cpu``, ``ddp_cpu``).
        extra: further Hydra overrides.
    """
    from hydra import compose, initialize_config_dir

    overrides = [
        f"engine={engine}", f"logdir={logdir}", f"data.prepared_dir={prepared}",
        "runner._target_=bench.timed_runner.TimedVAERunner",
        "folds.n_splits=2", "folds.only=0", "folds.val_fraction=0.2",
        f"stage.num_epochs={epochs}", f"stage.batch_size={batch_size}", "stage.patience=100",
        *[f"{key}=null" for key in _OFF], *(extra or []),
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="vae", overrides=overrides)
    return fit_latent_to_grid(cfg, prepared)


def fit_latent_to_grid(cfg: DictConfig, prepared: Path) -> DictConfig:
    """Cap ``model.latent_dim`` at what the encoder of ``prepared``'s grid can give.

    The timing cohorts and the GPU check's dry run use tiny grids (bottleneck 1 x 1 x 1): the default
    latent size would not fit, and these runs time the runner and loaders, not the latent head.
    """
    from omegaconf import open_dict

    from fusion.io import read_json
    from fusion.models.vae import encoder_features

    grid = [int(s) for s in read_json(Path(prepared) / "meta.json")["shape"]]
    n_flat = encoder_features(grid, list(cfg.model.channels))
    if int(cfg.model.latent_dim) > n_flat:
        with open_dict(cfg):
            cfg.model.latent_dim = n_flat
    return cfg


def samples_per_second(timings: list[list[dict[str, float]]], skip: int = 1) -> float:
    """Training samples per second over all ranks, median over epochs after the first ``skip``.

    Args:
        timings: per rank, the ``train_timings`` of :class:`TimedVAERunner`.
        skip: warm-up epochs left out.
    """
    import statistics

    n_epochs = min(len(t) for t in timings)
    if n_epochs <= skip:
        raise ValueError(f"need more than {skip} timed epochs per rank, got {n_epochs}")
    rates = []
    for epoch in range(skip, n_epochs):
        samples = sum(t[epoch]["samples"] for t in timings)
        seconds = max(t[epoch]["seconds"] for t in timings)  # ranks step together: the slowest sets the pace
        rates.append(samples / seconds)
    return float(statistics.median(rates))
