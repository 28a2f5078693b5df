"""``python -m bench [--quick] [--out runs/bench]``: run the benchmarks, print the table of ratios."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shrink every size (whole suite < 60 s)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="folder of results.json")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads per process (default 1: stable timings on a shared machine)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    from bench.suite import format_table, run_all

    results = run_all(args.out, quick=args.quick, threads=args.threads,
                      log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_table(results))
    print(f"\n{args.out / 'results.json'} ({results['meta']['seconds']:.0f} s"
          f"{', quick' if args.quick else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
