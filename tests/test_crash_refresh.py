"""Kill -9 at every write boundary of refresh: the previous refresh stays whole and in use; a rerun completes."""

from __future__ import annotations

import signal

from salesintel.engine.store import Store
from tests.crash_fixtures import (
    FIRST,
    SECOND,
    kill_points,
    on_a_copy,
    rerun_at,
)


def test_a_crash_anywhere_in_refresh_leaves_the_previous_refresh_and_a_rerun_completes(stores, salesintel):
    folder, _, _, loaded = stores
    _, code, trace = on_a_copy(folder, loaded, "dry-refresh", "refresh", "--as-of", SECOND.isoformat())
    assert code == 0 and any("INTO scores" in line for line in trace)
    assert not any("INTO models" in line for line in trace), "the model is reused (its training is tested below)"
    points = kill_points(trace)
    assert len(points) >= 5, trace
    for point in points:
        crashed, code, seen = on_a_copy(
            folder, loaded, f"refresh-{point}", "refresh", "--as-of", SECOND.isoformat(), kill_at=point
        )
        assert code == -signal.SIGKILL, (point, code)
        store = Store.open(crashed)
        refresh = store.latest_refresh()
        assert refresh.id == 1 and refresh.as_of == FIRST, f"killed before write {point} ({seen[-1]})"
        assert store.refresh_on_or_before(SECOND).id == 1 and not store.scores(2)
        store.close()
        if point not in rerun_at(points):
            continue
        rerun = salesintel(crashed.parent, "refresh", "--as-of", SECOND.isoformat(), db=crashed)
        assert rerun.returncode == 0, (point, rerun.stderr)
        daily = salesintel(crashed.parent, "report", "daily", "--as-of", SECOND.isoformat(), db=crashed)
        assert daily.returncode == 0 and "Daily pipeline summary" in daily.stdout
        store = Store.open(crashed)
        latest = store.latest_refresh()
        pipeline = latest.metrics.open_pipeline
        assert latest.as_of == SECOND and len(store.scores(latest.id)) == pipeline["count"] + pipeline["stale_count"]
        store.close()


def test_a_crash_anywhere_in_training_leaves_no_half_model_and_a_rerun_trains(stores, salesintel):
    folder, _, loaded, _ = stores
    _, code, trace = on_a_copy(folder, loaded, "dry-train", "train", "--as-of", SECOND.isoformat())
    assert code == 0 and any("INTO models" in line for line in trace)
    for point in kill_points(trace):
        crashed, code, seen = on_a_copy(
            folder, loaded, f"train-{point}", "train", "--as-of", SECOND.isoformat(), kill_at=point
        )
        assert code == -signal.SIGKILL, (point, code)
        store = Store.open(crashed)
        assert [m["snapshot_id"] for m in store.models()] == [1], f"killed before write {point} ({seen[-1]})"
        store.close()
        rerun = salesintel(crashed.parent, "train", "--as-of", SECOND.isoformat(), db=crashed)
        assert rerun.returncode == 0, (point, rerun.stderr)
        assert [m["snapshot_id"] for m in Store.open(crashed).models()] == [1, 2]
