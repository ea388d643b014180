"""Benchmark: `salesintel refresh` beside the lean floor (`bench/refresh_floor.py`) at growing sizes.

For each size, writes a planted synthetic CRM once (`salesintel synth`), loads it into a store, then `--repeats`
times, in alternation: `salesintel refresh --as-of DATE` on a fresh copy of the loaded store (so each trains a new
model) and the floor on another copy. Each run is its own process, timed from start to exit (start-up included),
with its peak resident memory. Prints medians, the median of the paired ratios salesintel / floor, peak memory, and
seconds per 100k deals (flat when growth is linear). Goals of issue 11 at 1M deals: < 30 s, ≤ 2× the floor,
peak memory < 4 GiB.

    .venv/bin/python bench/refresh_scale.py [--deals 10000 100000 1000000] [--repeats 3] [--as-of 2024-06-01]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measured_run import ROOT, measure, salesintel


def _fresh_copy(loaded: Path, db: Path) -> None:
    """A fresh copy of the loaded store, flushed to disk before the timed run: otherwise the copy's writeback lands
    in the middle of whichever run comes next (salesintel's commit waits for the disk; the floor writes a temporary
    table and does not), and the comparison measures the copy rather than the refresh."""
    shutil.copy(loaded, db)
    os.sync()


def _pair(run: dict) -> tuple[float, float]:
    return run["seconds"], run["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--as-of", default="2024-06-01")
    options = parser.parse_args()
    print(f"refresh --as-of {options.as_of}; medians of {options.repeats} alternating runs, process start included")
    for deals in options.deals:
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            crm, loaded = folder / "crm.csv", folder / "loaded.db"
            env = {**os.environ, "SALESINTEL_DB": str(loaded)}
            subprocess.run(
                salesintel("synth", "--deals", str(deals), "--seed", "1", "--out", str(crm)),
                check=True,
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            subprocess.run(salesintel("ingest", str(crm)), check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
            ours, floor = [], []
            for repeat in range(options.repeats):
                db = folder / f"run{repeat}.db"
                _fresh_copy(loaded, db)
                ours.append(
                    _pair(
                        measure(
                            salesintel("refresh", "--as-of", options.as_of), {**os.environ, "SALESINTEL_DB": str(db)}
                        )
                    )
                )
                _fresh_copy(loaded, db)
                floor.append(
                    _pair(
                        measure(
                            [sys.executable, str(ROOT / "bench/refresh_floor.py"), str(db), "--as-of", options.as_of],
                            dict(os.environ),
                        )
                    )
                )
        seconds = statistics.median(s for s, _ in ours)
        floor_seconds = statistics.median(s for s, _ in floor)
        ratio = statistics.median(a[0] / b[0] for a, b in zip(ours, floor))
        print(
            f"{deals:>9,} deals: salesintel {seconds:6.2f} s (min {min(s for s, _ in ours):.2f}, max "
            f"{max(s for s, _ in ours):.2f}), peak {max(m for _, m in ours):,.0f} MiB | floor {floor_seconds:6.2f} s, "
            f"peak {max(m for _, m in floor):,.0f} MiB | ratio {ratio:.2f} | "
            f"{seconds / deals * 1e5:.2f} s per 100k deals"
        )


if __name__ == "__main__":
    main()
