"""Quiet hours: a real-time direct message due outside its recipient's working hours (in their own time zone, from
Slack's users.info) waits for the start of their next working hour; channel reports do not wait. DST-correct."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from salesintel.alerts.clock import SimulatedClock
from salesintel.alerts.delivery import Deliverer, SlackSender, slack_client
from salesintel.alerts.outbox import Outbox
from salesintel.alerts.quiet_hours import next_working_moment
from salesintel.alerts.render import Message
from salesintel.alerts.settings import AlertsSettings, DeliverySettings, QuietHoursSettings, RoutingSettings
from salesintel.engine.store import Store
from tests.slack_standin import SlackStandIn

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
HOURS = QuietHoursSettings(enabled=True)


@pytest.mark.parametrize(
    "now, zone, expected",
    [
        # Friday evening in Berlin, the weekend of the spring change: Monday 08:00 is CEST (UTC+2), not 07:00 UTC
        (datetime(2024, 3, 29, 19, tzinfo=UTC), BERLIN, datetime(2024, 4, 1, 6, tzinfo=UTC)),
        # Saturday in New York, the weekend its clocks go forward: Monday 08:00 EDT is 12:00 UTC
        (datetime(2024, 3, 9, 17, tzinfo=UTC), NEW_YORK, datetime(2024, 3, 11, 12, tzinfo=UTC)),
        # the autumn change in Berlin: Monday 08:00 CET is 07:00 UTC again
        (datetime(2024, 10, 26, 10, tzinfo=UTC), BERLIN, datetime(2024, 10, 28, 7, tzinfo=UTC)),
        # before work on a weekday: the same morning
        (datetime(2024, 3, 5, 5, tzinfo=UTC), BERLIN, datetime(2024, 3, 5, 7, tzinfo=UTC)),
        # within working hours: now
        (datetime(2024, 3, 5, 9, tzinfo=UTC), BERLIN, None),
    ],
)
def test_the_next_working_moment_is_local_wall_time_across_daylight_saving(now, zone, expected):
    assert next_working_moment(now, zone, HOURS) == expected


def test_a_direct_message_at_night_waits_for_the_recipients_morning_and_a_report_does_not(store_target):
    standin = SlackStandIn(timezones={"U001": "Europe/Berlin", "U002": "America/New_York"}).start()
    users = {"rep_3": {"slack": "U003", "tz": "Asia/Kolkata"}}  # a zone set in config wins over Slack's
    settings = AlertsSettings(
        delivery=DeliverySettings(channel_pace_seconds=0),
        quiet_hours=HOURS,
        routing=RoutingSettings(users=users),
    )
    store = Store.open(store_target)
    clock = SimulatedClock(datetime(2024, 3, 29, 21, 30, tzinfo=UTC))  # Fri 22:30 Berlin, 17:30 New York, 03:00 Kolkata
    sender = SlackSender(slack_client("xoxb-q", standin.url), settings, store)
    deliverer = Deliverer(store, sender, settings, clock, timezone=ZoneInfo("UTC"))
    outbox = Outbox(store)
    with store.transaction():
        for key, target, kind in (
            ("berlin", "slack:U001", "realtime"),
            ("new-york", "slack:U002", "realtime"),
            ("kolkata", "user:rep_3", "realtime"),
            ("report", "channel:#sales-managers", "daily"),
        ):
            outbox.enqueue(key, kind, target, Message(f"to {key}", []), clock.now())
    assert deliverer.deliver_due() == 2
    assert sorted(c.args["text"] for c in standin.posts()) == ["to new-york", "to report"]
    waiting = {m.dedupe_key: m for m in outbox.rows("pending")}

    def next_attempt(key: str) -> datetime:
        at = store.conn.execute("SELECT next_attempt_at FROM outbox WHERE dedupe_key = ?", [key]).fetchone()[0]
        return datetime.fromisoformat(at)

    assert next_attempt("berlin") == datetime(2024, 4, 1, 6, tzinfo=UTC)  # Monday 08:00 CEST
    assert waiting["berlin"].note == "quiet hours: waits for Mon 08:00 Europe/Berlin"
    assert next_attempt("kolkata") == datetime(2024, 4, 1, 2, 30, tzinfo=UTC)  # Monday 08:00 IST
    assert waiting["berlin"].attempts == 0, "waiting is not a failed attempt"

    clock.set(datetime(2024, 4, 1, 5, 59, tzinfo=UTC))
    assert deliverer.deliver_due() == 1 and standin.posts()[-1].args["text"] == "to kolkata"
    clock.set(datetime(2024, 4, 1, 6, 0, tzinfo=UTC))
    assert deliverer.deliver_due() == 1 and standin.posts()[-1].args["text"] == "to berlin"
    assert len([c for c in standin.calls if c.method == "users.info"]) == 2, "each zone asked for once"
    standin.stop()


def test_an_alert_due_at_night_can_join_the_next_daily_digest_instead(store_target):
    """`outside: digest`: the night's alert is not sent at all; the next daily digest lists it as held over (the
    digest reads `Outbox.folded`, as for alerts over the daily cap)."""
    standin = SlackStandIn(timezones={"U001": "Europe/Berlin"}).start()
    settings = AlertsSettings(
        delivery=DeliverySettings(channel_pace_seconds=0),
        quiet_hours=QuietHoursSettings(enabled=True, outside="digest"),
    )
    store = Store.open(store_target)
    clock = SimulatedClock(datetime(2024, 3, 5, 22, 30, tzinfo=UTC))  # Tuesday 23:30 in Berlin
    sender = SlackSender(slack_client("xoxb-q", standin.url), settings, store)
    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue("night", "realtime", "slack:U001", Message("D00042 at risk", []), clock.now())
        outbox.enqueue("over", "resolution", "slack:U001", Message("Resolved: D00041", []), clock.now())
    assert Deliverer(store, sender, settings, clock).deliver_due() == 0
    rows = {m.dedupe_key: m for m in outbox.rows()}
    assert rows["night"].status == "folded" and rows["night"].note.startswith("quiet hours: held for the next daily")
    assert rows["over"].status == "pending", "a resolution waits for the morning: it belongs in the alert's thread"
    assert standin.posts() == []
    assert [f["summary"] for f in outbox.folded()] == ["D00042 at risk"]
    standin.stop()
