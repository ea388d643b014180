"""Copying a whole store into another: how a SQLite store moves to PostgreSQL (or a PostgreSQL one is taken back
to a file).

The target must be new: migrated to the same schema version and without snapshots or alerts, so no id is ever
given twice. Tables are copied parents first (snapshots before their deals), in batches, inside one transaction on
the target: a copy that fails leaves the target as empty as it was. Leases and remembered request signatures are
not copied: they describe processes running on the source, and lapse within minutes anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from salesintel.engine.store.database import Store, nul_shown
from salesintel.engine.store.records import StoreError

COPY_ORDER = (
    "snapshots",
    "deals",
    "rejects",
    "snapshot_frames",
    "models",
    "refreshes",
    "refresh_reasons",
    "scores",
    "alerts",
    "alert_feedback",
    "threshold_changes",
    "outbox",
    "job_runs",
    "slack_users",
)
"""Every table holding state worth moving, each after the tables it refers to."""

NOT_COPIED = ("leases", "accepted_signatures")
"""Tables describing the running processes of the source (see the module's docstring)."""

BATCH_ROWS = 20_000


def copy_store(source: Store, target: Store, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy every row of `source` into the empty `target`; rows copied by table."""
    if source.schema_version != target.schema_version:
        raise StoreError(
            f"{target.target} is at schema version {target.schema_version}, {source.target} at"
            f" {source.schema_version}: open both with this salesintel first (`salesintel migrate`)"
        )
    unknown = set(source.conn.tables()) - set(COPY_ORDER) - set(NOT_COPIED)
    if unknown:  # a table added by a migration but not listed here would be silently left behind
        raise StoreError(f"no copy rule for the tables {', '.join(sorted(unknown))}")
    occupied = [table for table in ("snapshots", "alerts", "outbox") if _count(target, table)]
    if occupied:
        raise StoreError(f"{target.target} is not empty (it has {', '.join(occupied)}): copy into a new store")
    copied: dict[str, int] = {}
    with target.transaction():
        for table in COPY_ORDER:
            columns = source.conn.columns(table)
            copied[table] = 0
            for rows in source.conn.stream(f"SELECT {', '.join(columns)} FROM {table}", BATCH_ROWS):
                if target.dialect == "postgresql" and source.dialect == "sqlite":  # a file may hold NUL bytes
                    rows = [tuple(nul_shown(value) for value in row) for row in rows]
                target.conn.bulk_insert(table, columns, rows)
                copied[table] += len(rows)
                if progress:
                    progress(table, copied[table])
            target.conn.after_copy(table, columns)
    return copied


def _count(store: Store, table: str) -> int:
    return int(store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
