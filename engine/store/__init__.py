"""The store layer: the one owner of salesintel's database — its schema, every query, and `Store.transaction()`.

- `schema`: the tables and their versioned migrations.
- `database`: `Store` (snapshots, deals, refreshes, scores, models, Slack users) and `ThreadLocalStore`.
- `alert_rows`, `outbox_rows`, `job_runs`: the alert engine's tables, reached as `store.alerts`, `store.outbox`
  and `store.job_runs`.
- `records`: the typed, immutable records rows are decoded into.
- `transactions`: how writes are grouped.
"""

from salesintel.engine.store.database import Store, ThreadLocalStore
from salesintel.engine.store.records import (
    Alert,
    OutboxMessage,
    Refresh,
    Snapshot,
    StoredModel,
    StoreError,
    ThresholdChange,
)
from salesintel.engine.store.schema import MIGRATIONS

__all__ = [
    "MIGRATIONS",
    "Alert",
    "OutboxMessage",
    "Refresh",
    "Snapshot",
    "Store",
    "StoreError",
    "StoredModel",
    "ThreadLocalStore",
    "ThresholdChange",
]
