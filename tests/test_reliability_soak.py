"""Soak test (``make soak``; excluded from ``make test``): repeated prepare + train + classify cycles
on the small embedded cohort, in one process. Every cycle must give byte-identical prepared files
and identical latents, SVM weights and AUCs, and the process's memory must not grow from cycle to
cycle (a leaked dataset, model or log handle would show here).

Knobs (environment): ``FUSION_SOAK_CYCLES`` (default 4), ``FUSION_SOAK_SUBJECTS`` (default 40 on the
small 27x32x26 grid), ``FUSION_SOAK_MAX_GROWTH_MB`` (default 64: well below one leaked copy of the
cached cohort, which is ~190 MB at 40 subjects).
"""

from __future__ import annotations

import gc
import json
import os
import resource
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import run_config

from fusion.data.prepare import prepare_cohort
from fusion.data.synthetic_volumes import make_vae_cohort
from fusion.data.testing import folder_digest

CYCLES = int(os.environ.get("FUSION_SOAK_CYCLES", "4"))
SUBJECTS = int(os.environ.get("FUSION_SOAK_SUBJECTS", "40"))
MAX_GROWTH_MB = float(os.environ.get("FUSION_SOAK_MAX_GROWTH_MB", "64"))


def rss_mb() -> float:
    """Resident memory of this process now (MB); the peak where /proc is not available."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.soak
def test_repeated_cycles_are_identical_and_memory_does_not_grow(tmp_path: Path) -> None:
    assert CYCLES >= 3, "the memory check needs a warm-up cycle and two more"
    manifest = make_vae_cohort(tmp_path / "cohort", size="small", n_subjects=SUBJECTS, progress=False)
    prepared = tmp_path / "prepared"  # the same folder every cycle: each preparation replaces the last
    digests, outcomes, memory = [], [], []
    for cycle in range(CYCLES):
        prepare_cohort(manifest, prepared, progress=False)
        digests.append(folder_digest(prepared))
        logdir = tmp_path / f"run_{cycle}"
        run_config("vae", [
            f"logdir={logdir}", f"data.prepared_dir={prepared}", "folds.n_splits=2", "folds.only=0",
            "stage.num_epochs=1", "callbacks.progress=null", "callbacks.analysis=null",
        ])
        with np.load(logdir / "fold_00" / "latents.npz", allow_pickle=False) as latents, \
                np.load(logdir / "fold_00" / "svm.npz", allow_pickle=False) as svm:
            outcomes.append({
                "results": json.loads((logdir / "results.json").read_text()),
                "mu": latents["mu"].copy(),
                "coef": svm["coef"].copy(),
            })
        gc.collect()
        memory.append(rss_mb())
        print(f"soak cycle {cycle}: auc {outcomes[-1]['results']['auc']} rss {memory[-1]:.0f} MB", flush=True)

    for cycle in range(1, CYCLES):
        assert digests[cycle] == digests[0], f"prepared files differ in cycle {cycle}"
        assert outcomes[cycle]["results"]["auc"] == outcomes[0]["results"]["auc"]
        np.testing.assert_array_equal(outcomes[cycle]["mu"], outcomes[0]["mu"])
        np.testing.assert_array_equal(outcomes[cycle]["coef"], outcomes[0]["coef"])
    growth = memory[-1] - memory[1]  # cycle 0 warms up imports, allocator pools and caches
    assert growth < MAX_GROWTH_MB, f"memory grew by {growth:.0f} MB over {CYCLES - 2} cycles: {memory}"
