"""Benchmark: `salesintel refresh` (train + score + metrics) on synthetic snapshots of growing size.

For each size, writes a planted synthetic CRM once (`salesintel synth`), loads it into a fresh store, then
times `salesintel refresh --as-of DATE` as a separate process, `--repeats` times (each repeat trains a new model
in a fresh copy of the loaded store). Prints medians, rows per second, and the ratio to issue 3's 20-second budget.

    .venv/bin/python bench/refresh_scale.py [--deals 100000 [1000000 ...]] [--repeats 3] [--as-of 2024-06-01]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 20.0


def salesintel(*args: str, db: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bot", "--config", str(ROOT / "config.yaml"), *args], check=True,
                   cwd=ROOT, env={**os.environ, "SALESINTEL_DB": str(db)}, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--as-of", default="2024-06-01")
    options = parser.parse_args()
    for deals in options.deals:
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            crm, loaded = folder / "crm.csv", folder / "loaded.db"
            salesintel("synth", "--deals", str(deals), "--seed", "1", "--out", str(crm), db=loaded)
            ingest = salesintel("ingest", str(crm), db=loaded)
            timings = []
            for repeat in range(options.repeats):
                db = folder / f"run{repeat}.db"
                shutil.copy(loaded, db)
                timings.append(salesintel("refresh", "--as-of", options.as_of, db=db))
        median = statistics.median(timings)
        print(f"{deals:>9,} deals: ingest {ingest:6.2f} s; refresh (train + score + metrics) median {median:6.2f} s "
              f"(min {min(timings):.2f}, max {max(timings):.2f}, n={len(timings)}); "
              f"{deals / median:,.0f} deals/s; median / {BUDGET_SECONDS:.0f} s budget = {median / BUDGET_SECONDS:.2f}")


if __name__ == "__main__":
    main()
