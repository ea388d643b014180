"""The `alerts` table: alert episodes and what people did about them.

Writes join the caller's transaction (`store.transaction()`), so a run records an alert and queues its messages
together. Acknowledge and snooze are each one compare-and-set statement: of any number of concurrent clicks,
exactly one changes the row.
"""

from __future__ import annotations

import json
from datetime import datetime

from salesintel.engine.store.connections import SqlConnection
from salesintel.engine.store.records import (
    ALERT_ACKNOWLEDGED,
    ALERT_OPEN,
    ALERT_RESOLVED,
    ALERT_SNOOZED,
    Alert,
    ThresholdChange,
)


class AlertRows:
    def __init__(self, connection: SqlConnection):
        self._conn = connection

    def _alerts(self, where: str, params: list, tail: str = "") -> list[Alert]:
        cursor = self._conn.execute(f"SELECT * FROM alerts WHERE {where} {tail}", params)
        names = [column[0] for column in cursor.description]
        return [Alert.from_row(dict(zip(names, row))) for row in cursor.fetchall()]

    def get(self, alert_id: int) -> Alert | None:
        found = self._alerts("id = ?", [alert_id])
        return found[0] if found else None

    def latest_episode(self, rule: str, deal_id: str) -> Alert | None:
        found = self._alerts("rule = ? AND deal_id = ?", [rule, deal_id], "ORDER BY episode DESC LIMIT 1")
        return found[0] if found else None

    def active(self, rule: str | None = None) -> list[Alert]:
        """Every episode not resolved (optionally of one rule), oldest first."""
        if rule:
            return self._alerts("state != ? AND rule = ?", [ALERT_RESOLVED, rule], "ORDER BY id")
        return self._alerts("state != ?", [ALERT_RESOLVED], "ORDER BY id")

    def active_for_deal(self, deal_id: str) -> list[Alert]:
        return self._alerts("deal_id = ? AND state != ?", [deal_id, ALERT_RESOLVED], "ORDER BY id")

    def listing(self, states: list[str] | None = None, limit: int = 200) -> list[Alert]:
        """The newest `limit` episodes, optionally only in some states."""
        if states:
            marks = ", ".join("?" for _ in states)
            return self._alerts(f"state IN ({marks})", [*states, limit], "ORDER BY id DESC LIMIT ?")
        return self._alerts("1 = 1", [limit], "ORDER BY id DESC LIMIT ?")

    def audiences(self, limit: int) -> list[tuple[int, tuple[str, ...], bool]]:
        """(id, recipients, held back) of the newest `limit` episodes: who may see each, without reading the rest."""
        rows = self._conn.execute(
            "SELECT id, recipients, control FROM alerts ORDER BY id DESC LIMIT ?", [limit]
        ).fetchall()
        return [(row[0], tuple(json.loads(row[1] or "[]")), bool(row[2])) for row in rows]

    def by_ids(self, ids: list[int]) -> list[Alert]:
        """These episodes, newest first."""
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        return self._alerts(f"id IN ({marks})", list(ids), "ORDER BY id DESC")

    def episodes_of_deal(self, deal_id: str) -> list[Alert]:
        """Every episode of every rule on one deal, newest first."""
        return self._alerts("deal_id = ?", [deal_id], "ORDER BY id DESC")

    def deals_of_rule(self, rule: str) -> list[tuple[str, bool]]:
        """(deal id, held back) for every deal that had an episode of `rule`."""
        rows = self._conn.execute("SELECT DISTINCT deal_id, control FROM alerts WHERE rule = ?", [rule]).fetchall()
        return [(deal_id, bool(control)) for deal_id, control in rows]

    def counts(self) -> dict[tuple[str, str, bool], int]:
        """(rule, state, held back as control) → episodes."""
        rows = self._conn.execute("SELECT rule, state, control, COUNT(*) FROM alerts GROUP BY rule, state, control")
        return {(rule, state, bool(control)): n for rule, state, control, n in rows.fetchall()}

    def counts_since(self, since: datetime) -> dict[str, int]:
        """Episodes opened (sent and held back), repeats sent and acknowledgements since `since`."""
        row = self._conn.execute(
            "SELECT SUM(CASE WHEN first_at >= ? AND control = 0 THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN first_at >= ? AND control = 1 THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN last_sent_at >= ? AND sends > 1 THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN acked_at >= ? THEN 1 ELSE 0 END) FROM alerts",
            [since.isoformat()] * 4,
        ).fetchone()
        return {k: int(v or 0) for k, v in zip(("new", "held_back", "repeat", "acknowledged"), row)}

    def feedback_since(self, since: datetime) -> list[tuple[str, str, bool]]:
        """(rule, the alert's payload as JSON, useful) for every answer given since `since`."""
        rows = self._conn.execute(
            "SELECT a.rule, a.payload, f.useful FROM alert_feedback AS f JOIN alerts AS a ON a.id = f.alert_id"
            " WHERE f.at >= ? ORDER BY f.alert_id, f.user_id",
            [since.isoformat()],
        ).fetchall()
        return [(rule, payload, bool(useful)) for rule, payload, useful in rows]

    def threshold_changes(self, rule: str | None = None) -> list[ThresholdChange]:
        """Every threshold change (of `rule`), oldest first."""
        where, params = ("WHERE rule = ?", [rule]) if rule else ("", [])
        cursor = self._conn.execute(f"SELECT * FROM threshold_changes {where} ORDER BY id", params)
        names = [column[0] for column in cursor.description]
        return [ThresholdChange.from_row(dict(zip(names, row))) for row in cursor.fetchall()]

    # writes (inside the caller's transaction) ----------------------------------------------------------

    def record_threshold_change(
        self,
        rule: str,
        decided_at: datetime,
        threshold_offset: float,
        old_threshold: float | None,
        new_threshold: float | None,
        bounds: tuple[float, float],
        reason: str,
        evidence: dict,
    ) -> int:
        return self._conn.execute(
            "INSERT INTO threshold_changes (rule, decided_at, threshold_offset, old_threshold, new_threshold,"
            " min_threshold, max_threshold, reason, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [
                rule,
                decided_at.isoformat(),
                threshold_offset,
                old_threshold,
                new_threshold,
                bounds[0],
                bounds[1],
                reason,
                json.dumps(evidence, default=str),
            ],
        ).fetchone()[0]

    def record_feedback(self, alert_id: int, user: str, useful: bool, now: datetime) -> bool:
        """One answer per person and alert, the latest kept; True when this call changed what is recorded."""
        cursor = self._conn.execute(
            "INSERT INTO alert_feedback (alert_id, user_id, useful, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (alert_id, user_id) DO UPDATE SET useful = excluded.useful, at = excluded.at"
            " WHERE alert_feedback.useful != excluded.useful",
            [alert_id, user, int(useful), now.isoformat()],
        )
        return cursor.rowcount == 1

    def open_episode(
        self,
        rule: str,
        deal_id: str,
        episode: int,
        risk: float,
        control: bool,
        recipients: list[str],
        payload: dict,
        now: datetime,
    ) -> Alert:
        """A new episode; unless held back it counts as sent now."""
        sent_at, sent_risk, sends = (None, None, 0) if control else (now.isoformat(), risk, 1)
        cursor = self._conn.execute(
            "INSERT INTO alerts (key, rule, deal_id, episode, state, control, risk, last_sent_risk, sends, first_at,"
            " last_sent_at, recipients, payload, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING id",
            [
                f"{rule}:{deal_id}:{episode}",
                rule,
                deal_id,
                episode,
                ALERT_OPEN,
                int(control),
                risk,
                sent_risk,
                sends,
                now.isoformat(),
                sent_at,
                json.dumps(recipients),
                json.dumps(payload),
                now.isoformat(),
            ],
        )
        return self.get(cursor.fetchone()[0])

    def record_repeat(self, alert_id: int, risk: float, now: datetime) -> None:
        self._conn.execute(
            "UPDATE alerts SET state = ?, snoozed_until = NULL, risk = ?, last_sent_risk = ?, sends = sends + 1,"
            " last_sent_at = ?, updated_at = ? WHERE id = ?",
            [ALERT_OPEN, risk, risk, now.isoformat(), now.isoformat(), alert_id],
        )

    def record_risk(self, alert_id: int, risk: float, now: datetime) -> None:
        self._conn.execute("UPDATE alerts SET risk = ?, updated_at = ? WHERE id = ?", [risk, now.isoformat(), alert_id])

    def resolve(self, alert_id: int, resolution: str, now: datetime) -> None:
        self._conn.execute(
            "UPDATE alerts SET state = ?, resolved_at = ?, resolution = ?, updated_at = ? WHERE id = ?",
            [ALERT_RESOLVED, now.isoformat(), resolution, now.isoformat(), alert_id],
        )

    def acknowledge(self, alert_id: int, user: str, now: datetime) -> bool:
        """Acknowledge unless already acknowledged or resolved; True when this call changed the row."""
        cursor = self._conn.execute(
            "UPDATE alerts SET state = ?, acked_by = ?, acked_at = ?, snoozed_until = NULL, updated_at = ?"
            " WHERE id = ? AND state NOT IN (?, ?)",
            [ALERT_ACKNOWLEDGED, user, now.isoformat(), now.isoformat(), alert_id, ALERT_ACKNOWLEDGED, ALERT_RESOLVED],
        )
        return cursor.rowcount == 1

    def snooze(self, alert_id: int, until: datetime, user: str, now: datetime, seen: datetime | None) -> bool:
        """Snooze an open or snoozed episode, if its snooze is still `seen` (what the caller read: compare and set);
        True when this call changed it."""
        cursor = self._conn.execute(
            "UPDATE alerts SET state = ?, snoozed_until = ?, acked_by = ?, updated_at = ?"
            " WHERE id = ? AND state IN (?, ?) AND COALESCE(snoozed_until, '') = ?",
            [
                ALERT_SNOOZED,
                until.isoformat(),
                user,
                now.isoformat(),
                alert_id,
                ALERT_OPEN,
                ALERT_SNOOZED,
                seen.isoformat() if seen else "",
            ],
        )
        return cursor.rowcount == 1
