"""Kill -9 at every write boundary of ingest: the previous snapshot stays whole and in use; a rerun loads the new
one."""

from __future__ import annotations

import signal

from salesintel.engine.store import Store
from tests.crash_fixtures import (
    assert_previous_state_is_whole,
    kill_points,
    on_a_copy,
    rerun_at,
)


def test_a_crash_anywhere_in_ingest_leaves_the_previous_snapshot_and_a_rerun_loads_the_new_one(stores, salesintel):
    folder, base, _, _ = stores
    _, code, trace = on_a_copy(folder, base, "dry-ingest", "ingest", str(folder / "second.csv"))
    assert code == 0 and trace[-1].endswith("COMMIT")
    points = kill_points(trace)
    assert len(points) >= 5, trace[:3]
    for point in points:
        crashed, code, seen = on_a_copy(
            folder, base, f"ingest-{point}", "ingest", str(folder / "second.csv"), kill_at=point
        )
        assert code == -signal.SIGKILL and len(seen) == point, (point, seen[-1:])
        store = Store.open(crashed)
        assert_previous_state_is_whole(store)
        assert store.snapshot(2) is None, f"killed before write {point} ({seen[-1]}): half a snapshot is visible"
        store.close()
        if point not in rerun_at(points):
            continue
        rerun = salesintel(crashed.parent, "ingest", str(folder / "second.csv"), db=crashed)
        assert rerun.returncode == 0 and "snapshot #2" in rerun.stdout, (point, rerun.stdout, rerun.stderr)
