"""Kill -9 in the middle of writing to a PostgreSQL store: the previous snapshot and refresh stay whole and in use,
and a rerun completes. The command is killed while the server shows it streaming rows (`COPY`), seen from another
session in `pg_stat_activity`, so the kill lands mid-transaction every time, not by a timer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import psycopg

from salesintel.engine.store import Store
from salesintel.engine.synth import SynthSpec, generate
from tests.engine_fixtures import ROOT


def _killed_while_copying(postgres_url: str, table: str, *args: str) -> None:
    """Run `salesintel ARGS` on the store and SIGKILL it once it is streaming rows into `table`."""
    name = f"crash-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SALESINTEL_DATABASE_URL": postgres_url, "PGAPPNAME": name, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "salesintel.bot", "--config", str(ROOT / "config.yaml"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    with psycopg.connect(postgres_url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            streaming = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query LIKE %s",
                [name, f"COPY {table} %"],
            ).fetchone()[0]
            if streaming:
                break
            assert process.poll() is None, f"salesintel {' '.join(args)} ended before it wrote {table}"
            time.sleep(0.005)
        else:
            raise AssertionError(f"never saw salesintel {' '.join(args)} write {table}")
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def test_a_kill_mid_ingest_or_mid_refresh_on_postgresql_loses_nothing(salesintel, tmp_path, postgres_url):
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    generate(SynthSpec(deals=60_000, seed=3)).crm.to_csv(first, index=False)
    generate(SynthSpec(deals=60_000, seed=4)).crm.to_csv(second, index=False)
    assert salesintel(tmp_path, "ingest", str(first), url=postgres_url).returncode == 0
    assert salesintel(tmp_path, "refresh", url=postgres_url).returncode == 0
    before = Store.open(postgres_url)
    refresh_before = before.latest_refresh()
    before.close()

    _killed_while_copying(postgres_url, "deals", "ingest", str(second))
    store = Store.open(postgres_url)
    assert store.latest_snapshot().id == 1 and store.snapshot(2) is None
    assert store.conn.execute("SELECT count(*) FROM deals WHERE snapshot_id <> 1").fetchone()[0] == 0
    assert store.latest_refresh() == refresh_before
    store.close()
    rerun = salesintel(tmp_path, "ingest", str(second), url=postgres_url)
    assert rerun.returncode == 0 and "loaded 60000" in rerun.stdout, rerun.stderr
    # PostgreSQL never gives an id twice, even one a rolled-back write took: the new snapshot is #3, and #2 never was
    assert "snapshot #3" in rerun.stdout

    _killed_while_copying(postgres_url, "scores", "refresh")
    store = Store.open(postgres_url)
    assert store.latest_refresh() == refresh_before, "half a refresh is never the latest"
    assert (
        store.conn.execute("SELECT count(*) FROM scores WHERE refresh_id <> ?", [refresh_before.id]).fetchone()[0] == 0
    )
    store.close()
    again = salesintel(tmp_path, "refresh", url=postgres_url)
    assert again.returncode == 0, again.stderr
    store = Store.open(postgres_url)
    assert store.latest_refresh().snapshot_id == 3 and len(store.scores(store.latest_refresh().id)) > 0
