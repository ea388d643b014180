"""Kill -9 at every write boundary of ingest and refresh: the store still serves the previous complete snapshot and
refresh, never half of a new one, and running the command again completes.

`tests/fault_injection.py` runs the real command and kills it before its N-th write statement. A first run lists
every write; the kill points are the first write of each run of the same kind (between two different writes) and
the middle of each bulk run (between two rows of one insert), so no boundary is missed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from salesintel.engine.store import Store
from salesintel.engine.synth import SynthSpec, generate
from tests.engine_fixtures import ROOT

FIRST, SECOND = date(2024, 2, 1), date(2024, 3, 1)


def kill_points(trace: list[str]) -> list[int]:
    """1-based statement numbers to kill at: each run's first statement, and the middle of runs longer than two."""
    kinds = [line.split("\t", 1)[1] for line in trace]
    points, start = [], 0
    for i in range(1, len(kinds) + 1):
        if i == len(kinds) or kinds[i] != kinds[start]:
            points.append(start + 1)
            if i - start > 2:
                points.append(start + 1 + (i - start) // 2)
            start = i
    return points


def traced(folder: Path, store: Path, *args: str, kill_at: int = 0) -> tuple[int, list[str]]:
    trace = folder / f"trace-{kill_at}.txt"
    trace.unlink(missing_ok=True)
    env = {**os.environ, "SALESINTEL_DB": str(store), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.fault_injection", "--kill-at", str(kill_at), "--trace", str(trace), "--", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, trace.read_text().splitlines() if trace.exists() else []


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A store holding one snapshot refreshed as of FIRST (the state a crash must fall back to), the next export to
    load, and the same store with that export loaded (the state before the refresh that will crash)."""
    folder = tmp_path_factory.mktemp("crash")
    data = generate(SynthSpec(deals=1500, seed=11, start=date(2023, 1, 1), days=430))
    first = data.crm[data.crm["created_date"] < str(FIRST)].copy()
    first.loc[first["closed_date"] >= str(FIRST), ["closed_date", "outcome", "sales_cycle_days"]] = ""
    (folder / "first.csv").write_text(first.to_csv(index=False))
    (folder / "second.csv").write_text(data.crm.to_csv(index=False))
    base = folder / "base.db"
    for args in (("ingest", str(folder / "first.csv")), ("refresh", "--as-of", FIRST.isoformat())):
        code, _ = traced(folder, base, *args)
        assert code == 0
    loaded = folder / "loaded.db"
    shutil.copy(base, loaded)
    assert traced(folder, loaded, "ingest", str(folder / "second.csv"))[0] == 0
    return folder, base, loaded


def assert_previous_state_is_whole(store: Store) -> None:
    snapshot = store.latest_snapshot()
    assert snapshot.id == 1 and len(store.deals(1)) == snapshot.rows_loaded
    assert store.snapshot(2) is None or store.snapshot(2).promoted is False or len(store.deals(2))
    refresh = store.latest_refresh()
    assert refresh.id == 1 and refresh.as_of == FIRST
    pipeline = refresh.metrics.open_pipeline
    assert len(store.scores(1)) == pipeline["count"] + pipeline["stale_count"]


def test_a_crash_anywhere_in_ingest_leaves_the_previous_snapshot_and_a_rerun_loads_the_new_one(stores, salesintel):
    folder, base, _ = stores
    dry = folder / "dry-ingest.db"
    shutil.copy(base, dry)
    code, trace = traced(folder, dry, "ingest", str(folder / "second.csv"))
    assert code == 0 and trace[-1].endswith("COMMIT")
    points = kill_points(trace)
    assert len(points) >= 5, trace[:3]
    for point in points:
        crashed = folder / f"ingest-{point}.db"
        shutil.copy(base, crashed)
        code, seen = traced(folder, crashed, "ingest", str(folder / "second.csv"), kill_at=point)
        assert code == -signal.SIGKILL and len(seen) == point, (point, seen[-1:])
        store = Store.open(crashed)
        assert_previous_state_is_whole(store)
        assert store.snapshot(2) is None, f"killed before write {point} ({seen[-1]}): half a snapshot is visible"
        store.close()
        rerun = salesintel(crashed.parent, "ingest", str(folder / "second.csv"), db=crashed)
        assert rerun.returncode == 0 and "snapshot #2" in rerun.stdout, (point, rerun.stdout, rerun.stderr)


def test_a_crash_anywhere_in_refresh_leaves_the_previous_refresh_and_a_rerun_completes(stores, salesintel):
    folder, _, loaded = stores
    dry = folder / "dry-refresh.db"
    shutil.copy(loaded, dry)
    code, trace = traced(folder, dry, "refresh", "--as-of", SECOND.isoformat())
    assert code == 0 and any("INTO scores" in line for line in trace)
    points = kill_points(trace)
    assert len(points) >= 6, trace
    for point in points:
        crashed = folder / f"refresh-{point}.db"
        shutil.copy(loaded, crashed)
        code, seen = traced(folder, crashed, "refresh", "--as-of", SECOND.isoformat(), kill_at=point)
        assert code == -signal.SIGKILL, (point, code)
        store = Store.open(crashed)
        refresh = store.latest_refresh()
        assert refresh.id == 1 and refresh.as_of == FIRST, f"killed before write {point} ({seen[-1]})"
        assert store.refresh_on_or_before(SECOND).id == 1 and not store.scores(2)
        store.close()
        rerun = salesintel(crashed.parent, "refresh", "--as-of", SECOND.isoformat(), db=crashed)
        assert rerun.returncode == 0, (point, rerun.stderr)
        daily = salesintel(crashed.parent, "report", "daily", "--as-of", SECOND.isoformat(), db=crashed)
        assert daily.returncode == 0 and "Daily pipeline summary" in daily.stdout
        store = Store.open(crashed)
        latest = store.latest_refresh()
        pipeline = latest.metrics.open_pipeline
        assert latest.as_of == SECOND and len(store.scores(latest.id)) == pipeline["count"] + pipeline["stale_count"]
        store.close()
