"""What the crash tests share (`tests/test_crash_ingest.py`, `tests/test_crash_refresh.py`): kill -9 at every write
boundary of ingest and refresh; the store still serves the previous complete snapshot and refresh, never half of a
new one, and running the command again completes.

`tests/fault_injection.py` runs the real command and kills it before its N-th write statement. A first run lists
every write; the kill points are the first write of each run of the same kind (between two different writes) and
the middle of each bulk run (between two rows of one insert), so no boundary is missed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from salesintel.engine.store import Store
from salesintel.engine.synth import SynthSpec, generate
from tests.engine_fixtures import ROOT

FIRST, SECOND = date(2024, 2, 1), date(2024, 3, 1)


def kill_points(trace: list[str]) -> list[int]:
    """1-based statement numbers to kill at: each run's first statement, and the middle of runs longer than two.
    An empty transaction (BEGIN straight followed by COMMIT: the schema check on opening) writes nothing: skipped."""
    kinds = [line.split("\t", 1)[1] for line in trace]
    empty = {i for i in range(len(kinds) - 1) if kinds[i] == "BEGIN" and kinds[i + 1] == "COMMIT"}
    empty |= {i + 1 for i in empty}
    points, start = [], 0
    for i in range(1, len(kinds) + 1):
        if i == len(kinds) or kinds[i] != kinds[start]:
            if start not in empty:
                points.append(start + 1)
            if i - start > 2:
                points.append(start + 1 + (i - start) // 2)
            start = i
    return points


def rerun_at(points: list[int]) -> set[int]:
    """Where the rerun is tried (the store is checked after every kill): the first, a middle and the last kill point.
    A rerun starts from whatever a kill left, and every kill leaves the same: the previous state, whole."""
    return {points[0], points[len(points) // 2], points[-1]}


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


def on_a_copy(folder: Path, source: Path, name: str, *args: str, kill_at: int = 0) -> tuple[Path, int, list[str]]:
    """`salesintel *args` (traced, killed before write `kill_at` if given) on a copy of `source` named `name`.db:
    every run starts from the same state. The copy, the exit code and the writes seen."""
    copy = folder / f"{name}.db"
    shutil.copy(source, copy)
    code, trace = traced(folder, copy, *args, kill_at=kill_at)
    return copy, code, trace


def make_stores(tmp_path_factory):
    """A store holding one snapshot refreshed as of FIRST (the state a crash must fall back to), the next export to
    load, the same store with that export loaded (before the training that will crash), and with its model trained
    too (before the refresh that will crash)."""
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
    loaded, code, _ = on_a_copy(folder, base, "loaded", "ingest", str(folder / "second.csv"))
    assert code == 0
    # The new snapshot's model already trained: refresh only scores and writes.
    trained, code, _ = on_a_copy(folder, loaded, "trained", "train", "--as-of", SECOND.isoformat())
    assert code == 0
    return folder, base, loaded, trained


def assert_previous_state_is_whole(store: Store) -> None:
    snapshot = store.latest_snapshot()
    assert snapshot.id == 1 and len(store.deals(1)) == snapshot.rows_loaded
    assert store.snapshot(2) is None or store.snapshot(2).promoted is False or len(store.deals(2))
    refresh = store.latest_refresh()
    assert refresh.id == 1 and refresh.as_of == FIRST
    pipeline = refresh.metrics.open_pipeline
    assert len(store.scores(1)) == pipeline["count"] + pipeline["stale_count"]
