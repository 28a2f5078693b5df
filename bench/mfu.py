"""Model FLOP utilisation: counted FLOP/s of a VAE training step / fp32 matmul FLOP/s."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.common import median, record
from fusion.losses.vae_elbo import elbo
from fusion.models.vae import MultimodalVAE

#: The paper's grid and channels (Geenjaar et al. 2021; conf/model/vae_paper.yaml).
PAPER = {"in_shape": (53, 63, 52), "channels": (64, 128, 256, 512), "head_channels": (32, 16), "latent_dim": 128}


def matmul_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
    """fp32 ``torch.mm`` of two ``n x n`` matrices: ``2 n^3`` FLOP, best of ``repeats``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_time(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2.0 * n**3 / best


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_flops_per_s(in_shape: Sequence[int], channels: Sequence[int], head_channels: Sequence[int],
                     latent_dim: int, n_volumes: int, steps: int, channels_last: bool = True) -> dict[str, float]:
    """Counted FLOP of one training step (forward + backward) and its measured speed.

    The FLOP are counted once under ``FlopCounterMode`` (convolutions, transposed convolutions and
    matrix products; the optimizer's element-wise update is not counted); the time is the median of
    ``steps`` uncounted steps after one warm-up step, Adam update included.
    """
    torch.manual_seed(0)
    model = MultimodalVAE(in_shape=in_shape, channels=channels, head_channels=head_channels,
                          latent_dim=latent_dim, channels_last=channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(n_volumes, 1, *in_shape) * 2 - 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)

    def step() -> None:
        recon, mu, logvar = model(x)
        loss = elbo(recon, x, mu, logvar)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    counter = FlopCounterMode(display=False)
    with counter:
        step()  # also the warm-up
    flops = float(counter.get_total_flops())
    seconds = median([_time(step) for _ in range(steps)])
    return {"flop_per_step": flops, "flop_per_volume": flops / n_volumes, "seconds_per_step": seconds,
            "flop_per_s": flops / seconds, "volumes": n_volumes}


def mfu(reduced_model: dict[str, Any], reduced_grid: Sequence[int], paper_volumes: int, paper_steps: int,
        reduced_volumes: int = 54, paper_grid: Sequence[int] = PAPER["in_shape"], log=print) -> dict[str, Any]:
    """MFU of the paper's model (top-level figures; on ``paper_grid``) and of the reduced config (``reduced``)."""
    peak_before = matmul_flops_per_s()
    paper = step_flops_per_s(n_volumes=paper_volumes, steps=paper_steps, **{**PAPER, "in_shape": tuple(paper_grid)})
    reduced = step_flops_per_s(in_shape=tuple(reduced_grid), channels=reduced_model["channels"],
                               head_channels=reduced_model["head_channels"], latent_dim=reduced_model["latent_dim"],
                               n_volumes=reduced_volumes, steps=3)
    peak_after = matmul_flops_per_s()
    peak = median([peak_before, peak_after])  # before and after: the machine is shared
    log(f"  mfu: matmul {peak / 1e9:.1f} GFLOP/s; paper step {paper['flop_per_s'] / 1e9:.1f} GFLOP/s "
        f"({paper['flop_per_volume'] / 1e9:.1f} GFLOP/volume); reduced {reduced['flop_per_s'] / 1e9:.1f} GFLOP/s")
    return record(paper["flop_per_s"], peak, numerator_label="paper-size step FLOP/s",
                  denominator_label="fp32 matmul FLOP/s", target=None, met=None,
                  note="reported, no target; FLOP counted by torch.utils.flop_counter (Adam not counted)",
                  paper={**paper, "grid": list(paper_grid)}, matmul_flop_per_s_runs=[peak_before, peak_after],
                  reduced={"numerator": reduced["flop_per_s"], "denominator": peak,
                           "ratio": reduced["flop_per_s"] / peak, **reduced,
                           "grid": list(reduced_grid)})
