"""The `leases` table: which process holds a named role (the scheduler and delivery), and until when.

A lease is taken or renewed in one statement inside a write transaction: its holder renews it before it expires;
anyone may take it once it has. So of any number of processes on one store, at most one holds it at a time, and a
dead holder's lease passes to another within its time to live.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from salesintel.engine.store.connections import SqlConnection


def _at(moment: datetime) -> str:
    """Times are compared as text, so all are written in UTC with one format."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class LeaseRows:
    def __init__(self, connection: SqlConnection):
        self._conn = connection

    def acquire(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease (inside the caller's transaction); True when `holder` holds it afterwards."""
        self._conn.execute(
            "INSERT INTO leases (name, holder, expires_at, acquired_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,"
            " acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at"
            " ELSE excluded.acquired_at END"
            " WHERE leases.holder = excluded.holder OR leases.expires_at < ?",
            [name, holder, _at(now + ttl), _at(now), _at(now)],
        )
        row = self._conn.execute("SELECT holder FROM leases WHERE name = ?", [name]).fetchone()
        return row is not None and row[0] == holder

    def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean shutdown), so another process need not wait for it to expire."""
        self._conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", [name, holder])

    def holder(self, name: str, now: datetime) -> tuple[str, datetime] | None:
        """Who holds the lease and until when, if anyone does now."""
        row = self._conn.execute("SELECT holder, expires_at FROM leases WHERE name = ?", [name]).fetchone()
        if row is None or row[1] < _at(now):
            return None
        return row[0], datetime.fromisoformat(row[1])
