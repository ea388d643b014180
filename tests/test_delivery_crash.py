"""Crash safety: a deliverer killed with SIGKILL mid-run and restarted delivers every message, none twice: the one in
flight at each kill is found in the channel's history by its metadata and not sent again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from salesintel.alerts.outbox import Outbox
from salesintel.alerts.render import Message
from salesintel.engine.store import Store
from tests.slack_standin import SlackStandIn

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = 300


@pytest.fixture
def standin():
    server = SlackStandIn(delay_seconds=0.004).start()
    yield server
    server.stop()


def start_deliverer(tmp_path: Path, standin: SlackStandIn) -> subprocess.Popen:
    env = {
        **os.environ,
        "SALESINTEL_DB": str(tmp_path / "store.db"),
        "SLACK_BOT_TOKEN": "xoxb-crash",
        "SLACK_API_URL": standin.url,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "salesintel.bot", "--config", str(tmp_path / "config.yaml"), "deliver"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_posts(standin: SlackStandIn, count: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(standin.posts()) < count:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, f"only {len(standin.posts())} posts"
        time.sleep(0.005)


def test_kill_9_mid_delivery_then_restart_delivers_each_message_once(tmp_path, standin):
    # A short lease: each restart takes over from the killed deliverer within two seconds.
    config = {"alerts": {"delivery": {"channel_pace_seconds": 0}, "schedule": {"lease_seconds": 2}}}
    (tmp_path / "config.yaml").write_text(json.dumps(config))
    store = Store.open(tmp_path / "store.db")
    now = datetime.now(UTC)
    with store.db.conn:
        for i in range(MESSAGES):
            message = Message(f"message {i}", [{"type": "section", "text": {"type": "mrkdwn", "text": f"message {i}"}}])
            Outbox(store).enqueue(f"crash-test:{i}", "daily", f"channel:#c{i % 3}", message, now)
    store.close()

    kills = 0
    for stop_after in (80, 190):
        process = start_deliverer(tmp_path, standin)
        wait_for_posts(standin, stop_after, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    final = start_deliverer(tmp_path, standin)
    assert final.wait(timeout=120) == 0, final.stderr.read().decode()

    received = Counter(call.args["text"] for call in standin.posts())
    assert set(received) == {f"message {i}" for i in range(MESSAGES)}, "every queued message arrived"
    duplicates = sum(count - 1 for count in received.values())
    assert duplicates <= kills, f"{duplicates} duplicates after {kills} kills: at most the in-flight one per kill"
    assert duplicates == 0, "the message in flight at each kill was found in Slack by its metadata, not sent again"
    assert Outbox(Store.open(tmp_path / "store.db")).statuses() == {"sent": MESSAGES}
