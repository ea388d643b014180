"""Benchmark: `salesintel ingest` + `salesintel refresh` on a CRM file, end to end as a user runs them.

Each repeat uses a fresh store, so it measures the first load (parse, validate, write) and a full refresh,
including process start-up. Prints the median and the ratio to the 5-second budget of issue 2.

    .venv/bin/python bench/ingest_refresh.py [--file data/skygeni_sales_data.csv] [--as-of 2024-03-01] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 5.0


def run(*args: str, env: dict) -> None:
    subprocess.run(
        [sys.executable, "-m", "salesintel.bot", "--config", str(ROOT / "config.yaml"), *args],
        check=True,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default=str(ROOT / "data/skygeni_sales_data.csv"))
    parser.add_argument("--as-of", default="2024-03-01")
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    timings = {"ingest": [], "refresh": [], "total": []}
    for _ in range(options.repeats):
        with tempfile.TemporaryDirectory() as folder:
            env = {**os.environ, "SALESINTEL_DB": str(Path(folder) / "bench.db")}
            start = time.perf_counter()
            run("ingest", options.file, env=env)
            middle = time.perf_counter()
            run("refresh", "--as-of", options.as_of, env=env)
            end = time.perf_counter()
        timings["ingest"].append(middle - start)
        timings["refresh"].append(end - middle)
        timings["total"].append(end - start)
    print(
        f"{options.file}, as of {options.as_of}, {options.repeats} repeats (fresh store each, process start included)"
    )
    for name, values in timings.items():
        print(
            f"  {name:<8} median {statistics.median(values):6.2f} s"
            f"   min {min(values):6.2f} s   max {max(values):6.2f} s"
        )
    total = statistics.median(timings["total"])
    print(f"  total / {BUDGET_SECONDS:.0f} s budget = {total / BUDGET_SECONDS:.2f}")


if __name__ == "__main__":
    main()
