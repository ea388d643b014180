"""Benchmark floor: the least work a loader of a SkyGeni-layout CSV must do, done as leanly as we know how.

It is the yardstick `salesintel ingest` is measured against (bench/ingest_scale.py), not a second loader: read the
file with pyarrow (every column as text), check what makes a row a deal — deal_id non-empty and unique, dates that
parse, a numeric non-negative amount, a known outcome — with pyarrow compute kernels, and write the valid deals to a
fresh SQLite file in one transaction with `executemany`. The deals table has the store's columns and its primary key
(snapshot_id, deal_id) but none of salesintel's extras: no WAL, no secondary index, no rejects with reasons, no
extra fields, no placeholder cleaning, no sha256 of the file.

    .venv/bin/python bench/ingest_floor.py FILE.csv [--db OUT.db]

Prints one line: rows, seconds, peak RSS of this process (MiB).
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

COLUMNS = (
    "deal_id",
    "created_date",
    "closed_date",
    "sales_rep_id",
    "industry",
    "region",
    "product_type",
    "lead_source",
    "deal_stage",
    "deal_amount",
    "sales_cycle_days",
    "outcome",
)
OUTCOMES = pa.array(["Won", "Lost", "Closed Won", "Closed Lost", "", "Open"])
NUMBER = r"^\s*\$?\s*[0-9,]*\.?[0-9]+\s*$"


def read(path: Path) -> pa.Table:
    return pv.read_csv(
        path,
        read_options=pv.ReadOptions(block_size=16 << 20),
        convert_options=pv.ConvertOptions(
            column_types={c: pa.string() for c in COLUMNS}, strings_can_be_null=False, include_columns=list(COLUMNS)
        ),
    )


def valid_rows(table: pa.Table) -> tuple[pa.Table, int]:
    """The rows that are deals, with dates as YYYY-MM-DD text and amount as float, and how many were dropped."""
    ids = pc.utf8_trim_whitespace(table["deal_id"])
    created = pc.strptime(table["created_date"], format="%Y-%m-%d", unit="s", error_is_null=True)
    closed_text = table["closed_date"]
    closed = pc.strptime(closed_text, format="%Y-%m-%d", unit="s", error_is_null=True)
    amount_ok = pc.match_substring_regex(table["deal_amount"], NUMBER)
    amount = pc.cast(
        pc.if_else(amount_ok, pc.replace_substring_regex(table["deal_amount"], r"[$,\s]", ""), "0"), pa.float64()
    )
    ok = pc.and_(pc.not_equal(ids, ""), pc.is_valid(created))
    ok = pc.and_(ok, pc.or_(pc.equal(closed_text, ""), pc.is_valid(closed)))
    ok = pc.and_(ok, pc.and_(amount_ok, pc.greater_equal(amount, 0)))
    ok = pc.and_(ok, pc.is_in(table["outcome"], value_set=OUTCOMES))
    if pc.count_distinct(ids).as_py() < len(ids):  # only a file with duplicates pays for finding them
        rows = pa.array(range(len(ids)), pa.int64())
        first = pa.table({"id": ids, "row": rows}).group_by("id").aggregate([("row", "min")])
        ok = pc.and_(ok, pc.is_in(rows, value_set=first["row_min"]))
    kept = table.filter(ok).set_column(0, "deal_id", ids.filter(ok))
    kept = kept.set_column(kept.schema.get_field_index("deal_amount"), "deal_amount", amount.filter(ok))
    return kept, len(table) - len(kept)


def write(table: pa.Table, db_path: Path) -> None:
    connection = sqlite3.connect(db_path)
    columns = ", ".join(COLUMNS)
    connection.execute(f"CREATE TABLE deals (snapshot_id INTEGER, {columns}, PRIMARY KEY (snapshot_id, deal_id))")
    lists = [table[c].to_pylist() for c in COLUMNS]
    with connection:
        connection.executemany(f"INSERT INTO deals VALUES (1, {', '.join('?' for _ in COLUMNS)})", zip(*lists))
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to create (default: a temporary one)")
    options = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        db_path = options.db or Path(folder) / "floor.db"
        kept, dropped = valid_rows(read(options.file))
        write(kept, db_path)
        seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"floor: {len(kept) + dropped} rows ({len(kept)} kept, {dropped} dropped) in {seconds:.2f} s, "
        f"peak RSS {peak_mib:.0f} MiB"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
    # End without tearing the interpreter down, as the salesintel command does (bot/launch.py): freeing every object
    # at exit (about 0.6 s after a million-deal refresh) is not work a lean floor should carry.
    sys.stdout.flush()
    os._exit(0)
