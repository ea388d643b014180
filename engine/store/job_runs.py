"""The `job_runs` table: one row per scheduled job and fire time, claimed before the job runs (see `alerts.schedule`).

The (job, fire_time) primary key is the claim: of two processes that reach the same fire time, one inserts the row
and runs the job, the other's insert fails and it skips.
"""

from __future__ import annotations

from datetime import datetime

from salesintel.engine.store.connections import SqlConnection


class JobRunRows:
    def __init__(self, connection: SqlConnection):
        self._conn = connection

    def latest_finished(self) -> dict[str, tuple[str, datetime, datetime]]:
        """job → (status, claimed_at, finished_at) of its newest finished run."""
        rows = self._conn.execute(
            "SELECT job, status, claimed_at, finished_at FROM job_runs AS run WHERE finished_at IS NOT NULL"
            " AND fire_time = (SELECT MAX(fire_time) FROM job_runs WHERE job = run.job AND finished_at IS NOT NULL)"
        ).fetchall()
        return {
            job: (status, datetime.fromisoformat(claimed), datetime.fromisoformat(finished))
            for job, status, claimed, finished in rows
            if claimed
        }

    def last_fire_time(self, job: str) -> datetime | None:
        row = self._conn.execute("SELECT MAX(fire_time) FROM job_runs WHERE job = ?", [job]).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def claim(self, job: str, fire_time: str, status: str, now: datetime, note: str | None) -> bool:
        """Insert the run's row (inside the caller's transaction); False when another process claimed it first."""
        cursor = self._conn.execute(
            "INSERT INTO job_runs (job, fire_time, status, claimed_at, note) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (job, fire_time) DO NOTHING",
            [job, fire_time, status, now.isoformat(), note],
        )
        # ON CONFLICT, not a caught error: on PostgreSQL an error aborts the caller's whole transaction
        return cursor.rowcount == 1

    def finish(self, job: str, fire_time: str, status: str, now: datetime, note: str | None) -> None:
        self._conn.execute(
            "UPDATE job_runs SET status = ?, finished_at = ?, note = ? WHERE job = ? AND fire_time = ?",
            [status, now.isoformat(), note, job, fire_time],
        )
