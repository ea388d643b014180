"""The outbox: every message to deliver, written in the same transaction as the alert that caused it.

Each row has a dedupe key (unique), so rerunning a job, or two processes racing, never queues a message twice.
Its status moves pending → sending → sent (or failed); "sending" is written and committed before the Slack call,
so after a crash the one message that was in flight is the only one that can be delivered twice: `recover`
puts it back to pending and notes it. Realtime messages over a recipient's daily cap are queued as "folded" and
picked up by the next daily summary instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from salesintel.alerts.render import Message
from salesintel.engine.store import Store

PENDING, SENDING, SENT, FAILED, FOLDED, DIGESTED = "pending", "sending", "sent", "failed", "folded", "digested"


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    dedupe_key: str
    kind: str
    target: str
    """`channel:#name`, `channel:C123`, `user:<rep or manager id>` or `slack:U123`."""
    text: str
    blocks: list[dict]
    attempts: int
    alert_id: int | None


class Outbox:
    def __init__(self, store: Store):
        self.store, self.conn = store, store.db.conn

    def enqueue(
        self,
        dedupe_key: str,
        kind: str,
        target: str,
        message: Message,
        now: datetime,
        alert_id: int | None = None,
        status: str = PENDING,
        note: str | None = None,
    ) -> bool:
        """Queue a message (inside the caller's transaction); False when this dedupe key was queued before."""
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO outbox (dedupe_key, alert_id, kind, target, text, blocks, status, attempts,"
            " next_attempt_at, created_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            [
                dedupe_key,
                alert_id,
                kind,
                target,
                message.text,
                json.dumps(message.blocks),
                status,
                now.isoformat(),
                now.isoformat(),
                note,
            ],
        )
        return cursor.rowcount == 1

    def recover(self) -> int:
        """After a crash: messages left "sending" go back to pending (each may be delivered a second time)."""
        with self.store.transaction():
            cursor = self.conn.execute(
                "UPDATE outbox SET status = ?, note = 'was in flight at a crash; may be delivered twice'"
                " WHERE status = ?",
                [PENDING, SENDING],
            )
        return cursor.rowcount

    def due(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        cursor = self.conn.execute(
            "SELECT id, dedupe_key, kind, target, text, blocks, attempts, alert_id FROM outbox"
            " WHERE status = ? AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            [PENDING, now.isoformat(), limit],
        )
        return [OutboxMessage(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7]) for r in cursor.fetchall()]

    def mark_sending(self, message_id: int) -> None:
        with self.store.transaction():
            self.conn.execute(
                "UPDATE outbox SET status = ?, attempts = attempts + 1 WHERE id = ?", [SENDING, message_id]
            )

    def mark_sent(self, message_id: int, now: datetime, channel: str | None, ts: str | None) -> None:
        with self.store.transaction():
            self.conn.execute(
                "UPDATE outbox SET status = ?, sent_at = ?, slack_channel = ?, slack_ts = ? WHERE id = ?",
                [SENT, now.isoformat(), channel, ts, message_id],
            )

    def mark_retry(self, message_id: int, at: datetime, error: str) -> None:
        with self.store.transaction():
            self.conn.execute(
                "UPDATE outbox SET status = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                [PENDING, at.isoformat(), error, message_id],
            )

    def mark_failed(self, message_id: int, error: str) -> None:
        with self.store.transaction():
            self.conn.execute("UPDATE outbox SET status = ?, last_error = ? WHERE id = ?", [FAILED, error, message_id])

    def folded(self) -> list[dict]:
        """Capped realtime messages not yet shown in a digest."""
        cursor = self.conn.execute("SELECT id, target, text FROM outbox WHERE status = ? ORDER BY id", [FOLDED])
        return [{"id": r[0], "target": r[1].split(":", 1)[-1], "summary": r[2]} for r in cursor.fetchall()]

    def mark_digested(self, ids: list[int]) -> None:
        """Inside the caller's transaction (the one that queues the digest)."""
        self.conn.executemany("UPDATE outbox SET status = ? WHERE id = ?", [(DIGESTED, i) for i in ids])

    def count_for_target_since(self, kind: str, target: str, since: datetime) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE kind = ? AND target = ? AND created_at >= ? AND status != ?",
            [kind, target, since.isoformat(), FOLDED],
        ).fetchone()
        return int(row[0])

    def statuses(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())

    def rows(self, status: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM outbox", []
        if status:
            sql, params = sql + " WHERE status = ?", [status]
        cursor = self.conn.execute(sql + " ORDER BY id", params)
        return [_named(cursor, r) for r in cursor.fetchall()]


def _named(cursor, row) -> dict:
    return {c[0]: v for c, v in zip(cursor.description, row)}
