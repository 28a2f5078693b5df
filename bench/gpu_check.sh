#!/usr/bin/env bash
# GPU check: the GPU tests, one paper-size bf16 VAE epoch on a 500-subject synthetic cohort, the
# cuML SVM and the CuPy PCA; prints step time, MFU against the GPU's bf16 peak and the projected
# paper protocol time (python -m bench.gpu_check --help for the options).
#   bench/gpu_check.sh                 on a CUDA machine (~5 min, at most 8)
#   bench/gpu_check.sh --dry-run       the same code on the CPU at tiny sizes
# Without CUDA (and without --dry-run) it says so and exits 0 having run nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m bench.gpu_check "$@"
