"""Alert state in the store: episodes, acknowledgements, snoozes, resolutions.

Writes use the store's connection without committing, so a caller can record an alert and queue its messages
in one transaction (`with store.transaction():`, which opens one explicitly). The user-facing operations
(acknowledge, snooze) commit themselves and are idempotent: repeating one changes nothing and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from salesintel.alerts.episodes import ACKNOWLEDGED, OPEN, RESOLVED, SNOOZED
from salesintel.engine.store import Store


class AlertNotFound(Exception):
    """No alert with that id."""


@dataclass(frozen=True)
class Change:
    """The result of a user operation: the alert row after it, and whether anything changed."""

    alert: dict
    changed: bool


def _row(cursor, row) -> dict:
    return {column[0]: value for column, value in zip(cursor.description, row)}


class AlertLedger:
    def __init__(self, store: Store):
        self.store, self.conn = store, store.db.conn

    def _query(self, sql: str, params: list = ()) -> list[dict]:
        cursor = self.conn.execute(sql, params)
        return [_row(cursor, row) for row in cursor.fetchall()]

    def get(self, alert_id: int) -> dict:
        rows = self._query("SELECT * FROM alerts WHERE id = ?", [alert_id])
        if not rows:
            raise AlertNotFound(f"no alert #{alert_id}")
        return _decode(rows[0])

    def latest_episode(self, rule: str, deal_id: str) -> dict | None:
        rows = self._query(
            "SELECT * FROM alerts WHERE rule = ? AND deal_id = ? ORDER BY episode DESC LIMIT 1", [rule, deal_id]
        )
        return _decode(rows[0]) if rows else None

    def active(self, rule: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM alerts WHERE state != ?", [RESOLVED]
        if rule:
            sql, params = sql + " AND rule = ?", [*params, rule]
        return [_decode(r) for r in self._query(sql + " ORDER BY id", params)]

    def active_for_deal(self, deal_id: str) -> list[dict]:
        rows = self._query("SELECT * FROM alerts WHERE deal_id = ? AND state != ? ORDER BY id", [deal_id, RESOLVED])
        return [_decode(r) for r in rows]

    def listing(self, states: list[str] | None = None, limit: int = 200) -> list[dict]:
        sql, params = "SELECT * FROM alerts", []
        if states:
            sql += f" WHERE state IN ({', '.join('?' for _ in states)})"
            params = list(states)
        return [_decode(r) for r in self._query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])]

    # writes inside the caller's transaction ------------------------------------------------------------

    def open_episode(
        self, rule: str, deal_id: str, risk: float, control: bool, recipients: list[str], payload: dict, now: datetime
    ) -> dict:
        previous = self.latest_episode(rule, deal_id)
        episode = previous["episode"] + 1 if previous else 1
        key = f"{rule}:{deal_id}:{episode}"
        sent_at, sent_risk, sends = (None, None, 0) if control else (now.isoformat(), risk, 1)
        cursor = self.conn.execute(
            "INSERT INTO alerts (key, rule, deal_id, episode, state, control, risk, last_sent_risk, sends, first_at,"
            " last_sent_at, recipients, payload, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                key,
                rule,
                deal_id,
                episode,
                OPEN,
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
        return self.get(cursor.lastrowid)

    def record_repeat(self, alert_id: int, risk: float, now: datetime) -> None:
        self.conn.execute(
            "UPDATE alerts SET state = ?, snoozed_until = NULL, risk = ?, last_sent_risk = ?, sends = sends + 1,"
            " last_sent_at = ?, updated_at = ? WHERE id = ?",
            [OPEN, risk, risk, now.isoformat(), now.isoformat(), alert_id],
        )

    def record_risk(self, alert_id: int, risk: float, now: datetime) -> None:
        self.conn.execute("UPDATE alerts SET risk = ?, updated_at = ? WHERE id = ?", [risk, now.isoformat(), alert_id])

    def resolve(self, alert_id: int, resolution: str, now: datetime) -> None:
        self.conn.execute(
            "UPDATE alerts SET state = ?, resolved_at = ?, resolution = ?, updated_at = ? WHERE id = ?",
            [RESOLVED, now.isoformat(), resolution, now.isoformat(), alert_id],
        )

    # user operations (commit) --------------------------------------------------------------------------

    def acknowledge(self, alert_id: int, user: str, now: datetime) -> Change:
        """No more repeats this episode. A second click (or Slack's retry) changes nothing."""
        with self.store.transaction():
            alert = self.get(alert_id)
            if alert["state"] in (ACKNOWLEDGED, RESOLVED):
                return Change(alert, False)
            self.conn.execute(
                "UPDATE alerts SET state = ?, acked_by = ?, acked_at = ?, snoozed_until = NULL, updated_at = ?"
                " WHERE id = ?",
                [ACKNOWLEDGED, user, now.isoformat(), now.isoformat(), alert_id],
            )
        return Change(self.get(alert_id), True)

    def snooze(self, alert_id: int, until: datetime, user: str, now: datetime) -> Change:
        """Silent until `until`, then re-evaluated. Snoozing again to the same time changes nothing."""
        with self.store.transaction():
            alert = self.get(alert_id)
            if alert["state"] == RESOLVED or (
                alert["state"] == SNOOZED and alert["snoozed_until"] == until.isoformat()
            ):
                return Change(alert, False)
            if alert["state"] == ACKNOWLEDGED:
                return Change(alert, False)
            self.conn.execute(
                "UPDATE alerts SET state = ?, snoozed_until = ?, acked_by = ?, updated_at = ? WHERE id = ?",
                [SNOOZED, until.isoformat(), user, now.isoformat(), alert_id],
            )
        return Change(self.get(alert_id), True)

    # figures for reports -------------------------------------------------------------------------------

    def control_outcomes(self, rule: str, outcomes: dict[str, str | None]) -> tuple[list[bool], list[bool]]:
        """Won/lost of closed deals that had an alert episode of `rule`: (alerted, held back)."""
        alerted, held = [], []
        for row in self._query("SELECT DISTINCT deal_id, control FROM alerts WHERE rule = ?", [rule]):
            outcome = outcomes.get(row["deal_id"])
            if outcome in ("Won", "Lost"):
                (held if row["control"] else alerted).append(outcome == "Won")
        return alerted, held

    def counts_since(self, since: datetime) -> dict:
        rows = self._query(
            "SELECT SUM(first_at >= ? AND control = 0) AS new, SUM(first_at >= ? AND control = 1) AS held_back,"
            " SUM(last_sent_at >= ? AND sends > 1) AS repeat, SUM(acked_at >= ?) AS acknowledged FROM alerts",
            [since.isoformat()] * 4,
        )
        return {k: int(v or 0) for k, v in rows[0].items()}


def _decode(row: dict) -> dict:
    return {**row, "recipients": json.loads(row["recipients"] or "[]"), "payload": json.loads(row["payload"] or "{}")}
