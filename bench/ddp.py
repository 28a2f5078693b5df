"""gloo DDP with 2 processes / 1 process: training samples per second on the same small job.

Each side is a child process (``python -m bench.ddp --engine cpu|ddp_cpu ...``) running the
:class:`bench.timed_runner.TimedVAERunner` through Catalyst's engine from ``conf/engine``. Both sides
use the same number of intra-op threads per process (``threads``), so DDP has twice the cores.
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
    from fusion.io import read_json
    from bench.timed_runner import timing_file

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
    """Samples/s of a 2-process gloo DDP run / a 1-process run, ``sizes.ddp_pairs`` interleaved pairs
    of child processes (median over pairs)."""
    from bench.timed_runner import samples_per_second

    ddp_rates, one_rates = [], []
    for rep in range(sizes.ddp_pairs):
        for engine in (("ddp_cpu", "cpu") if rep % 2 == 0 else ("cpu", "ddp_cpu")):
            timings = run_job(workdir / f"ddp_{rep}_{engine}", prepared, engine, sizes.ddp_epochs, sizes.batch_size,
                              threads=threads)
            (ddp_rates if engine == "ddp_cpu" else one_rates).append(samples_per_second(timings))
    target = ">= 1"
    a, b = median(ddp_rates), median(one_rates)
    log(f"  ddp2_vs_1: 2 processes {a:.2f} subj/s, 1 process {b:.2f} subj/s")
    return record(a, b, numerator_label="DDP x2 (gloo) subj/s", denominator_label="1 process subj/s",
                  target=target, met=check_target(a / b, target),
                  note=f"same per-process batch and {threads} thread(s) per process; first epoch is warm-up",
                  ddp_runs=ddp_rates, single_runs=one_rates, epochs=sizes.ddp_epochs)


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
