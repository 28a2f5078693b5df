"""The CPU's fp32 peak FLOP/s: theoretical (flags, microarchitecture, clock) and measured (matmuls).

An MFU is only honest against a denominator the step cannot beat. :func:`cpu_peak` takes the larger
of two figures and says which one it used:

- theoretical: cores x clock x fp32 FLOP per cycle per core, the last from the vector and FMA flags
  of ``/proc/cpuinfo`` and, for AMD, the family (Zen 1 splits 256-bit FMAs into two 128-bit halves);
- measured: the best ``torch.mm`` FLOP/s over several sizes and thread counts (at most the threads
  the benchmark itself may use).

The clock is the highest one the system reports (``cpufreq`` maximum, else ``lscpu``'s "CPU max
MHz", else ``/proc/cpuinfo``'s "cpu MHz", which under a hypervisor is often the nominal clock, not
the boost one); where turbo beats it, the measured figure takes over.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Matmul sizes tried for the measured peak (best of them is kept).
MATMUL_SIZES: tuple[int, ...] = (256, 512, 1024, 2048)


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Vendor, family, model, model name, flags and clock (MHz) of the first processor entry."""
    block = text.split("\n\n", 1)[0]
    flags = (_first(r"^flags\s*:\s*(.*)$", block) or "").split()
    mhz = _first(r"^cpu MHz\s*:\s*([0-9.]+)", block)
    family = _first(r"^cpu family\s*:\s*(\d+)", block)
    model = _first(r"^model\s*:\s*(\d+)", block)
    return {
        "vendor": _first(r"^vendor_id\s*:\s*(.*)$", block) or "unknown",
        "family": int(family) if family else None,
        "model": int(model) if model else None,
        "model_name": _first(r"^model name\s*:\s*(.*)$", block) or "unknown",
        "flags": flags,
        "cpuinfo_mhz": float(mhz) if mhz else None,
    }


def fp32_flop_per_cycle(vendor: str, family: int | None, model: int | None, flags: Sequence[str]) -> tuple[int, str]:
    """fp32 FLOP per cycle per core (an FMA counts 2), with the reasoning in words.

    Assumes two vector FMA (or add + multiply) pipes per core, as on every x86 core since Haswell
    and Zen; where a part has one 512-bit FMA pipe the figure is an upper bound (MFU only lower).
    """
    flags = set(flags)
    if vendor == "AuthenticAMD" and family == 23 and model is not None and model < 0x30 and "avx2" in flags:
        return 16, "AMD family 23 model < 0x30 (Zen/Zen+): 2 x 128-bit FMA pipes = 2 x 4 lanes x 2 FLOP"
    if vendor == "AuthenticAMD" and family == 25 and "avx512f" in flags:
        return 32, "AMD family 25 with AVX-512 (Zen 4): 512-bit ops on 2 x 256-bit FMA pipes = 2 x 8 lanes x 2 FLOP"
    if "avx512f" in flags:
        return 64, "AVX-512 + FMA: 2 x 512-bit FMA pipes = 2 x 16 lanes x 2 FLOP (upper bound for 1-pipe parts)"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2 + FMA: 2 x 256-bit FMA pipes = 2 x 8 lanes x 2 FLOP"
    if "avx" in flags:
        return 16, "AVX without FMA: 256-bit add + 256-bit multiply per cycle = 2 x 8 FLOP"
    if "sse2" in flags:
        return 8, "SSE2: 128-bit add + 128-bit multiply per cycle = 2 x 4 FLOP"
    return 2, "no vector flags found: 1 scalar add + 1 scalar multiply per cycle"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def max_clock_mhz(cpuinfo_mhz: float | None) -> tuple[float | None, str]:
    """The highest clock the system reports, and where it came from."""
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if khz and khz.strip().isdigit():
        return int(khz) / 1000.0, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    lscpu_max = _first(r"^CPU max MHz:\s*([0-9.]+)", out)
    if lscpu_max:
        return float(lscpu_max), "lscpu 'CPU max MHz'"
    if cpuinfo_mhz:
        return cpuinfo_mhz, "/proc/cpuinfo 'cpu MHz' (current or nominal clock; boost may be higher)"
    return None, "no clock readable"


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def theoretical_peak(threads: int, cpuinfo_text: str | None = None) -> dict[str, Any]:
    """fp32 FLOP/s of ``min(threads, cores)`` cores at the highest reported clock.

    Returns:
        ``{"flop_per_s" (None when no clock is readable), "cores", "clock_mhz", "clock_source",
        "flop_per_cycle", "basis", "cpu"}``.
    """
    info = parse_cpuinfo(cpuinfo_text if cpuinfo_text is not None else (_read("/proc/cpuinfo") or ""))
    per_cycle, basis = fp32_flop_per_cycle(info["vendor"], info["family"], info["model"], info["flags"])
    mhz, clock_source = max_clock_mhz(info["cpuinfo_mhz"])
    cores = max(1, min(int(threads), usable_cores()))
    flops = None if mhz is None else cores * mhz * 1e6 * per_cycle
    vector_flags = sorted(set(info["flags"]) & {"sse2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"})
    return {"flop_per_s": flops, "cores": cores, "clock_mhz": mhz, "clock_source": clock_source,
            "flop_per_cycle": per_cycle, "basis": basis,
            "cpu": {"vendor": info["vendor"], "family": info["family"], "model": info["model"],
                    "model_name": info["model_name"], "vector_flags": vector_flags}}


def measured_matmul_peak(thread_counts: Sequence[int], sizes: Sequence[int] = MATMUL_SIZES,
                         repeats: int = 3) -> list[dict[str, float]]:
    """Best-of-``repeats`` fp32 ``torch.mm`` FLOP/s for every (threads, n); torch's thread count restored."""
    import torch

    before = torch.get_num_threads()
    runs = []
    try:
        for threads in thread_counts:
            torch.set_num_threads(int(threads))
            for n in sizes:
                a, b = torch.randn(n, n), torch.randn(n, n)
                torch.mm(a, b)  # warm-up
                best = float("inf")
                for _ in range(repeats):
                    start = time.perf_counter()
                    torch.mm(a, b)
                    best = min(best, time.perf_counter() - start)
                runs.append({"threads": int(threads), "n": int(n), "flop_per_s": 2.0 * n**3 / best})
    finally:
        torch.set_num_threads(before)
    return runs


def choose_peak(theoretical: float | None, measured: Sequence[dict[str, float]], threads: int) -> dict[str, Any]:
    """The denominator: the larger of the theoretical peak and the best matmul on <= ``threads`` threads."""
    eligible = [run for run in measured if run["threads"] <= threads]
    best = max(eligible, key=lambda run: run["flop_per_s"]) if eligible else None
    if best is not None and (theoretical is None or best["flop_per_s"] > theoretical):
        return {"flop_per_s": best["flop_per_s"],
                "source": f"measured: torch.mm {best['n']}x{best['n']} fp32 on "
                          f"{best['threads']} thread(s), best of sizes {list(MATMUL_SIZES)}"}
    if theoretical is None:
        raise ValueError("no peak: neither a clock nor a matmul measurement is available")
    return {"flop_per_s": theoretical, "source": "theoretical: cores x clock x fp32 FLOP/cycle (from the CPU flags)"}


def cap_ratio(numerator: float, peak: dict[str, Any]) -> dict[str, Any]:
    """``numerator / peak`` with the peak raised to the numerator when the numerator beats it.

    A figure above every peak means the peak is wrong (an unreadable boost clock, say), not that
    the step beat the machine: the ratio is then 1, and the source says so.
    """
    if numerator <= peak["flop_per_s"]:
        return {**peak, "ratio": numerator / peak["flop_per_s"], "capped": False}
    return {"flop_per_s": numerator, "ratio": 1.0, "capped": True,
            "source": f"the step itself: it beat {peak['source']} ({peak['flop_per_s']:.3g} FLOP/s), so that peak "
                      "is not the machine's"}


def cpu_peak(threads: int, repeats: int = 3, sizes: Sequence[int] = MATMUL_SIZES) -> dict[str, Any]:
    """Theoretical and measured fp32 peaks, and the one chosen for ``threads`` intra-op threads.

    Matmuls run on 1 .. usable cores threads (all reported; those above ``threads`` only for
    reference).
    """
    theory = theoretical_peak(threads)
    whole = theoretical_peak(usable_cores())
    measured = measured_matmul_peak(range(1, usable_cores() + 1), sizes=sizes, repeats=repeats)
    chosen = choose_peak(theory["flop_per_s"], measured, threads)
    return {**chosen, "threads": int(threads), "theoretical": theory,
            "theoretical_all_cores_flop_per_s": whole["flop_per_s"], "matmul_runs": measured}
