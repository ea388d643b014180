"""One refresh: take the newest snapshot, compute everything as of a date, and keep the result in the store."""

from __future__ import annotations

from datetime import date, datetime

from engine.metrics import compute_metrics
from engine.settings import MetricsSettings
from engine.store import Refresh, Store


class RefreshError(Exception):
    """A refresh cannot run (no snapshot yet, a date before the data begins); the message says what to do."""


def refresh(store: Store, settings: MetricsSettings, as_of: date | None, now: datetime) -> Refresh:
    """Compute metrics for the newest snapshot as of `as_of` (default: the day the snapshot was taken)."""
    snapshot = store.latest_snapshot()
    if snapshot is None:
        raise RefreshError("the store holds no snapshot yet: run `salesintel ingest PATH` first")
    taken = snapshot.taken_at.date()
    as_of = as_of or taken
    deals = store.deals(snapshot.id)
    if deals.empty:
        raise RefreshError(f"snapshot #{snapshot.id} has no valid deals (see its rejects)")
    first_created = deals["created_date"].min()
    if as_of < first_created.date():
        raise RefreshError(f"as-of date {as_of} is before the first deal in snapshot #{snapshot.id} "
                           f"(created {first_created:%Y-%m-%d})")  # fmt: skip
    metrics = compute_metrics(deals, as_of, taken, settings)
    metrics["snapshot"] = {"id": snapshot.id, "source": snapshot.source, "taken_at": snapshot.taken_at.isoformat()}
    refresh_id = store.save_refresh(snapshot.id, as_of, now, metrics)
    return Refresh(refresh_id, snapshot.id, as_of, now, metrics)
