"""`salesintel migrate` and `salesintel copy-store` as an operator runs them: an old SQLite store brought up to
date, then moved whole to a real PostgreSQL server, where every answer is the one the file gave."""

from __future__ import annotations

import json

import sqlite_utils

from salesintel.engine.store import MIGRATIONS, Store
from salesintel.engine.store.copy import COPY_ORDER, NOT_COPIED
from tests.engine_fixtures import ROOT


def test_migrate_reports_and_brings_an_old_store_up_to_date(salesintel, tmp_path):
    assert salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv").returncode == 0
    old = sqlite_utils.Database(tmp_path / "s.db")
    old.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")  # as the release before the last step left it
    old.conn.close()
    check = salesintel(tmp_path, "migrate", "--check")
    assert check.returncode == 1 and "needs" in check.stdout and "salesintel migrate" in check.stdout
    done = salesintel(tmp_path, "migrate", "--json")
    assert json.loads(done.stdout) | {"store": None} == {
        "store": None,
        "before": len(MIGRATIONS) - 1,
        "after": len(MIGRATIONS),
        "latest": len(MIGRATIONS),
    }
    again = salesintel(tmp_path, "migrate", "--check")
    assert again.returncode == 0 and "up to date" in again.stdout


def test_a_sqlite_store_copied_to_postgresql_answers_the_same(salesintel, tmp_path, postgres_url):
    assert salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv").returncode == 0
    assert salesintel(tmp_path, "refresh", "--as-of", "2024-03-01").returncode == 0
    copied = salesintel(tmp_path, "copy-store", postgres_url, "--json")
    assert copied.returncode == 0, copied.stderr
    rows = json.loads(copied.stdout)["rows"]
    assert rows["deals"] == 5000 and rows["snapshots"] == 1 and rows["scores"] > 0
    for command in (["metrics", "--json"], ["risk", "D00005"], ["risk", "d00005"], ["models"]):
        on_file = salesintel(tmp_path, *command)
        on_server = salesintel(tmp_path, *command, url=postgres_url)
        assert on_server.returncode == on_file.returncode == 0, on_server.stderr
        assert on_server.stdout == on_file.stdout, command
    # the server's ids continue after the copied ones: a new snapshot is #2, as it would be in the file
    other = tmp_path / "other.csv"
    other.write_text((ROOT / "data/skygeni_sales_data.csv").read_text() + "\n")  # the same deals, another file
    loaded = salesintel(tmp_path, "ingest", str(other), "--accept", url=postgres_url)
    assert "snapshot #2" in loaded.stdout, loaded.stdout + loaded.stderr
    refused = salesintel(tmp_path, "copy-store", postgres_url)
    assert refused.returncode == 1 and "not empty" in refused.stderr


def test_every_table_has_a_copy_rule(tmp_path):
    store = Store.open(tmp_path / "s.db")
    assert set(store.conn.tables()) == set(COPY_ORDER) | set(NOT_COPIED)
