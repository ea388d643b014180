"""The outbox: every message to deliver, written in the same transaction as the alert that caused it.

Each row has a dedupe key (unique), so rerunning a job, or two processes racing, never queues a message twice.
Its status moves pending → sending → sent (or failed); "sending" is a claim naming the process, committed before
the Slack call, so after a crash only the message that was in flight is in doubt: the next sender looks for it in
Slack before sending it again (`Deliverer.recover_orphans`). Realtime messages over a recipient's daily cap are
queued as "folded" and picked up by the next daily summary instead.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

from salesintel.alerts.render import Message
from salesintel.engine.store import OutboxMessage, Store, records

PENDING, SENDING, SENT = records.OUTBOX_PENDING, records.OUTBOX_SENDING, records.OUTBOX_SENT
FAILED, FOLDED, DIGESTED = records.OUTBOX_FAILED, records.OUTBOX_FOLDED, records.OUTBOX_DIGESTED

ALERT_KINDS = ("realtime",)
"""Kinds that open an alert's conversation with a recipient: its first such message holds the thread."""
RESOLUTION_KIND = "resolution"
THREADED_KINDS = (*ALERT_KINDS, RESOLUTION_KIND)
"""Kinds that follow an alert up in that thread once it exists (a repeat is a later realtime message)."""
CHART_KIND = "chart"
"""A report's chart, uploaded into the thread of the message it belongs to once that message is posted. A row of
its own, queued in the transaction that marks the message sent: a failed upload is retried like any message, and
one that reached Slack before a crash is found in the thread, not uploaded twice."""

__all__ = ["CHART_KIND", "DIGESTED", "FAILED", "FOLDED", "PENDING", "SENDING", "SENT", "Outbox", "OutboxMessage"]


class Outbox:
    def __init__(self, store: Store):
        self.store, self._rows = store, store.outbox

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
        attachments = [
            {"name": f.name, "title": f.title, "alt": f.alt, "png": base64.b64encode(f.png).decode()}
            for f in message.files
        ]
        return self._rows.insert(
            dedupe_key, kind, target, message.text, message.blocks, status, now, alert_id, note, attachments
        )

    def due(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        return self._rows.due(PENDING, now, limit)

    def claim(self, message_id: int, holder: str, now: datetime, hold: timedelta) -> bool:
        """Take a due message for sending; False when another process took it first (or it is no longer due)."""
        with self.store.transaction():
            return self._rows.claim(message_id, PENDING, SENDING, holder, now, now + hold)

    def orphans(self, holder: str) -> list[OutboxMessage]:
        """Messages a dead (or former) sender left in flight: each may or may not have reached Slack."""
        return self._rows.orphaned_claims(SENDING, holder)

    def requeue(self, message_id: int, note: str) -> bool:
        with self.store.transaction():
            return self._rows.release_claim(message_id, SENDING, PENDING, note)

    def mark_sent(
        self,
        message_id: int,
        now: datetime,
        channel: str | None,
        ts: str | None,
        note: str | None = None,
        charts_of: OutboxMessage | None = None,
    ) -> None:
        """Sent, at (channel, ts); with `charts_of` (the message itself), its charts are queued in the same
        transaction, each to be uploaded into the thread at (channel, ts)."""
        with self.store.transaction():
            self._rows.mark_sent(message_id, SENT, now, channel, ts, note)
            for chart in charts_of.attachments if charts_of is not None else ():
                self._rows.insert(
                    f"{charts_of.dedupe_key}:chart:{chart['name']}",
                    CHART_KIND,
                    charts_of.target,
                    chart["title"],
                    [],
                    PENDING,
                    now,
                    charts_of.alert_id,
                    f"chart of outbox #{charts_of.id}",
                    [{**chart, "report": charts_of.kind, "channel": channel, "thread_ts": ts}],
                )

    def mark_retry(self, message_id: int, at: datetime, error: str) -> None:
        with self.store.transaction():
            self._rows.retry_at(message_id, PENDING, at, error)

    def defer(self, message_id: int, until: datetime, note: str) -> None:
        """A pending message waits until `until` (quiet hours); not an attempt, not an error."""
        with self.store.transaction():
            self._rows.defer(message_id, PENDING, until, note)

    def fold(self, message_id: int, note: str) -> bool:
        """A pending message is held for the next daily digest instead of being sent (quiet hours); False when it
        is no longer pending (another process took it)."""
        with self.store.transaction():
            return self._rows.hold(message_id, PENDING, FOLDED, note)

    def mark_failed(self, message_id: int, error: str) -> None:
        with self.store.transaction():
            self._rows.give_up(message_id, FAILED, error)

    def folded(self) -> list[dict]:
        """Capped realtime messages not yet shown in a digest."""
        return [
            {"id": m.id, "target": m.target.split(":", 1)[-1], "summary": m.text} for m in self._rows.in_status(FOLDED)
        ]

    def mark_digested(self, ids: list[int]) -> None:
        """Inside the caller's transaction (the one that queues the digest)."""
        self._rows.set_status(ids, DIGESTED)

    def count_for_target_since(self, kind: str, target: str, since: datetime) -> int:
        return self._rows.count_for_target_since(kind, target, since)

    def statuses(self) -> dict[str, int]:
        return self._rows.statuses()

    def first_delivered(self, alert_id: int, target: str) -> OutboxMessage | None:
        """The alert's first real-time message that reached `target`: its thread is where follow-ups go."""
        return self._rows.first_delivered(alert_id, target, ALERT_KINDS)

    def channel_id(self, target: str) -> str | None:
        """The Slack channel id an earlier message to `target` (a `channel:#name`) reached, if any did."""
        return self._rows.channel_id(target)

    def delivered_at(self, channel: str, ts: str) -> OutboxMessage | None:
        """The message posted at (channel, ts), if it went out through the outbox."""
        return self._rows.delivered_at(channel, ts)

    def rows(self, status: str | None = None) -> list[OutboxMessage]:
        """Every message (or those in one status), oldest first."""
        return self._rows.in_status(status)
