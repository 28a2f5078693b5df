"""Benchmarks that print ratios measured side by side in one run (``python -m bench``).

Each benchmark measures a numerator and a denominator in the same process run, so the ratio is
robust to how fast (or how busy) the machine is; ``runs/bench/results.json`` holds the same figures
as the printed table. See :mod:`bench.suite` for the list and :mod:`bench.__main__` for the options;
:mod:`bench.peak` for the CPU peak behind ``mfu``. :mod:`bench.gpu_check` (``bench/gpu_check.sh``,
``make gpu-check``) is the separate check of the GPU paths.
"""
