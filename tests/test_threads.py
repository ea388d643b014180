"""An alert's follow-ups live in its thread: a repeat and the resolution are replies to the alert's first message
to that recipient, which is updated to show where the alert stands. Over real HTTP to the Slack stand-in, with the
store on SQLite and on PostgreSQL; a follow-up left in flight by a crash is found in the thread, not posted twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from salesintel.alerts.clock import SimulatedClock
from salesintel.alerts.delivery import Deliverer, SlackSender, slack_client
from salesintel.alerts.ledger import AlertLedger
from salesintel.alerts.outbox import Outbox
from salesintel.alerts.render import Message
from salesintel.alerts.runs import _queue_resolution
from salesintel.alerts.settings import AlertsSettings, DeliverySettings
from salesintel.engine.store import Store
from tests.slack_standin import SlackStandIn

NOW = datetime(2024, 3, 4, 14, tzinfo=UTC)
TARGET = "slack:U001"


def _alert_message(deal: str, alert_id: int, risk: str) -> Message:
    text = f"{deal} is at risk ({risk})"
    return Message(
        text,
        [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "actions", "block_id": f"alert:{alert_id}", "elements": []},
        ],
    )


def _blocks(call) -> list:
    blocks = call.args["blocks"]
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def test_a_repeat_and_the_resolution_go_into_the_alerts_thread_and_update_its_message(store_target):
    store = Store.open(store_target)
    standin = SlackStandIn().start()
    settings = AlertsSettings(delivery=DeliverySettings(channel_pace_seconds=0))
    clock = SimulatedClock(NOW)
    deliverer = Deliverer(store, SlackSender(slack_client("xoxb-t", standin.url), settings, store), settings, clock)
    outbox, ledger = Outbox(store), AlertLedger(store)
    with store.transaction():
        alert = ledger.open_episode("high_value_at_risk", "D1", 0.7, False, [TARGET], {}, NOW)
        held = ledger.open_episode("high_value_at_risk", "D2", 0.7, True, [TARGET], {}, NOW)  # control group
        outbox.enqueue(
            f"{alert.key}:1:{TARGET}", "realtime", TARGET, _alert_message("D1", alert.id, "70%"), NOW, alert.id
        )
    deliverer.deliver_due()
    [first] = standin.posts()
    assert "thread_ts" not in first.args
    channel, parent = first.args["channel"], first.args["answered_ts"]

    clock.advance(timedelta(days=3))
    with store.transaction():  # risk rose: a repeat
        outbox.enqueue(
            f"{alert.key}:2:{TARGET}", "realtime", TARGET, _alert_message("D1", alert.id, "85%"), NOW, alert.id
        )
    deliverer.deliver_due()
    repeat = standin.posts()[-1]
    assert repeat.args["thread_ts"] == parent and repeat.args["channel"] == channel and "85%" in repeat.args["text"]
    [update] = [c for c in standin.calls if c.method == "chat.update"]
    assert update.args["ts"] == parent and "85%" in json.dumps(_blocks(update)), "the first message shows the latest"
    assert [m["ts"] for m in standin.history(channel)] == [parent], "the reply is in the thread, not the channel"

    with store.transaction():  # the deal closed: resolved, for the alert's recipient; the held-back one hears nothing
        ledger.resolve(alert.id, "deal closed", NOW)
        _queue_resolution(outbox, ledger.get(alert.id), "deal closed", NOW)
        ledger.resolve(held.id, "deal closed", NOW)
        _queue_resolution(outbox, ledger.get(held.id), "deal closed", NOW)
    deliverer.deliver_due()
    resolved = standin.posts()[-1]
    assert resolved.args["thread_ts"] == parent and "Resolved: D1 — the deal closed" in resolved.args["text"]
    last_update = [c for c in standin.calls if c.method == "chat.update"][-1]
    blocks = _blocks(last_update)
    assert last_update.args["ts"] == parent and blocks[0]["text"]["text"] == "D1 is at risk (70%)"
    assert blocks[-1]["type"] == "context" and "Resolved" in blocks[-1]["elements"][0]["text"], "buttons replaced"
    assert len(standin.posts()) == 3 and not any("D2" in c.args.get("text", "") for c in standin.posts())

    with store.transaction():  # a follow-up a dead leader posted but never marked sent
        outbox.enqueue(
            f"{alert.key}:3:{TARGET}", "realtime", TARGET, _alert_message("D1", alert.id, "90%"), NOW, alert.id
        )
    [orphan] = outbox.due(clock.now())
    assert outbox.claim(orphan.id, "dead-leader", clock.now(), timedelta(minutes=2))
    deliverer.sender.send(outbox.rows("sending")[0])
    new = Deliverer(
        store, SlackSender(slack_client("xoxb-t", standin.url), settings, store), settings, clock, None, "new"
    )
    assert new.recover_orphans() == {"found": 1, "requeued": 0}, "found in the thread (not in channel history)"
    new.deliver_due()
    assert sum("90%" in c.args["text"] for c in standin.posts()) == 1
    standin.stop()
