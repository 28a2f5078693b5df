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


def bare_loop(cfg, prepared: Path, train: np.ndarray, epochs: int, seed: int) -> list[float]:
    """Seconds per training batch of each epoch of a plain PyTorch loop (same data, model, batch)."""
    dataset = Subset(PreparedVolumes(prepared, cache=cfg.data.cache), train.tolist())
    loader = DataLoader(dataset, batch_size=int(cfg.stage.batch_size), shuffle=True,
                        num_workers=int(cfg.stage.num_workers), generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    model = build_model(cfg, tuple(dataset.dataset.shape))
    model.train()
    optimizer = instantiate(cfg.stage.optimizer, params=model.parameters())
    per_batch = []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for batch in loader:
            train_step(model, optimizer, batch["volumes"], bool(cfg.stage.channels_last), float(cfg.loss.beta))
            n += 1
        per_batch.append((time.perf_counter() - start) / n)
    return per_batch


def runner_run(cfg) -> tuple[list[float], np.ndarray]:
    """Seconds per training batch of each epoch through VAERunner (Catalyst), and the train indices."""
    runner = TimedVAERunner(cfg)
    with contextlib.redirect_stdout(io.StringIO()):
        runner.run()
    train = np.asarray(runner.stage_indices["fold_00"]["train"])
    return [t["seconds"] / t["batches"] for t in runner.train_timings], train


def runner_overhead(workdir: Path, prepared: Path, sizes: Sizes, log=print) -> dict[str, Any]:
    """Time per training batch through VAERunner / in a bare loop, ``sizes.overhead_repeats`` interleaved
    repetitions (alternating which side goes first, so load drift on a shared machine cancels).

    Each side runs ``sizes.epochs`` epochs per repetition; the first epoch is warm-up. The figure
    is the median over repetitions and epochs of the seconds per batch (data loading included on
    both sides).
    """
    runner_times, bare_times, paired = [], [], []
    train = None
    for rep in range(sizes.overhead_repeats):
        n_runner, n_bare = len(runner_times), len(bare_times)
        cfg = compose_config(workdir / f"overhead_{rep}", prepared, sizes.epochs, sizes.batch_size)
        order = ("runner", "bare") if rep % 2 == 0 else ("bare", "runner")
        for side in order:
            if side == "runner":
                times, train = runner_run(cfg)
                runner_times += times[1:]
            else:
                if train is None:  # the split is the runner's: learn it first
                    _, train = runner_run(cfg)
                bare_times += bare_loop(cfg, prepared, train, sizes.epochs, seed=42)[1:]
        paired.append(median(runner_times[n_runner:]) / median(bare_times[n_bare:]))
        log(f"  runner_overhead rep {rep + 1}/{sizes.overhead_repeats}: runner {median(runner_times) * 1e3:.1f} ms/batch, "
            f"bare {median(bare_times) * 1e3:.1f} ms/batch")
    target = "<= 1.05"
    r, b = median(runner_times), median(bare_times)
    return record(r, b, numerator_label="VAERunner s/batch", denominator_label="bare loop s/batch",
                  target=target, met=check_target(r / b, target), runner_s_per_batch=runner_times,
                  bare_s_per_batch=bare_times, ratio_per_repetition=paired,
                  median_ratio_per_repetition=median(paired), batches_per_epoch=int(np.ceil(len(train) / sizes.batch_size)),
                  batch_subjects=sizes.batch_size)


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
