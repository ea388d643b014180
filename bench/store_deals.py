"""Benchmark: `Store.deals` (the bulk read a refresh starts with) from the Parquet copy and from the rows.

    .venv/bin/python bench/store_deals.py STORE.db [--snapshot ID] [--repeats 3]

Loads nothing: point it at a store that `salesintel ingest` filled (since schema version 8, so it has the copy).
Prints the median seconds of each path and checks that both give the same frame.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd

from salesintel.engine import deal_frames
from salesintel.engine.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--snapshot", type=int, default=None, help="snapshot id (default: the latest)")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    store = Store.open(options.store)
    snapshot = store.snapshot(options.snapshot) if options.snapshot else store.latest_snapshot()
    paths = {
        "parquet copy": lambda: store.deals(snapshot.id),
        # the path every snapshot stored before schema version 8 takes
        "rows (SQL)": lambda: deal_frames.finish(
            *store._deals_from_rows(snapshot.id, snapshot.fields), snapshot.fields
        ),
    }
    frames, medians = {}, {}
    for name, read in paths.items():
        seconds = []
        for _ in range(options.repeats):
            start = time.perf_counter()
            frames[name] = read()
            seconds.append(time.perf_counter() - start)
        medians[name] = statistics.median(seconds)
        print(
            f"{len(frames[name]):>9,} deals  {name:<13} median {medians[name]:6.2f} s "
            f"({min(seconds):.2f}–{max(seconds):.2f})"
        )
    pd.testing.assert_frame_equal(frames["parquet copy"], frames["rows (SQL)"], check_exact=True)
    print(f"same frame both ways; rows / copy: {medians['rows (SQL)'] / medians['parquet copy']:.1f}×")


if __name__ == "__main__":
    main()
