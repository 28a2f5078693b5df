"""Distributed data parallel on the CPU (gloo): gradient averaging and the runner's shards.

One DDP step on a global batch must leave the same MultimodalVAE weights as one single-process
step on that whole batch. Catalyst's ``DistributedDataParallelEngine`` (``engine=ddp_cpu``) wraps
the model in ``torch.nn.parallel.DistributedDataParallel``, which *averages* gradients over the
ranks. The ELBO
(``fusion.losses.elbo``) is a *mean* over the volumes of a batch, so with equal shards the mean of
the ranks' means is the global mean and no rescaling is needed. A *sum*-reduced loss would come out
``world_size`` times too small under DDP and must be multiplied by ``world_size`` on each rank; the
test checks both, and that forgetting the factor is caught.

Shards that differ in size (``DistributedSampler`` pads the last one by repeating subjects) break the
mean identity slightly; the runner's shards are checked below.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from omegaconf import OmegaConf
from torch.utils.data import DistributedSampler

from fusion.losses import elbo
from fusion.models import MultimodalVAE

GRID = (6, 7, 5)
CHANNELS, HEAD, LATENT = (2, 4), (2,), 3
GLOBAL_BATCH = 8  # volumes; 4 per rank
WORLD_SIZE = 2
LR = 0.05
#: Loss variants run in one spawn: (name, reduction, multiply a sum-reduced loss by world_size).
VARIANTS = (("mean", "mean", False), ("sum_scaled", "sum", True), ("sum_unscaled", "sum", False))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model() -> MultimodalVAE:
    torch.manual_seed(11)
    return MultimodalVAE(GRID, CHANNELS, HEAD, LATENT)


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Volumes ``(B, 1, X, Y, Z)`` in [-1, 1] and the reparameterization noise ``(B, latent)``."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(GLOBAL_BATCH, 1, *GRID, generator=g) * 2 - 1
    eps = torch.randn(GLOBAL_BATCH, LATENT, generator=g)
    return x, eps


def _loss(model: torch.nn.Module, x: torch.Tensor, eps: torch.Tensor, reduction: str) -> torch.Tensor:
    """Negative ELBO of ``x`` with fixed noise ``eps``, through ``model``'s own ``forward``.

    The noise is fixed so that a sample gets the same ``z`` whichever process scores it (the model
    would otherwise draw it from each process's generator). ``model`` may be DDP-wrapped: the call
    must go through the wrapper for DDP to reduce the gradients.
    """
    inner = model.module if hasattr(model, "module") else model
    inner.reparameterize = lambda mu, logvar, generator=None: mu + torch.exp(0.5 * logvar) * eps
    try:
        recon, mu, logvar = model(x)
    finally:
        del inner.reparameterize
    loss = elbo(recon, x, mu, logvar)["loss"]  # mean over the batch
    return loss * x.shape[0] if reduction == "sum" else loss


def _full_precision_on(device: str) -> None:
    """No TF32 on CUDA: the comparisons below are float32 to 1e-5."""
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def _single_process_step(reduction: str, device: str = "cpu") -> dict[str, torch.Tensor]:
    _full_precision_on(device)
    model = _model().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    x, eps = (t.to(device) for t in _global_batch())
    _loss(model, x, eps, reduction).backward()
    optimizer.step()
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _ddp_worker(rank: int, world_size: int, port: int, out: str, backend: str = "gloo") -> None:
    """One rank: a gloo (CPU) or NCCL (one GPU per rank) process group, the DDP-wrapped model,
    this rank's shard, one SGD step.

    The same calls as Catalyst's ``DistributedDataParallelEngine`` on the CPU (``setup_process``:
    ``init_process_group``; ``init_components``: ``DistributedDataParallel(model)``;
    ``backward_loss`` / ``optimizer_step``), without importing Catalyst, which would double the time
    each spawned process needs to start. The engine itself runs end to end in test_vae_pipeline.py.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    device = f"cuda:{rank}" if backend == "nccl" else "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    _full_precision_on(device)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    x, eps = (t.to(device) for t in _global_batch())
    shard = list(DistributedSampler(range(GLOBAL_BATCH), num_replicas=world_size, rank=rank, shuffle=False))
    states = {}
    for name, reduction, scaled in VARIANTS:
        model = DistributedDataParallel(_model().to(device), device_ids=[rank] if backend == "nccl" else None)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        loss = _loss(model, x[shard], eps[shard], reduction)
        if scaled:
            loss = loss * world_size  # undo DDP's average of a summed loss
        loss.backward()
        optimizer.step()
        states[name] = {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}
    torch.save({"shard": shard, "states": states}, f"{out}.rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_states(tmp_path_factory) -> list[dict]:
    """Run the two gloo ranks once (spawned processes) and load what each rank saved."""
    out = tmp_path_factory.mktemp("ddp") / "step"
    mp.spawn(_ddp_worker, args=(WORLD_SIZE, _free_port(), str(out)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(f"{out}.rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


def _max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("name, reduction", [("mean", "mean"), ("sum_scaled", "sum")])
def test_one_ddp_step_equals_one_full_batch_step(ddp_states, name, reduction):
    shards = [set(s["shard"]) for s in ddp_states]
    assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(GLOBAL_BATCH))
    reference = _single_process_step(reduction)
    initial = _model().state_dict()
    assert _max_abs_diff(reference, initial) > 1e-3  # the step moved the weights
    for rank, saved in enumerate(ddp_states):
        assert _max_abs_diff(saved["states"][name], reference) < 1e-5, f"rank {rank}"
    # both ranks hold identical weights after the step
    assert _max_abs_diff(ddp_states[0]["states"][name], ddp_states[1]["states"][name]) == 0.0


@pytest.mark.slow
def test_summed_loss_without_world_size_factor_is_caught(ddp_states):
    """A sum-reduced loss under DDP's averaging gives half the gradient: the comparison fails."""
    reference = _single_process_step("sum")
    initial = _model().state_dict()
    unscaled = ddp_states[0]["states"]["sum_unscaled"]
    assert _max_abs_diff(unscaled, reference) > 1e-3
    # exactly half the update of the single-process step (SGD: the update is lr * gradient)
    for key in reference:
        torch.testing.assert_close(unscaled[key] - initial[key], (reference[key] - initial[key]) / 2,
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_one_nccl_ddp_step_on_two_gpus_equals_one_full_batch_step(tmp_path):
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    out = tmp_path / "step"
    mp.spawn(_ddp_worker, args=(WORLD_SIZE, _free_port(), str(out), "nccl"), nprocs=WORLD_SIZE, join=True)
    saved = [torch.load(f"{out}.rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    reference = _single_process_step("mean", device="cuda:0")
    for rank in range(WORLD_SIZE):
        assert _max_abs_diff(saved[rank]["states"]["mean"], reference) < 1e-5, f"rank {rank}"
        assert _max_abs_diff(saved[rank]["states"]["sum_scaled"], _single_process_step("sum", "cuda:0")) < 1e-5


# ---------------------------------------------------------------- the runner's DistributedSampler
class _Cohort(torch.utils.data.Dataset):
    """Subjects whose item is their own index, with alternating labels."""

    def __init__(self, n: int):
        self.labels = np.arange(n) % 2
        self.subject_ids = [f"sub-{i:03d}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"volumes": torch.zeros(1), "label": int(self.labels[i]), "index": i}


def _rank_runner(tmp_path: Path, dataset, stage_indices: dict, rank: int):
    from fusion_runners.vae import VAERunner

    cfg = OmegaConf.create({
        "logdir": str(tmp_path), "args": {"seed": 42}, "folds": {"n_splits": 3},
        "model": {"_target_": "fusion.models.vae.MultimodalVAE"},
        "stage": {"batch_size": 2, "loaders": ["train", "valid"]},
    })
    runner = VAERunner(cfg=cfg)
    runner._dataset = dataset
    runner.stage_indices = stage_indices
    # what DistributedDataParallelEngine reports inside rank `rank` of 2
    runner.engine = SimpleNamespace(is_ddp=True, world_size=WORLD_SIZE, rank=rank)
    return runner


def _shard(loader, epoch: int) -> list[int]:
    """Cohort indices one rank's loader yields in an epoch."""
    assert isinstance(loader.sampler, DistributedSampler)
    loader.sampler.set_epoch(epoch)  # what Catalyst does at every loader start
    return [int(i) for batch in loader for i in batch["index"]]


@pytest.mark.parametrize("n_subjects", [30, 31])
def test_runner_distributed_sampler_shards_each_fold(tmp_path, n_subjects):
    from fusion_callbacks.folds import FoldSplitCallback

    dataset = _Cohort(n_subjects)
    holder = SimpleNamespace(logdir=tmp_path, dataset=dataset, engine=None, stage_indices={})
    FoldSplitCallback(n_splits=3, val_fraction=0.2, seed=42).on_experiment_start(holder)
    # one runner per rank, as in the spawned DDP processes (each builds its own loaders)
    runners = [_rank_runner(tmp_path, dataset, holder.stage_indices, r) for r in range(WORLD_SIZE)]
    orders = []
    for stage, split in holder.stage_indices.items():
        loaders = [r.get_loaders(stage) for r in runners]
        for key in ("train", "valid"):
            expected = sorted(int(i) for i in split[key])
            for epoch in (0, 1):
                shards = [_shard(loaders[r][key], epoch) for r in range(WORLD_SIZE)]
                # equal shard sizes: DistributedSampler pads the last one by repeating subjects
                n = len(expected)
                assert [len(s) for s in shards] == [-(-n // WORLD_SIZE)] * WORLD_SIZE
                padding = (-n) % WORLD_SIZE
                together = shards[0] + shards[1]
                assert sorted(set(together)) == expected  # every subject of the fold, nothing else
                assert len(together) - len(set(together)) == padding  # repeats only as padding
                if padding == 0:
                    assert not set(shards[0]) & set(shards[1])
                if key == "train":
                    orders.append((stage, epoch, tuple(together)))
    # training order is reshuffled per epoch, and folds train on different subjects
    by_stage: dict[str, list[tuple]] = {}
    for stage, _, order in orders:
        by_stage.setdefault(stage, []).append(order)
    assert all(a != b for a, b in by_stage.values())
    stages = list(by_stage)
    assert {frozenset(by_stage[s][0]) for s in stages}.__len__() == len(stages)
