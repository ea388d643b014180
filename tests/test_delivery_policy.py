"""One retry policy, against the local Slack stand-in over real HTTP: Retry-After in both of its forms, capped, with
jitter; a hung call fails at its deadline instead of holding up other recipients; slack_sdk never retries by itself."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from salesintel.alerts.clock import SystemClock
from salesintel.alerts.delivery import Deliverer, SlackSender, retry_after_seconds, slack_client
from salesintel.alerts.outbox import Outbox
from salesintel.alerts.render import Message
from salesintel.alerts.settings import AlertsSettings, DeliverySettings
from salesintel.engine.store import Store
from tests.slack_standin import SlackStandIn

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    assert retry_after_seconds("30", NOW) == 30
    assert retry_after_seconds(format_datetime(NOW + timedelta(minutes=2), usegmt=True), NOW) == 120
    assert retry_after_seconds(format_datetime(NOW - timedelta(minutes=2), usegmt=True), NOW) == 0
    assert retry_after_seconds(None, NOW) == retry_after_seconds("soon", NOW) == 1


@pytest.fixture
def standin():
    server = SlackStandIn().start()
    yield server
    server.stop()


def _deliverer(tmp_path, standin, **delivery) -> tuple[Deliverer, Outbox]:
    store = Store.open(tmp_path / "s.db")
    settings = AlertsSettings(delivery=DeliverySettings(channel_pace_seconds=0, **delivery))
    client = slack_client("xoxb-policy", standin.url, settings.delivery.request_timeout_seconds)
    deliverer = Deliverer(store, SlackSender(client, settings, store), settings, SystemClock(), rng=random.Random(7))
    return deliverer, Outbox(store)


def _queue(outbox: Outbox, *channels: str) -> None:
    with outbox.store.transaction():
        for i, channel in enumerate(channels):
            outbox.enqueue(f"k{i}", "daily", f"channel:{channel}", Message(f"to {channel}", []), datetime.now(UTC))


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_a_429_waits_what_slack_says_within_the_cap_plus_jitter(tmp_path, standin, form):
    deliverer, outbox = _deliverer(tmp_path, standin, max_retry_after_seconds=600, jitter=0.2)
    _queue(outbox, "C1")
    wait = 90
    header = str(wait) if form == "seconds" else format_datetime(datetime.now(UTC) + timedelta(seconds=wait), True)
    standin.fail_next("chat.postMessage", ("429", header))
    before = datetime.now(UTC)
    assert deliverer.deliver_due() == 0
    [row] = outbox.rows("pending")
    retry_at = datetime.fromisoformat(
        outbox.store.db.execute("SELECT next_attempt_at FROM outbox WHERE id = ?", [row.id]).fetchone()[0]
    )
    assert timedelta(seconds=wait - 2) <= retry_at - before <= timedelta(seconds=wait * 1.2 + 2)
    assert len([c for c in standin.calls if c.method == "chat.postMessage"]) == 1, "slack_sdk did not retry itself"


def test_a_day_long_retry_after_is_capped(tmp_path, standin):
    deliverer, outbox = _deliverer(tmp_path, standin, max_retry_after_seconds=300, jitter=0.0)
    _queue(outbox, "C1")
    standin.fail_next("chat.postMessage", ("429", "86400"))
    before = datetime.now(UTC)
    deliverer.deliver_due()
    retry_at = datetime.fromisoformat(outbox.store.db.execute("SELECT next_attempt_at FROM outbox").fetchone()[0])
    assert retry_at - before <= timedelta(seconds=302)


def test_a_hung_call_fails_at_its_deadline_and_the_other_recipients_are_served(tmp_path, standin):
    deliverer, outbox = _deliverer(tmp_path, standin, request_timeout_seconds=1.0)
    _queue(outbox, "C1", "C2", "C3")
    standin.fail_next("chat.postMessage", ("slow", 4))
    started = time.monotonic()
    assert deliverer.deliver_due() == 2
    assert time.monotonic() - started < 3.5, "one hung call held up the others"
    [waiting] = outbox.rows("pending")
    assert waiting.target == "channel:C1" and "cannot reach Slack" in (waiting.last_error or "")
    # Slack finished the hung call after the client gave up: the message is there. The retry finds it by its
    # metadata and does not post it again.
    deadline = time.monotonic() + 10
    while len(standin.posts("C1")) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with outbox.store.transaction():
        outbox.store.db.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", ["2000-01-01", waiting.id])
    deliverer.deliver_due()
    assert len(standin.posts("C1")) == 1 and outbox.statuses() == {"sent": 3}
    assert outbox.rows("sent")[0].note == "an earlier attempt reached Slack"


def test_a_message_in_flight_to_a_channel_named_in_config_is_found_by_the_channels_id(tmp_path, standin):
    """Reports go to channels configured by name (`#cro-vp`); Slack reads a channel's history only by id. The id
    Slack answered an earlier post with (kept in the outbox) is where the deliverer looks after a crash, so the
    message in flight is found, not posted again."""
    deliverer, outbox = _deliverer(tmp_path, standin)
    _queue(outbox, "#cro-vp")
    assert deliverer.deliver_due() == 1
    with outbox.store.transaction():
        outbox.enqueue("later", "weekly", "channel:#cro-vp", Message("the next report", []), datetime.now(UTC))
    [later] = outbox.due(datetime.now(UTC))
    assert outbox.claim(later.id, "dead", datetime.now(UTC), timedelta(minutes=5))
    SlackSender(deliverer.sender.client, deliverer.settings, outbox.store).send(later)  # posted; then the crash
    fresh = SlackSender(deliverer.sender.client, deliverer.settings, outbox.store)  # a new process knows no ids
    recovered = Deliverer(outbox.store, fresh, deliverer.settings, SystemClock(), holder="alive").recover_orphans()
    assert recovered == {"found": 1, "requeued": 0}
    history = [c for c in standin.calls if c.method == "conversations.history"]
    assert history and history[-1].args["channel"].startswith("C"), "asked by id: Slack refuses a name"
    assert [c.args["text"] for c in standin.posts("#cro-vp")] == ["to #cro-vp", "the next report"]
    assert {c.args["channel"] for c in standin.posts("#cro-vp")} == {"#cro-vp"}, (
        "posted by name: a channel archived and made again under that name is still reached"
    )
    [sent] = [m for m in outbox.rows("sent") if m.id == later.id]
    assert sent.slack_channel == history[-1].args["channel"]
