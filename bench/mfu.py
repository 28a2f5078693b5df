"""Model FLOP utilisation: counted FLOP/s of a VAE training step / the CPU's fp32 peak (bench.peak).

The peak is the larger of the theoretical one (flags and clock) and the best measured matmul on at
most the step's threads; the entry names which one it used. A step above both raises the peak to
the step itself (ratio 1, said so), so the ratio cannot exceed 1.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.common import median, record
from bench.peak import cap_ratio, choose_peak, cpu_peak, measured_matmul_peak, usable_cores
from fusion.losses.vae_elbo import elbo
from fusion.models.vae import MultimodalVAE

#: The paper's grid and channels (Geenjaar et al. 2021; conf/model/vae_paper.yaml).
PAPER = {"in_shape": (53, 63, 52), "channels": (64, 128, 256, 512), "head_channels": (32, 16), "latent_dim": 128}


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_flops_per_s(in_shape: Sequence[int], channels: Sequence[int], head_channels: Sequence[int],
                     latent_dim: int, n_volumes: int, steps: int, channels_last: bool = True) -> dict[str, float]:
    """Counted FLOP of one training step (forward + backward) and its measured speed.

    The FLOP are counted once under ``FlopCounterMode`` (convolutions, transposed convolutions and
    matrix products; the optimizer's element-wise update is not counted); the time is the fastest of
    ``steps`` uncounted steps after one warm-up step, Adam update included (the fastest step
    gives ``flop_per_s``; the median is reported beside it).
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
    times = [_time(step) for _ in range(steps)]
    seconds = min(times)  # fastest step: the machine is shared, as for the best-of matmul peak
    return {"flop_per_step": flops, "flop_per_volume": flops / n_volumes, "seconds_per_step": seconds,
            "seconds_per_step_median": median(times), "seconds_per_step_runs": times,
            "flop_per_s": flops / seconds, "flop_per_s_median": flops / median(times), "volumes": n_volumes}


def mfu(reduced_model: dict[str, Any], reduced_grid: Sequence[int], paper_volumes: int, paper_steps: int,
        reduced_volumes: int = 54, paper_grid: Sequence[int] = PAPER["in_shape"], threads: int | None = None,
        log=print) -> dict[str, Any]:
    """MFU of the paper's model (top-level figures; on ``paper_grid``) and of the reduced config (``reduced``).

    Matmuls are timed before and after the steps (the machine is shared); the best run counts.
    """
    threads = int(threads or torch.get_num_threads())
    before = cpu_peak(threads)
    paper = step_flops_per_s(n_volumes=paper_volumes, steps=paper_steps, **{**PAPER, "in_shape": tuple(paper_grid)})
    reduced = step_flops_per_s(in_shape=tuple(reduced_grid), channels=reduced_model["channels"],
                               head_channels=reduced_model["head_channels"], latent_dim=reduced_model["latent_dim"],
                               n_volumes=reduced_volumes, steps=3)
    after = measured_matmul_peak(range(1, min(threads, usable_cores()) + 1))  # the counts that can set the peak
    runs = before["matmul_runs"] + after
    peak = choose_peak(before["theoretical"]["flop_per_s"], runs, threads)
    top, red = cap_ratio(paper["flop_per_s"], peak), cap_ratio(reduced["flop_per_s"], peak)
    log(f"  mfu: peak {peak['flop_per_s'] / 1e9:.1f} GFLOP/s on {threads} thread(s) ({peak['source']}); "
        f"paper step {paper['flop_per_s'] / 1e9:.1f} GFLOP/s ({paper['flop_per_volume'] / 1e9:.1f} GFLOP/volume); "
        f"reduced {reduced['flop_per_s'] / 1e9:.1f} GFLOP/s")
    theory = before["theoretical"]
    return record(paper["flop_per_s"], top["flop_per_s"], numerator_label="paper-size step FLOP/s",
                  denominator_label=f"fp32 peak FLOP/s ({top['source'].split(':')[0]})", target="<= 1",
                  met=top["ratio"] <= 1,
                  note=f"peak = {top['source']}; FLOP counted by torch.utils.flop_counter (Adam not counted); "
                       f"fastest of {paper_steps} step(s)",
                  peak_source=top["source"], peak_capped=top["capped"], threads=threads,
                  theoretical_flop_per_s=theory["flop_per_s"], theoretical=theory,
                  theoretical_all_cores_flop_per_s=before["theoretical_all_cores_flop_per_s"],
                  best_matmul_flop_per_s=max(r["flop_per_s"] for r in runs if r["threads"] <= threads),
                  matmul_runs=runs, ratio_median_step=paper["flop_per_s_median"] / top["flop_per_s"],
                  paper={**paper, "grid": list(paper_grid)},
                  reduced={"numerator": reduced["flop_per_s"], "denominator": red["flop_per_s"],
                           "ratio": red["ratio"], "peak_source": red["source"], **reduced,
                           "grid": list(reduced_grid)})
