"""Runner overhead and training consumption: VAERunner against a bare PyTorch loop."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Subset

from bench.common import Sizes, check_target, median, record
from bench.timed_runner import TimedVAERunner, compose_config
from fusion.data.dataset import PreparedVolumes
from fusion.losses.vae_elbo import elbo


def build_model(cfg, grid: tuple[int, int, int]) -> torch.nn.Module:
    """The config's VAE on ``grid``, channels-last when ``stage.channels_last`` says so (as the runner)."""
    model = instantiate(cfg.model, in_shape=list(grid))
    if cfg.stage.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, volumes: torch.Tensor,
               channels_last: bool, beta: float = 1.0) -> float:
    """One step on a batch ``(k, 54, X, Y, Z)``: what VAERunner + OptimizerCallback do, by hand."""
    x = volumes.reshape(-1, 1, *volumes.shape[2:])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    recon, mu, logvar = model(x)
    loss = elbo(recon, x, mu, logvar, beta=beta)["loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _bare_setup(cfg, prepared: Path, train: np.ndarray, seed: int):
    """Loader, model and optimizer of the bare loop: the runner's data, model config and batch size."""
    dataset = Subset(PreparedVolumes(prepared, cache=cfg.data.cache), np.asarray(train).tolist())
    loader = DataLoader(dataset, batch_size=int(cfg.stage.batch_size), shuffle=True,
                        num_workers=int(cfg.stage.num_workers), generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    model = build_model(cfg, tuple(dataset.dataset.shape))
    model.train()
    optimizer = instantiate(cfg.stage.optimizer, params=model.parameters())
    return loader, model, optimizer


def bare_loop(cfg, prepared: Path, train: np.ndarray, epochs: int, seed: int) -> list[float]:
    """Seconds per training batch of each epoch of a plain PyTorch loop (same data, model, batch)."""
    loader, model, optimizer = _bare_setup(cfg, prepared, train, seed)
    per_batch = []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for batch in loader:
            train_step(model, optimizer, batch["volumes"], bool(cfg.stage.channels_last), float(cfg.loss.beta))
            n += 1
        per_batch.append((time.perf_counter() - start) / n)
    return per_batch


class LockstepBareLoop:
    """A plain PyTorch loop advanced one batch per call, run between the runner's training batches.

    Called by :class:`bench.timed_runner.TimedVAERunner` (``after_train_batch``) with the runner's
    clocks paused; built on the first call from the runner's own training subjects. Each call times
    fetching the next batch (a new pass over the loader when one ends, as a new epoch) and one
    training step, in wall and CPU seconds, per pass.

    Attributes:
        passes: one ``{"seconds", "cpu_seconds", "batches", "batch_seconds", "batch_cpu_seconds"}`` per
            pass over the loader.
    """

    def __init__(self, cfg, prepared: Path, seed: int = 42):
        self.cfg, self.prepared, self.seed = cfg, prepared, seed
        self.passes: list[dict[str, float]] = []
        self._setup = None
        self._iterator = None
        self._left = 0

    def __call__(self, runner) -> None:
        if self._setup is None:  # untimed: the runner's split exists once its first batch ran
            train = runner.stage_indices[runner.stage_key]["train"]
            self._setup = _bare_setup(self.cfg, self.prepared, train, self.seed)
        loader, model, optimizer = self._setup
        wall, cpu = time.perf_counter(), time.process_time()
        if self._left == 0:
            self._iterator, self._left = iter(loader), len(loader)
            self.passes.append({"seconds": 0.0, "cpu_seconds": 0.0, "batches": 0, "batch_seconds": [],
                                "batch_cpu_seconds": []})
        batch = next(self._iterator)
        train_step(model, optimizer, batch["volumes"], bool(self.cfg.stage.channels_last), float(self.cfg.loss.beta))
        self._left -= 1
        current = self.passes[-1]
        wall = time.perf_counter() - wall
        current["seconds"] += wall
        current["batch_seconds"].append(wall)
        cpu = time.process_time() - cpu
        current["cpu_seconds"] += cpu
        current["batch_cpu_seconds"].append(cpu)
        current["batches"] += 1


def runner_run(cfg, after_train_batch=None) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Training-loader timings of a VAERunner (Catalyst) run, and its training indices.

    Args:
        after_train_batch: called after each training batch, outside the runner's clocks.
    """
    runner = TimedVAERunner(cfg)
    runner.after_train_batch = after_train_batch
    with contextlib.redirect_stdout(io.StringIO()):
        runner.run()
    train = np.asarray(runner.stage_indices["fold_00"]["train"])
    return runner.train_timings, train


def spread(values: list[float]) -> dict[str, float]:
    """min, quartiles, max and count of ``values`` (numpy's linear quantiles)."""
    q = np.quantile(np.asarray(values, dtype=float), [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"min": float(q[0]), "q1": float(q[1]), "median": float(q[2]), "q3": float(q[3]), "max": float(q[4]),
            "iqr": float(q[3] - q[1]), "n": len(values)}


def median_ci(values: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of the median of ``values``."""
    rng = np.random.default_rng(seed)
    data = np.asarray(values, dtype=float)
    medians = np.median(rng.choice(data, size=(n_boot, len(data)), replace=True), axis=1)
    low, high = np.quantile(medians, [0.025, 0.975])
    return float(low), float(high)


def runner_overhead(workdir: Path, prepared: Path, sizes: Sizes, log=print) -> dict[str, Any]:
    """CPU seconds per training batch through VAERunner / in a bare PyTorch loop, run in lockstep.

    The two sides alternate batch by batch in one process (:class:`LockstepBareLoop` steps after
    each of the runner's batches, outside its clocks), so load on a shared machine falls on both
    alike. Times are this process's CPU time (the measure of work; wall time, which also counts
    time spent descheduled by other processes, is reported beside it). Each of
    ``sizes.overhead_repeats`` runs trains ``sizes.overhead_epochs`` epochs; the first epoch of
    each is warm-up.

    Figures: the pooled ratio (all timed batches, sum / sum: every cost counts, the first batch
    of an epoch included) and the median over the repetitions, one per batch pair (runner batch
    i / the bare batch right after it), with its spread (quartiles, range) and a 95% bootstrap
    interval; per-epoch ratios are reported too. The target must hold for both figures.
    """
    epochs = sizes.overhead_epochs
    pair_ratios, epoch_ratios, wall_pair_ratios, wall_epoch_ratios = [], [], [], []
    runner_cpu = bare_cpu = runner_wall = bare_wall = 0.0
    batches = 0
    for rep in range(sizes.overhead_repeats):
        # 4 folds: ~60% of the subjects train (2 folds: ~40%), so more batches per epoch
        cfg = compose_config(workdir / f"overhead_{rep}", prepared, epochs, sizes.batch_size,
                             extra=["folds.n_splits=4"])
        bare = LockstepBareLoop(cfg, prepared, seed=42 + rep)
        timings, train = runner_run(cfg, after_train_batch=bare)
        if len(bare.passes) != len(timings) or any(p["batches"] != t["batches"] for p, t in zip(bare.passes, timings)):
            raise RuntimeError(f"lockstep lost: runner batches {[t['batches'] for t in timings]}, "
                               f"bare {[p['batches'] for p in bare.passes]}")
        for t, b in list(zip(timings, bare.passes))[1:]:
            pair_ratios += [r / q for r, q in zip(t["batch_cpu_seconds"], b["batch_cpu_seconds"])]
            wall_pair_ratios += [r / q for r, q in zip(t["batch_seconds"], b["batch_seconds"])]
            epoch_ratios.append(t["cpu_seconds"] / b["cpu_seconds"])
            wall_epoch_ratios.append(t["seconds"] / b["seconds"])
            runner_cpu += t["cpu_seconds"]
            bare_cpu += b["cpu_seconds"]
            runner_wall += t["seconds"]
            bare_wall += b["seconds"]
            batches += t["batches"]
        log(f"  runner_overhead run {rep + 1}/{sizes.overhead_repeats}: CPU ratio per epoch "
            f"{' '.join(f'{r:.3f}' for r in epoch_ratios[-(epochs - 1):])}")
    target = "<= 1.02"
    pairs = spread(pair_ratios)
    ci = median_ci(pair_ratios)
    pooled = runner_cpu / bare_cpu
    log(f"  runner_overhead: pooled {pooled:.4f}, median of {pairs['n']} batch pairs {pairs['median']:.4f} "
        f"(IQR {pairs['q1']:.3f}-{pairs['q3']:.3f}, 95% CI {ci[0]:.4f}-{ci[1]:.4f}); "
        f"wall pooled {runner_wall / bare_wall:.4f}")
    return record(runner_cpu / batches, bare_cpu / batches, numerator_label="VAERunner CPU s/batch",
                  denominator_label="bare loop CPU s/batch", target=target,
                  met=check_target(pooled, target) and check_target(pairs["median"], target),
                  note="lockstep (runner and bare loop alternate batch by batch in one process), process CPU "
                       "time; target on this pooled ratio and on the median of per-batch-pair ratios",
                  median_ratio=pairs["median"], ratio_spread=pairs, median_ratio_ci95=list(ci),
                  ci_width_below_margin=bool(ci[1] - ci[0] < 1.02 - 1.0), ci_below_target=bool(ci[1] <= 1.02),
                  ratio_per_pair=pair_ratios, ratio_per_epoch=epoch_ratios, epoch_ratio_spread=spread(epoch_ratios),
                  wall_ratio=runner_wall / bare_wall, wall_median_ratio=spread(wall_pair_ratios)["median"],
                  wall_ratio_spread=spread(wall_pair_ratios), wall_ratio_per_epoch=wall_epoch_ratios,
                  runner_wall_s_per_batch=runner_wall / batches, bare_wall_s_per_batch=bare_wall / batches,
                  timed_batches_per_side=batches, batches_per_epoch=int(np.ceil(len(train) / sizes.batch_size)),
                  batch_subjects=sizes.batch_size, runs=sizes.overhead_repeats, epochs_per_run=epochs)


def training_consumption(cfg, prepared: Path, sizes: Sizes, n_steps: int) -> float:
    """Subjects per second consumed by fwd + bwd + step at the reduced config (batches preloaded)."""
    dataset = PreparedVolumes(prepared, cache="ram")
    b = sizes.batch_size
    batch = torch.stack([dataset[i]["volumes"] for i in range(b)])
    torch.manual_seed(0)
    model = build_model(cfg, tuple(dataset.shape))
    optimizer = instantiate(cfg.stage.optimizer, params=model.parameters())
    channels_last = bool(cfg.stage.channels_last)
    train_step(model, optimizer, batch, channels_last)  # warm-up
    times = []
    for _ in range(n_steps):
        start = time.perf_counter()
        train_step(model, optimizer, batch, channels_last)
        times.append(time.perf_counter() - start)
    return b / median(times)
