"""Episode decisions: when an at-risk deal is alerted, repeated, held back, or left alone."""

from datetime import UTC, datetime, timedelta

from salesintel.alerts.episodes import HOLD_CONTROL, SEND_NEW, SEND_REPEAT, SILENT, decide, in_control_group
from salesintel.alerts.rules import Candidate
from salesintel.alerts.settings import RealtimeRuleSettings
from salesintel.engine.store import Alert

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
RULE = RealtimeRuleSettings()


def candidate(risk=0.75, deal="D00001"):
    return Candidate("high_value_at_risk", deal, risk, {}, "")


def alert(**overrides):
    """An episode as the store decodes it from a row (times stored as ISO 8601 text)."""
    row = {
        "id": 1,
        "key": "high_value_at_risk:D00001:1",
        "rule": "high_value_at_risk",
        "deal_id": "D00001",
        "episode": 1,
        "risk": 0.75,
        "sends": 1,
        "first_at": (NOW - timedelta(days=2)).isoformat(),
        "acked_at": None,
        "resolved_at": None,
        "resolution": None,
        "recipients": "[]",
        "payload": "{}",
        "updated_at": None,
        "state": "open",
        "control": 0,
        "last_sent_risk": 0.75,
        "last_sent_at": (NOW - timedelta(days=1)).isoformat(),
        "snoozed_until": None,
        "acked_by": None,
    }
    return Alert.from_row({**row, **overrides})


def test_a_new_episode_is_sent_and_an_existing_one_is_not_repeated():
    assert decide(candidate(), None, NOW, RULE, 0.0).action == SEND_NEW
    assert decide(candidate(), alert(), NOW, RULE, 0.0).action == SILENT


def test_it_repeats_when_risk_rises_a_step_or_the_interval_passes():
    assert decide(candidate(0.85), alert(), NOW, RULE, 0.0).action == SEND_REPEAT
    week_ago = (NOW - timedelta(days=7)).isoformat()
    assert decide(candidate(0.76), alert(last_sent_at=week_ago), NOW, RULE, 0.0).action == SEND_REPEAT


def test_acknowledged_never_repeats_and_snoozed_waits_for_expiry():
    assert decide(candidate(0.99), alert(state="acknowledged", acked_by="U1"), NOW, RULE, 0.0).action == SILENT
    later = (NOW + timedelta(hours=1)).isoformat()
    assert decide(candidate(0.99), alert(state="snoozed", snoozed_until=later), NOW, RULE, 0.0).action == SILENT
    earlier = (NOW - timedelta(hours=1)).isoformat()
    assert decide(candidate(), alert(state="snoozed", snoozed_until=earlier), NOW, RULE, 0.0).action == SEND_REPEAT


def test_the_control_group_is_a_stable_share_of_deals():
    deals = [f"D{i:05d}" for i in range(20_000)]
    held = [d for d in deals if in_control_group(d, 0.10)]
    assert 0.09 < len(held) / len(deals) < 0.11
    assert held == [d for d in deals if in_control_group(d, 0.10)]
    assert decide(candidate(deal=held[0]), None, NOW, RULE, 0.10).action == HOLD_CONTROL
    assert decide(candidate(deal=held[0]), alert(control=1), NOW, RULE, 0.10).action == SILENT
