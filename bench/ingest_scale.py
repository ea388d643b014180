"""Benchmark: `salesintel ingest` against a lean pyarrow floor (bench/ingest_floor.py) on synthetic CRM files.

For each size, writes a synthetic CRM once (`salesintel synth --seed 1`), then alternates `--repeats` times between
`salesintel ingest FILE` into a fresh store and the floor on the same file, each as its own process (start-up
included). Peak memory is each process's maximum RSS, read as the children's ru_maxrss of a fresh helper process per
measurement. Prints medians, the min–max spread, and the ratio salesintel / floor (the issue's goal: ≤ 1.5 at 1M).

    .venv/bin/python bench/ingest_scale.py [--deals 10000 100000 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measured_run import ROOT, measure, salesintel

GOAL_RATIO = 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    print(f"median of {options.repeats} runs each, process start-up included; spread is min–max")
    for deals in options.deals:
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            crm = folder / "crm.csv"
            env = {**os.environ, "SALESINTEL_DB": str(folder / "synth.db")}
            subprocess.run(
                salesintel("synth", "--deals", str(deals), "--seed", "1", "--out", str(crm)),
                check=True,
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            runs: dict[str, list[dict]] = {"salesintel": [], "floor": []}
            for repeat in range(options.repeats):
                env = {**os.environ, "SALESINTEL_DB": str(folder / f"run{repeat}.db")}
                runs["salesintel"].append(measure(salesintel("ingest", str(crm)), env))
                floor_db = folder / f"floor{repeat}.db"
                runs["floor"].append(
                    measure([sys.executable, str(ROOT / "bench/ingest_floor.py"), str(crm), "--db", str(floor_db)], env)
                )
        medians = {}
        for name, results in runs.items():
            seconds = [r["seconds"] for r in results]
            peaks = [r["peak_mib"] for r in results]
            medians[name] = statistics.median(seconds), statistics.median(peaks)
            print(
                f"{deals:>9,} deals  {name:<10} median {medians[name][0]:6.2f} s "
                f"({min(seconds):.2f}–{max(seconds):.2f})  peak RSS median {medians[name][1]:6.0f} MiB "
                f"({min(peaks):.0f}–{max(peaks):.0f})"
            )
        ratios = [s["seconds"] / f["seconds"] for s, f in zip(runs["salesintel"], runs["floor"])]
        time_ratio = medians["salesintel"][0] / medians["floor"][0]
        print(
            f"{deals:>9,} deals  ratio salesintel / floor: time {time_ratio:.2f} (paired runs "
            f"{min(ratios):.2f}–{max(ratios):.2f}; goal ≤ {GOAL_RATIO}), peak RSS "
            f"{medians['salesintel'][1] / medians['floor'][1]:.2f}"
        )


if __name__ == "__main__":
    main()
