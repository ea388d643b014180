"""The `outbox` table: every message to deliver, with its dedupe key and delivery status (see `alerts.outbox`)."""

from __future__ import annotations

import json
from datetime import datetime

from salesintel.engine.store.connections import SqlConnection
from salesintel.engine.store.records import OUTBOX_FOLDED, OutboxMessage


class OutboxRows:
    def __init__(self, connection: SqlConnection):
        self._conn = connection

    def _messages(self, where: str, params: list, tail: str = "") -> list[OutboxMessage]:
        cursor = self._conn.execute(f"SELECT * FROM outbox WHERE {where} ORDER BY id {tail}", params)
        names = [column[0] for column in cursor.description]
        return [OutboxMessage.from_row(dict(zip(names, row))) for row in cursor.fetchall()]

    def insert(
        self,
        dedupe_key: str,
        kind: str,
        target: str,
        text: str,
        blocks: list[dict],
        status: str,
        now: datetime,
        alert_id: int | None,
        note: str | None,
        attachments: list[dict] | None = None,
    ) -> bool:
        """Queue a message (inside the caller's transaction); False when this dedupe key was queued before."""
        cursor = self._conn.execute(
            "INSERT INTO outbox (dedupe_key, alert_id, kind, target, text, blocks, status, attempts,"
            " next_attempt_at, created_at, note, attachments) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
            " ON CONFLICT (dedupe_key) DO NOTHING",
            [
                dedupe_key,
                alert_id,
                kind,
                target,
                text,
                json.dumps(blocks),
                status,
                now.isoformat(),
                now.isoformat(),
                note,
                json.dumps(attachments) if attachments else None,
            ],
        )
        return cursor.rowcount == 1

    def due(self, status: str, now: datetime, limit: int) -> list[OutboxMessage]:
        """Messages in `status` whose next attempt is due, oldest first."""
        return self._messages("status = ? AND next_attempt_at <= ?", [status, now.isoformat(), limit], "LIMIT ?")

    def in_status(self, status: str | None = None) -> list[OutboxMessage]:
        return self._messages("status = ?", [status]) if status else self._messages("1 = 1", [])

    def set_status(self, message_ids: list[int], status: str) -> None:
        self._conn.executemany("UPDATE outbox SET status = ? WHERE id = ?", [(status, i) for i in message_ids])

    def claim(self, message_id: int, pending: str, sending: str, holder: str, now: datetime, until: datetime) -> bool:
        """Claim a due pending message for sending, in one statement: of several processes trying at once, exactly
        one gets it (True). The claim names the process and lasts until `until`.

        On PostgreSQL the row is picked `FOR UPDATE SKIP LOCKED`: a replica never waits on a row another is claiming
        or sending, it moves on (and the compare-and-set above still decides who got it)."""
        cursor = self._conn.execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, claimed_by = ?, claim_expires_at = ?"
            " WHERE id = (SELECT id FROM outbox WHERE id = ? AND status = ? AND next_attempt_at <= ?"
            f"{self._conn.skip_locked})",
            [sending, holder, until.isoformat(), message_id, pending, now.isoformat()],
        )
        return cursor.rowcount == 1

    def orphaned_claims(self, sending: str, holder: str) -> list[OutboxMessage]:
        """Messages in flight under a claim that is not `holder`'s, oldest first. Only the lease holder sends, so
        when it calls this, every other claim belongs to a process that died or lost the lease mid-send."""
        return self._messages("status = ? AND (claimed_by IS NULL OR claimed_by != ?)", [sending, holder])

    def release_claim(self, message_id: int, sending: str, pending: str, note: str) -> bool:
        """An expired claim back to pending (only if it is still in flight), noted."""
        cursor = self._conn.execute(
            "UPDATE outbox SET status = ?, note = ?, claimed_by = NULL, claim_expires_at = NULL"
            " WHERE id = ? AND status = ?",
            [pending, note, message_id, sending],
        )
        return cursor.rowcount == 1

    def mark_sent(
        self, message_id: int, status: str, now: datetime, channel: str | None, ts: str | None, note: str | None = None
    ) -> None:
        self._conn.execute(
            "UPDATE outbox SET status = ?, sent_at = ?, slack_channel = ?, slack_ts = ?, note = COALESCE(?, note),"
            " claimed_by = NULL, claim_expires_at = NULL WHERE id = ?",
            [status, now.isoformat(), channel, ts, note, message_id],
        )

    def retry_at(self, message_id: int, status: str, at: datetime, error: str) -> None:
        self._conn.execute(
            "UPDATE outbox SET status = ?, next_attempt_at = ?, last_error = ?, claimed_by = NULL,"
            " claim_expires_at = NULL WHERE id = ?",
            [status, at.isoformat(), error, message_id],
        )

    def defer(self, message_id: int, status: str, at: datetime, note: str) -> None:
        self._conn.execute(
            "UPDATE outbox SET next_attempt_at = ?, note = ? WHERE id = ? AND status = ?",
            [at.isoformat(), note, message_id, status],
        )

    def hold(self, message_id: int, pending: str, held: str, note: str) -> bool:
        """A pending message set aside (for a digest), only if it is still pending: one statement."""
        cursor = self._conn.execute(
            "UPDATE outbox SET status = ?, note = ? WHERE id = ? AND status = ?", [held, note, message_id, pending]
        )
        return cursor.rowcount == 1

    def give_up(self, message_id: int, status: str, error: str) -> None:
        self._conn.execute(
            "UPDATE outbox SET status = ?, last_error = ?, claimed_by = NULL, claim_expires_at = NULL WHERE id = ?",
            [status, error, message_id],
        )

    def first_delivered(self, alert_id: int, target: str, kinds: tuple[str, ...]) -> OutboxMessage | None:
        """The first message of `kinds` about this alert that reached `target` (its thread is the alert's)."""
        marks = ", ".join("?" for _ in kinds)
        found = self._messages(
            f"alert_id = ? AND target = ? AND slack_ts IS NOT NULL AND kind IN ({marks})",
            [alert_id, target, *kinds],
            "LIMIT 1",
        )
        return found[0] if found else None

    def channel_id(self, target: str) -> str | None:
        """The channel the latest delivered message to `target` reached, as Slack answered it (an id)."""
        row = self._conn.execute(
            "SELECT slack_channel FROM outbox WHERE target = ? AND slack_channel IS NOT NULL"
            " AND slack_channel NOT LIKE '#%' ORDER BY id DESC LIMIT 1",
            [target],
        ).fetchone()
        return row[0] if row else None

    def delivered_at(self, channel: str, ts: str) -> OutboxMessage | None:
        """The message Slack holds at (channel, ts), as it was sent."""
        found = self._messages("slack_channel = ? AND slack_ts = ?", [channel, ts], "LIMIT 1")
        return found[0] if found else None

    def count_for_target_since(self, kind: str, target: str, since: datetime) -> int:
        """Messages of `kind` queued for `target` since `since`, not counting folded ones."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE kind = ? AND target = ? AND created_at >= ? AND status != ?",
            [kind, target, since.isoformat(), OUTBOX_FOLDED],
        ).fetchone()
        return int(row[0])

    def counts(self) -> dict[tuple[str, str], int]:
        """(kind, status) → messages: what an operator's metrics show."""
        rows = self._conn.execute("SELECT kind, status, COUNT(*) FROM outbox GROUP BY kind, status").fetchall()
        return {(kind, status): n for kind, status, n in rows}

    def oldest_pending_created_at(self) -> datetime | None:
        """When the oldest message still waiting to be sent was queued (None when nothing waits)."""
        row = self._conn.execute("SELECT MIN(created_at) FROM outbox WHERE status IN ('pending', 'sending')").fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def statuses(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
