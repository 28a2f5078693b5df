"""Peak memory and time of PCA early fusion (GramPCA) at the paper grid, streamed from disk.

Run as a child process (``python -m bench.pca_memory``) so that its peak resident memory
(``ru_maxrss``) belongs to the PCA alone, not to the benchmarks that ran before it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import GIB, check_target, record

#: One subject at the paper grid: 54 volumes of 53 x 63 x 52 = 173,628 voxels.
PAPER_ITEM = (54, 53, 63, 52)


def write_subjects(folder: Path, n_subjects: int, dtype: str, seed: int = 0) -> list[Path]:
    """``n_subjects`` random ``(54, 53, 63, 52)`` arrays in [-1, 1) as per-subject ``.npy`` files."""
    from fusion.io import save_npy

    rng = np.random.default_rng(seed)
    n = int(np.prod(PAPER_ITEM))
    paths = []
    for i in range(n_subjects):
        data = rng.random(n, dtype=np.float32)
        data *= 2
        data -= 1
        path = folder / f"sub-{i:04d}.npy"
        save_npy(path, data.astype(dtype, copy=False).reshape(PAPER_ITEM))
        paths.append(path)
    return paths


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def fit_and_measure(paths: list[Path], n_components: int, chunk_size: int) -> dict[str, float]:
    """Fit GramPCA on the subject files; peak RSS of this process and peak traced allocations."""
    from fusion.evaluate.chunk_sources import NpyStackSource
    from fusion.evaluate.pca import GramPCA

    baseline = _rss_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    pca = GramPCA(n_components=n_components, chunk_size=chunk_size, backend="numpy")
    projection = pca.fit_transform(NpyStackSource(paths))
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if not np.isfinite(projection).all():
        raise RuntimeError("GramPCA returned non-finite projections")
    return {"peak_rss_bytes": float(_rss_bytes()), "baseline_rss_bytes": float(baseline),
            "traced_peak_bytes": float(traced_peak), "seconds": seconds,
            "n_subjects": len(paths), "n_features": float(pca.n_features_), "n_components": n_components}


def pca_peak(n_subjects: int, dtype: str, chunk_size: int = 32768, threads: int = 1, log=print) -> dict[str, Any]:
    """Write the subjects into a temporary folder, fit in a child process (``threads`` BLAS
    threads), report its peak memory and time."""
    need = n_subjects * int(np.prod(PAPER_ITEM)) * np.dtype(dtype).itemsize
    with tempfile.TemporaryDirectory(prefix="fusion_bench_pca_") as tmp:
        free = os.statvfs(tmp).f_bavail * os.statvfs(tmp).f_frsize
        if need > 0.8 * free:
            raise RuntimeError(f"PCA benchmark needs {need / GIB:.1f} GiB in {tmp}, only {free / GIB:.1f} GiB free")
        start = time.perf_counter()
        paths = write_subjects(Path(tmp), n_subjects, dtype)
        write_s = time.perf_counter() - start
        n_components = min(128, n_subjects - 2)
        cmd = [sys.executable, "-m", "bench.pca_memory", "--components", str(n_components),
               "--chunk-size", str(chunk_size), *map(str, paths)]
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ,
               **{k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
               "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"PCA child failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    target = "<= 4"
    peak = result["peak_rss_bytes"]
    log(f"  pca_peak_gib: {n_subjects} subjects {dtype}, peak RSS {peak / GIB:.2f} GiB, "
        f"fit {result['seconds']:.0f} s (files written in {write_s:.0f} s)")
    return record(peak, GIB, numerator_label="peak RSS bytes", denominator_label="bytes per GiB",
                  target=target, met=check_target(peak / GIB, target),
                  note=f"random {dtype} data in [-1, 1), {n_subjects} subjects x 54 x 173,628 features, "
                       "read by byte ranges; peak = ru_maxrss of the fitting process (interpreter included)",
                  dtype=dtype, data_bytes=float(need), write_seconds=write_s, chunk_size=chunk_size, **result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pca_memory", description=__doc__)
    parser.add_argument("--components", type=int, required=True)
    parser.add_argument("--chunk-size", type=int, default=32768)
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print(json.dumps(fit_and_measure(args.paths, args.components, args.chunk_size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
