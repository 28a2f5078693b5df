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
from bench.peak import (
    cap_ratio,
    choose_peak,
    fp32_flop_per_cycle,
    parse_cpuinfo,
    theoretical_peak,
)
from bench.suite import KEYS, format_table
from bench.training import median_ci, spread

ROOT = Path(__file__).resolve().parents[1]


def test_record_ratio_and_target():
    entry = record(3.0, 2.0, numerator_label="a", denominator_label="b", target=">= 1.4",
                   met=check_target(1.5, ">= 1.4"))
    assert entry["ratio"] == pytest.approx(1.5) and entry["met"] is True
    assert check_target(1.06, "<= 1.05") is False and check_target(1.05, "<= 1.05") is True
    with pytest.raises(ValueError, match="non-zero denominator"):
        record(1.0, 0.0, numerator_label="a", denominator_label="b", target=None, met=None)
    with pytest.raises(ValueError, match="finite"):
        record(float("nan"), 1.0, numerator_label="a", denominator_label="b", target=None, met=None)


ZEN1 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 1
model name\t: AMD EPYC
cpu MHz\t\t: 1996.250
flags\t\t: fpu sse sse2 avx fma avx2

processor\t: 1
vendor_id\t: AuthenticAMD
"""


def test_cpuinfo_and_fp32_flop_per_cycle():
    info = parse_cpuinfo(ZEN1)
    assert (info["vendor"], info["family"], info["model"], info["cpuinfo_mhz"]) == ("AuthenticAMD", 23, 1, 1996.25)
    assert "avx2" in info["flags"]
    assert fp32_flop_per_cycle("AuthenticAMD", 23, 1, info["flags"])[0] == 16  # Zen 1: 128-bit FMA pipes
    assert fp32_flop_per_cycle("AuthenticAMD", 23, 0x31, info["flags"])[0] == 32  # Zen 2
    assert fp32_flop_per_cycle("GenuineIntel", 6, 85, ["avx2", "fma", "avx512f"])[0] == 64
    assert fp32_flop_per_cycle("GenuineIntel", 6, 60, ["avx2", "fma"])[0] == 32
    assert fp32_flop_per_cycle("GenuineIntel", 6, 42, ["sse2", "avx"])[0] == 16
    peak = theoretical_peak(1, cpuinfo_text=ZEN1)
    if peak["clock_source"].startswith("/proc/cpuinfo"):  # no cpufreq / lscpu maximum on this machine
        assert peak["flop_per_s"] == pytest.approx(16 * 1996.25e6)
    assert peak["flop_per_s"] == pytest.approx(peak["cores"] * peak["clock_mhz"] * 1e6 * peak["flop_per_cycle"])


def test_peak_is_the_larger_source_and_the_ratio_never_exceeds_1():
    runs = [{"threads": 1, "n": 512, "flop_per_s": 20e9}, {"threads": 2, "n": 2048, "flop_per_s": 45e9}]
    chosen = choose_peak(32e9, runs, threads=1)  # the 2-thread run cannot set a 1-thread peak
    assert chosen["flop_per_s"] == 32e9 and chosen["source"].startswith("theoretical")
    chosen = choose_peak(32e9, runs, threads=2)
    assert chosen["flop_per_s"] == 45e9 and "2048x2048" in chosen["source"] and chosen["source"].startswith("measured")
    assert choose_peak(None, runs, threads=1)["flop_per_s"] == 20e9
    assert cap_ratio(16e9, chosen)["ratio"] == pytest.approx(16 / 45) and not cap_ratio(16e9, chosen)["capped"]
    over = cap_ratio(50e9, chosen)
    assert over["ratio"] == 1.0 and over["capped"] and "beat" in over["source"]


def test_spread_and_median_interval():
    values = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0, 1.5]
    sp = spread(values)
    assert (sp["min"], sp["median"], sp["max"], sp["n"]) == (0.98, 1.0, 1.5, 7)
    assert sp["iqr"] == pytest.approx(sp["q3"] - sp["q1"]) and sp["q1"] <= sp["median"] <= sp["q3"]
    low, high = median_ci(values)
    assert 0.98 <= low <= 1.0 <= high <= 1.02  # the outlier does not move the median's interval


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
        elif key != "runner_overhead":  # checked below: its target holds for two figures
            assert entry["met"] == check_target(entry["ratio"], entry["target"]), key
    reduced = results["mfu"]["details"]["reduced"]
    assert reduced["ratio"] == pytest.approx(reduced["numerator"] / reduced["denominator"], rel=1e-12)
    assert 0 < results["mfu"]["ratio"] <= 1 and 0 < reduced["ratio"] <= 1  # <= 1 by construction
    mfu = results["mfu"]["details"]
    assert mfu["peak_source"].split(":")[0] in ("theoretical", "measured", "the step itself")
    assert results["mfu"]["denominator"] >= max(mfu["best_matmul_flop_per_s"], mfu["theoretical_flop_per_s"] or 0)
    over = results["runner_overhead"]
    d = over["details"]
    sp = d["ratio_spread"]
    assert sp["min"] <= sp["q1"] <= d["median_ratio"] <= sp["q3"] <= sp["max"] and sp["n"] == len(d["ratio_per_pair"])
    assert d["median_ratio_ci95"][0] <= d["median_ratio"] <= d["median_ratio_ci95"][1]
    assert over["met"] == (check_target(over["ratio"], over["target"])
                           and check_target(d["median_ratio"], over["target"]))
    assert d["timed_batches_per_side"] == sp["n"]
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
