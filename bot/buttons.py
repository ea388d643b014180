"""Acknowledge and snooze, as the alert buttons perform them: permission, the state change, the new message.

Idempotent by construction: the ledger reports whether anything changed, and an unchanged click updates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from salesintel.alerts.ledger import AlertLedger, AlertNotFound
from salesintel.alerts.settings import AlertsSettings
from salesintel.alerts.visibility import Viewer, can_act_on_alert
from salesintel.engine.store import Store

SNOOZES = {"alert_snooze_1d": timedelta(days=1), "alert_snooze_1w": timedelta(weeks=1)}


@dataclass(frozen=True)
class Outcome:
    refused: str | None = None
    """Why the click was refused (shown only to the clicker)."""
    changed: bool = False
    note: str = ""
    """What happened, in words, e.g. "Acknowledged by <@U1> at 10:42"."""


def press(
    store: Store,
    settings: AlertsSettings,
    timezone: ZoneInfo,
    viewer: Viewer,
    action_id: str,
    alert_id: int,
    now: datetime,
    until: datetime | None = None,
) -> Outcome:
    ledger = AlertLedger(store)
    refused = _refusal(ledger, settings, viewer, alert_id)
    if refused:
        return Outcome(refused=refused)
    local = now.astimezone(timezone).strftime("%H:%M")
    if action_id == "alert_ack":
        change = ledger.acknowledge(alert_id, viewer.slack_id, now)
        state = change.alert
        if change.changed:
            return Outcome(changed=True, note=f":white_check_mark: Acknowledged by <@{viewer.slack_id}> at {local}")
        return Outcome(note=f"Already {state.state}" + (f" by <@{state.acked_by}>" if state.acked_by else ""))
    end = until or now + SNOOZES[action_id]
    change = ledger.snooze(alert_id, end, viewer.slack_id, now)
    if change.changed:
        when = end.astimezone(timezone).strftime("%a %d %b %H:%M")
        return Outcome(changed=True, note=f":zzz: Snoozed by <@{viewer.slack_id}> at {local} until {when}")
    return Outcome(note=f"Already {change.alert.state}: nothing changed")


def record_feedback(
    store: Store, settings: AlertsSettings, viewer: Viewer, alert_id: int, useful: bool, now: datetime
) -> Outcome:
    """ "Useful" / "Not useful" from someone who may act on the alert (its recipients, their managers, executives)."""
    ledger = AlertLedger(store)
    refused = _refusal(ledger, settings, viewer, alert_id)
    if refused:
        return Outcome(refused=refused)
    changed = ledger.record_feedback(alert_id, viewer.slack_id, useful, now)
    return Outcome(changed=changed, note="useful" if useful else "not useful")


def _refusal(ledger: AlertLedger, settings: AlertsSettings, viewer: Viewer, alert_id: int) -> str | None:
    """Why `viewer` may not act on the alert (it is gone, or not theirs), or None when they may."""
    try:
        alert = ledger.get(alert_id)
    except AlertNotFound:
        alert = None
    if alert is None:
        return f"Alert #{alert_id} no longer exists."
    if not can_act_on_alert(viewer, alert, settings.routing):
        return "Only the people this alert was sent to, and their managers, can act on it."
    return None
