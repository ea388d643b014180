"""Alert state: episodes, acknowledgements, snoozes, resolutions — the rules around the store's `alerts` table.

Writes join the caller's transaction, so a run records an alert and queues its messages in one transaction
(`with store.transaction():`). The user-facing operations (acknowledge, snooze) are each one compare-and-set
statement and are idempotent: repeating one changes nothing and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from salesintel.alerts.episodes import ACKNOWLEDGED, RESOLVED, SNOOZED
from salesintel.engine.records import ScoredDeal
from salesintel.engine.store import Alert, Store

SAME_SNOOZE = timedelta(hours=1)
"""Two snoozes whose ends are closer than this are the same snooze (a double click: each computes now + 1 day)."""


class AlertNotFound(Exception):
    """No alert with that id."""


@dataclass(frozen=True)
class Change:
    """The result of a user operation: the alert after it, and whether anything changed."""

    alert: Alert
    changed: bool


class AlertLedger:
    def __init__(self, store: Store):
        self.store, self._rows = store, store.alerts

    def get(self, alert_id: int) -> Alert:
        alert = self._rows.get(alert_id)
        if alert is None:
            raise AlertNotFound(f"no alert #{alert_id}")
        return alert

    def latest_episode(self, rule: str, deal_id: str) -> Alert | None:
        return self._rows.latest_episode(rule, deal_id)

    def active(self, rule: str | None = None) -> list[Alert]:
        return self._rows.active(rule)

    def active_for_deal(self, deal_id: str) -> list[Alert]:
        return self._rows.active_for_deal(deal_id)

    def listing(self, states: list[str] | None = None, limit: int = 200) -> list[Alert]:
        return self._rows.listing(states, limit)

    def episodes_of_deal(self, deal_id: str) -> list[Alert]:
        return self._rows.episodes_of_deal(deal_id)

    def audiences(self, limit: int) -> list[tuple[int, tuple[str, ...], bool]]:
        return self._rows.audiences(limit)

    def by_ids(self, ids: list[int]) -> list[Alert]:
        return self._rows.by_ids(ids)

    # writes inside the caller's transaction ------------------------------------------------------------

    def open_episode(
        self, rule: str, deal_id: str, risk: float, control: bool, recipients: list[str], payload: dict, now: datetime
    ) -> Alert:
        """The deal's next episode of `rule` (numbered after its latest)."""
        previous = self._rows.latest_episode(rule, deal_id)
        episode = previous.episode + 1 if previous else 1
        return self._rows.open_episode(rule, deal_id, episode, risk, control, recipients, payload, now)

    def record_repeat(self, alert_id: int, risk: float, now: datetime) -> None:
        self._rows.record_repeat(alert_id, risk, now)

    def record_risk(self, alert_id: int, risk: float, now: datetime) -> None:
        self._rows.record_risk(alert_id, risk, now)

    def resolve(self, alert_id: int, resolution: str, now: datetime) -> None:
        self._rows.resolve(alert_id, resolution, now)

    # user operations (commit) --------------------------------------------------------------------------

    def acknowledge(self, alert_id: int, user: str, now: datetime) -> Change:
        """No more repeats this episode. A second click (or Slack's retry) changes nothing."""
        self.get(alert_id)
        with self.store.transaction():
            changed = self._rows.acknowledge(alert_id, user, now)
        return Change(self.get(alert_id), changed)

    def snooze(self, alert_id: int, until: datetime, user: str, now: datetime) -> Change:
        """Silent until `until`, then re-evaluated. Snoozing an alert again to within an hour of its snooze (the
        same button clicked twice, or by two people), or snoozing an acknowledged or resolved alert, changes
        nothing; a later choice ("1 week" after "1 day") moves it. Of concurrent clicks exactly one changes it."""
        alert = self.get(alert_id)
        if alert.state in (ACKNOWLEDGED, RESOLVED):
            return Change(alert, False)
        if alert.state == SNOOZED and alert.snoozed_until and abs(alert.snoozed_until - until) < SAME_SNOOZE:
            return Change(alert, False)
        with self.store.transaction():
            changed = self._rows.snooze(alert_id, until, user, now, alert.snoozed_until)
        return Change(self.get(alert_id), changed)

    # figures for reports -------------------------------------------------------------------------------

    def control_outcomes(self, rule: str, outcomes: dict[str, str | None]) -> tuple[list[bool], list[bool]]:
        """Won/lost of closed deals that had an alert episode of `rule`: (alerted, held back)."""
        alerted, held = [], []
        for deal_id, control in self._rows.deals_of_rule(rule):
            outcome = outcomes.get(deal_id)
            if outcome in ("Won", "Lost"):
                (held if control else alerted).append(outcome == "Won")
        return alerted, held

    def counts_since(self, since: datetime) -> dict[str, int]:
        return self._rows.counts_since(since)

    def record_feedback(self, alert_id: int, user: str, useful: bool, now: datetime) -> bool:
        """Record a recipient's "Useful" / "Not useful"; True when it changed what was recorded."""
        if self.get(alert_id) is None:
            raise AlertNotFound(alert_id)
        with self.store.transaction():
            return self._rows.record_feedback(alert_id, user, useful, now)

    def feedback_summary(self, since: datetime) -> dict:
        """Answers since `since`, by rule and by the alerted deal's owner: {"rules": {rule: (useful, not useful)},
        "reps": {rep: (useful, not useful)}, "answers": n}."""
        rules: dict[str, list[int]] = {}
        reps: dict[str, list[int]] = {}
        answers = self._rows.feedback_since(since)
        for rule, payload, useful in answers:
            rep = _owner_in(json.loads(payload or "{}")) or "unknown"
            for table, key in ((rules, rule), (reps, rep)):
                table.setdefault(key, [0, 0])[0 if useful else 1] += 1
        return {
            "rules": {k: tuple(v) for k, v in sorted(rules.items())},
            "reps": {k: tuple(v) for k, v in sorted(reps.items())},
            "answers": len(answers),
        }


def _owner_in(payload: dict | list | None) -> str | None:
    """The alerted deal's owner from an alert's payload: the score as an object, or (alerts recorded before
    1 December 2026) the score's fields as a list, in `ScoredDeal`'s order."""
    if isinstance(payload, list):
        index = ScoredDeal._fields.index("sales_rep_id")
        return payload[index] if len(payload) > index else None
    return (payload or {}).get("sales_rep_id")
