"""Alert episodes: one alert per (rule, deal) episode, and the decision of whether to speak now.

An episode opens when a deal first qualifies and ends (resolves) when it closes or no longer qualifies; the next
time it qualifies is a new episode. Within an episode an alert repeats only when risk has risen by the configured
step or the repeat interval has passed. Acknowledged episodes never repeat; snoozed ones stay silent until the
snooze ends and are then re-evaluated. A stable hash of the deal id puts a configured share of deals in a
control group that is recorded but never alerted, so the effect of alerting can be measured.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from salesintel.alerts.rules import Candidate
from salesintel.alerts.settings import RealtimeRuleSettings
from salesintel.engine.store import Alert
from salesintel.engine.store.records import ALERT_ACKNOWLEDGED, ALERT_OPEN, ALERT_RESOLVED, ALERT_SNOOZED

OPEN, ACKNOWLEDGED, SNOOZED, RESOLVED = ALERT_OPEN, ALERT_ACKNOWLEDGED, ALERT_SNOOZED, ALERT_RESOLVED
SEND_NEW, SEND_REPEAT, HOLD_CONTROL, SILENT = "new", "repeat", "control", "silent"


@dataclass(frozen=True)
class Decision:
    action: str
    why: str


def in_control_group(deal_id: str, share: float) -> bool:
    """Stable across runs, processes and machines: the first 8 bytes of SHA-256 of the id, as a fraction."""
    digest = hashlib.sha256(deal_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def decide(
    candidate: Candidate, alert: Alert | None, now: datetime, rule: RealtimeRuleSettings, control_share: float
) -> Decision:
    """What to do with a qualifying deal given its current episode (None or resolved: a new one)."""
    if alert is None or alert.state == RESOLVED:
        if in_control_group(candidate.deal_id, control_share):
            return Decision(HOLD_CONTROL, "held back: control group")
        return Decision(SEND_NEW, "newly at risk")
    if alert.control:
        return Decision(SILENT, "control group")
    if alert.state == ACKNOWLEDGED:
        return Decision(SILENT, f"acknowledged by {alert.acked_by}")
    if alert.state == SNOOZED:
        if alert.snoozed_until and alert.snoozed_until > now:
            return Decision(SILENT, f"snoozed until {alert.snoozed_until.isoformat()}")
        return Decision(SEND_REPEAT, "snooze ended and the deal still qualifies")
    if candidate.risk >= (alert.last_sent_risk or 0) + rule.risk_step - 1e-9:
        return Decision(SEND_REPEAT, f"risk rose from {alert.last_sent_risk:.0%} to {candidate.risk:.0%}")
    last_sent = alert.last_sent_at
    if last_sent and now - last_sent >= timedelta(days=rule.repeat_after_days):
        return Decision(SEND_REPEAT, f"still at risk after {rule.repeat_after_days} days")
    return Decision(SILENT, "already alerted this episode")
