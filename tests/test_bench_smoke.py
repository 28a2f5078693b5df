"""`python -m bench --quick` end to end: one table, and results.json with every benchmark's figures."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import check_target, record
from bench.suite import KEYS, format_table

ROOT = Path(__file__).resolve().parents[1]


def test_record_ratio_and_target():
    entry = record(3.0, 2.0, numerator_label="a", denominator_label="b", target=">= 1.4", met=check_target(1.5, ">= 1.4"))
    assert entry["ratio"] == pytest.approx(1.5) and entry["met"] is True
    assert check_target(1.06, "<= 1.05") is False and check_target(1.05, "<= 1.05") is True
    with pytest.raises(ValueError, match="non-zero denominator"):
        record(1.0, 0.0, numerator_label="a", denominator_label="b", target=None, met=None)
    with pytest.raises(ValueError, match="finite"):
        record(float("nan"), 1.0, numerator_label="a", denominator_label="b", target=None, met=None)


def _numbers(node):
    """Every number in a JSON tree (bools excluded)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _numbers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _numbers(value)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield node


@pytest.mark.slow
def test_quick_bench_writes_every_figure(tmp_path):
    out = tmp_path / "bench"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert set(KEYS) <= set(results)
    for key in KEYS:
        entry = results[key]
        values = list(_numbers(entry))
        assert values and all(math.isfinite(v) for v in values), key
        assert entry["denominator"] > 0 and entry["numerator"] > 0, key
        assert entry["ratio"] == pytest.approx(entry["numerator"] / entry["denominator"], rel=1e-12), key
        if entry["target"] is None:
            assert entry["met"] is None, key
        else:
            assert entry["met"] == check_target(entry["ratio"], entry["target"]), key
    reduced = results["mfu"]["details"]["reduced"]
    assert reduced["ratio"] == pytest.approx(reduced["numerator"] / reduced["denominator"], rel=1e-12)
    assert 0 < results["mfu"]["ratio"] < 1 and 0 < reduced["ratio"] < 1  # a training step never beats a matmul
    # the counted FLOP of a VAE step: the encoder's first convolution alone is 2*27*k^3 MAC-FLOP per output voxel
    paper = results["mfu"]["details"]["paper"]
    first_conv = 2 * 27 * 64 * math.prod(math.ceil(s / 2) for s in paper["grid"])
    assert paper["flop_per_volume"] > 3 * first_conv  # forward + 2x backward at least
    assert results["pca_peak_gib"]["ratio"] == pytest.approx(results["pca_peak_gib"]["numerator"] / 2**30)
    # the printed table is the JSON's
    table = format_table(results)
    assert table in proc.stdout
    for key in KEYS:
        assert key in table and f"{results[key]['ratio']:.3f}" in table
