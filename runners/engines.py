"""Catalyst engines: a choice of autocast dtype (bfloat16 or float16), and DDP set up from the
environment of a multi-node job.

Catalyst 21.12's ``AMPEngine`` always autocasts CUDA code to float16 with a gradient scaler. These
engines take the dtype from the config (``engine.dtype``), autocast on whatever device they run
(CUDA, or the CPU for bfloat16), and keep a ``torch.amp.GradScaler`` only for float16: bfloat16
has float32's range and trains unscaled. Catalyst runs ``handle_batch`` and the optimizer callback
inside :meth:`autocast`.

:func:`is_main_process` tells from an engine's rank which process writes the files a run shares
(run record, resume state, results): one per run, not one per DDP rank.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch
from catalyst.engines import DeviceEngine, DistributedDataParallelEngine

from fusion.devices import default_device
from fusion.distributed import node_layout
from fusion.precision import autocast, autocast_dtype, device_type, needs_grad_scaler


def is_main_process(engine: Any) -> bool:
    """Whether this process should write shared files (once per run, not once per DDP rank).

    True for a non-distributed run, for DDP rank 0, and for the launching process of a DDP run
    (rank -1) on the first node only.
    """
    if engine is None:
        return True
    rank = getattr(engine, "rank", -1)
    if rank == 0:
        return True
    return rank < 0 and getattr(engine, "workers_global_rank", 0) == 0


class _AutocastMixin:
    """Autocast, scaled backward and scaler checkpointing shared by the engines below.

    Catalyst's ``OptimizerCallback`` logs ``engine.scaler`` when the attribute exists, so a
    bfloat16 engine has no ``scaler`` attribute at all.
    """

    amp_dtype: torch.dtype

    def _setup_autocast(self, dtype: str, scaler_kwargs: dict[str, Any] | None) -> None:
        self.amp_dtype = autocast_dtype(dtype, field="engine.dtype")
        self.scaler_kwargs = dict(scaler_kwargs or {})
        if needs_grad_scaler(self.amp_dtype):
            self.scaler = torch.amp.GradScaler(self._autocast_device_type(), **self.scaler_kwargs)

    def _autocast_device_type(self) -> str:
        device = getattr(self, "_device", None)
        if device is None:  # a DDP engine before setup_process: CUDA when there is one
            return default_device()
        return device_type(device)

    def autocast(self, *args: Any, **kwargs: Any) -> AbstractContextManager:
        """``torch.autocast`` on this engine's device in ``amp_dtype``."""
        return autocast(self._autocast_device_type(), self.amp_dtype)

    def backward_loss(self, loss: torch.Tensor, model: Any, optimizer: Any) -> None:
        """``loss.backward()``, on the scaled loss for float16."""
        scaler = getattr(self, "scaler", None)
        (loss if scaler is None else scaler.scale(loss)).backward()

    def optimizer_step(self, loss: torch.Tensor, model: Any, optimizer: Any) -> None:
        """``optimizer.step()``; for float16 the scaler unscales, skips non-finite steps, adapts."""
        scaler = getattr(self, "scaler", None)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()

    def pack_checkpoint(self, model=None, criterion=None, optimizer=None, scheduler=None, **kwargs):
        """Catalyst's checkpoint, plus the scaler's state for float16."""
        scaler = getattr(self, "scaler", None)
        if scaler is not None:
            kwargs["scaler"] = scaler.state_dict()
        return super().pack_checkpoint(model=model, criterion=criterion, optimizer=optimizer,
                                       scheduler=scheduler, **kwargs)

    def unpack_checkpoint(self, checkpoint, model=None, criterion=None, optimizer=None, scheduler=None, **kwargs):
        """Catalyst's unpacking, plus the scaler's state when both sides have one."""
        super().unpack_checkpoint(checkpoint, model=model, criterion=criterion, optimizer=optimizer,
                                  scheduler=scheduler, **kwargs)
        scaler = getattr(self, "scaler", None)
        if scaler is not None and "scaler" in checkpoint:
            scaler.load_state_dict(checkpoint["scaler"])


class AutocastEngine(_AutocastMixin, DeviceEngine):
    """One device with mixed precision in ``dtype``.

    Args:
        device: ``"cuda:0"``, ``"cpu"``, ...; None picks CUDA when present.
        dtype: ``"bfloat16"`` or ``"float16"`` (float16 on the CPU is slow and rarely useful).
        scaler_kwargs: ``torch.amp.GradScaler`` arguments (float16 only), e.g. ``init_scale``.
    """

    def __init__(self, device: str | None = None, dtype: str = "float16",
                 scaler_kwargs: dict[str, Any] | None = None):
        super().__init__(device)
        self._setup_autocast(dtype, scaler_kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device='{self._device}', dtype={self.amp_dtype})"


class DistributedDataParallelAutocastEngine(_AutocastMixin, DistributedDataParallelEngine):
    """Catalyst's DDP engine with mixed precision in ``dtype``.

    Args:
        dtype: ``"bfloat16"`` or ``"float16"``.
        scaler_kwargs: ``torch.amp.GradScaler`` arguments (float16 only).
        **kwargs: ``DistributedDataParallelEngine`` arguments (``address``, ``port``,
            ``world_size``, ``workers_dist_rank``, ``num_node_workers``, ``process_group_kwargs``,
            ``sync_bn``, ``ddp_kwargs``).
    """

    def __init__(self, dtype: str = "float16", scaler_kwargs: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._setup_autocast(dtype, scaler_kwargs)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, dtype={self.amp_dtype})"


def ddp_engine_from_environment(
    backend: str = "nccl",
    num_node_workers: int | None = None,
    dtype: str | None = None,
    scaler_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> DistributedDataParallelEngine:
    """Catalyst's DDP engine for this node of a (multi-node) job, laid out from the environment.

    Address, port, node count and node rank come from ``MASTER_ADDR`` / ``MASTER_PORT`` /
    ``NNODES`` / ``NODE_RANK`` or from SLURM (see :func:`fusion.distributed.node_layout`); run one
    launcher per node (SLURM ``--ntasks-per-node=1``): the engine spawns the node's processes.

    Args:
        backend: ``torch.distributed`` backend (``nccl`` for GPUs, ``gloo`` for CPUs).
        num_node_workers: processes on this node; None: ``LOCAL_WORLD_SIZE``, ``SLURM_GPUS_ON_NODE``,
            else every visible GPU (1 without a GPU).
        dtype: None for float32, or ``"bfloat16"`` / ``"float16"`` for mixed precision.
        scaler_kwargs: ``torch.amp.GradScaler`` arguments (float16 only).
        **kwargs: further ``DistributedDataParallelEngine`` arguments (``sync_bn``, ``ddp_kwargs``).
    """
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    layout = node_layout(num_node_workers, default_workers=max(gpus, 1))
    settings = dict(address=layout.address, port=layout.port, world_size=layout.world_size,
                    workers_dist_rank=layout.first_rank, num_node_workers=layout.workers_per_node,
                    process_group_kwargs={"backend": backend}, **kwargs)
    if dtype is None:
        return DistributedDataParallelEngine(**settings)
    return DistributedDataParallelAutocastEngine(dtype=dtype, scaler_kwargs=scaler_kwargs, **settings)


__all__ = [
    "AutocastEngine",
    "DistributedDataParallelAutocastEngine",
    "ddp_engine_from_environment",
    "is_main_process",
]
