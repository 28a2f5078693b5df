"""gloo DDP with 2 processes / 1 process: training samples per second on the same small job.

Each side is a child process (``python -m bench.ddp --engine cpu|ddp_cpu ...``) running the
:class:`bench.timed_runner.TimedVAERunner` through Catalyst's engine from ``conf/engine``. The headline
ratio gives the single process the same intra-op threads as each DDP rank (``threads``), so DDP has
twice the cores; a second single-process run with ``2 * threads`` threads compares at equal cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import Sizes, check_target, median, record


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(logdir: Path, prepared: Path, engine: str, epochs: int, batch_size: int, threads: int) -> list[list[dict]]:
    """Train in a child process; return the per-rank training timings it wrote."""
    from bench.timed_runner import timing_file
    from fusion.io import read_json

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "bench.ddp", "--engine", engine, "--logdir", str(logdir), "--prepared", str(prepared),
           "--epochs", str(epochs), "--batch-size", str(batch_size)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} training job failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    n_ranks = 2 if engine == "ddp_cpu" else 1
    return [read_json(timing_file(logdir, rank)) for rank in range(n_ranks)]


def ddp2_vs_1(workdir: Path, prepared: Path, sizes: Sizes, threads: int = 1, log=print) -> dict[str, Any]:
    """Samples/s of a 2-process gloo DDP run / a 1-process run, ``sizes.ddp_pairs`` interleaved rounds
    of child processes (median over rounds).

    Two denominators, measured in the same rounds:

    - the headline ratio (target >= 1): 1 process with ``threads`` threads, the same as each DDP
      rank, so DDP has twice the cores: the data-parallel speed-up;
    - ``details.same_threads``: 1 process with ``2 * threads`` threads, the same cores in total:
      whether two ranks use the cores better than intra-op threads do.

    On a machine with 2 cores shared by other work, two ranks do not get two free cores, and every
    step waits for the slower rank (gradient all-reduce): both ratios fall below 1 there. The load
    average is recorded before and after.
    """
    from bench.timed_runner import samples_per_second

    sides = {"ddp_cpu": (("ddp_cpu", threads), []), "cpu": (("cpu", threads), []),
             "cpu_2t": (("cpu", 2 * threads), [])}
    load_before = list(os.getloadavg())
    for rep in range(sizes.ddp_pairs):
        order = ("ddp_cpu", "cpu", "cpu_2t") if rep % 2 == 0 else ("cpu_2t", "cpu", "ddp_cpu")
        for side in order:
            (engine, n_threads), rates = sides[side]
            timings = run_job(workdir / f"ddp_{rep}_{side}", prepared, engine, sizes.ddp_epochs, sizes.batch_size,
                              threads=n_threads)
            rates.append(samples_per_second(timings))
    load_after = list(os.getloadavg())
    target = ">= 1"
    ddp, one, one_2t = (median(sides[k][1]) for k in ("ddp_cpu", "cpu", "cpu_2t"))
    log(f"  ddp2_vs_1: 2 processes x {threads} thread(s) {ddp:.2f} subj/s, 1 process x {threads} {one:.2f} subj/s, "
        f"1 process x {2 * threads} {one_2t:.2f} subj/s (load {load_before[0]:.1f} -> {load_after[0]:.1f}, "
        f"{os.cpu_count()} cpus)")
    return record(ddp, one, numerator_label=f"DDP 2x{threads} thr (gloo) subj/s",
                  denominator_label=f"1 proc x {threads} thr subj/s",
                  target=target, met=check_target(ddp / one, target),
                  note=(f"same per-process batch and {threads} thread(s) per process; first epoch is warm-up; "
                        f"{os.cpu_count()} cpus, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"),
                  ddp_runs=sides["ddp_cpu"][1], single_runs=sides["cpu"][1], epochs=sizes.ddp_epochs,
                  same_threads={"numerator": ddp, "denominator": one_2t, "ratio": ddp / one_2t,
                                "threads": 2 * threads, "single_runs": sides["cpu_2t"][1]},
                  load_average_before=load_before, load_average_after=load_after, cpus=os.cpu_count() or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ddp", description=__doc__)
    parser.add_argument("--engine", choices=["cpu", "ddp_cpu"], required=True)
    parser.add_argument("--logdir", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args(argv)
    from bench.timed_runner import TimedVAERunner, compose_config

    extra = [f"engine.port={_free_port()}"] if args.engine == "ddp_cpu" else []
    cfg = compose_config(args.logdir, args.prepared, args.epochs, args.batch_size, engine=args.engine, extra=extra)
    with contextlib.redirect_stdout(io.StringIO()):
        TimedVAERunner(cfg).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
