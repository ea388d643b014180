"""Several services on one store: one leader runs the scheduler and delivery, claims keep every message to one
sender, and when the leader is killed another takes over and delivers the rest, nothing lost and nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from salesintel.alerts.clock import SimulatedClock
from salesintel.alerts.delivery import Deliverer, SlackSender, slack_client
from salesintel.alerts.jobs import report_job
from salesintel.alerts.leadership import Leadership
from salesintel.alerts.outbox import Outbox
from salesintel.alerts.render import Message
from salesintel.alerts.runs import AlertEnvironment
from salesintel.alerts.schedule import Job, Scheduler, cron_trigger
from salesintel.alerts.settings import AlertsSettings, CronSettings, DeliverySettings
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from tests.engine_fixtures import ROOT
from tests.slack_standin import SlackStandIn
from tests.test_service_http import free_port

SECRET, TOKEN = "replica-signing-secret", "xoxb-replicas"
NY = ZoneInfo("America/New_York")


def _store_with_a_refresh(where: Path | str) -> Store:
    store = Store.open(where)
    taken = datetime.now(UTC)
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), date(2024, 3, 1), taken)
    return store


def test_two_services_ticking_together_across_a_fire_time_queue_and_send_the_report_once(store_target):
    """Two schedulers and deliverers on one store, each on its own connection and thread, tick at the same
    moments across the daily fire time: one leads; the report is queued once and posted once."""
    _store_with_a_refresh(store_target).close()
    standin = SlackStandIn().start()
    settings = AlertsSettings(delivery=DeliverySettings(channel_pace_seconds=0))
    clock = SimulatedClock(datetime(2024, 3, 4, 7, 58, tzinfo=NY))
    services = []
    for name in ("a", "b"):
        store = Store.open(store_target)
        env = AlertEnvironment(store, settings, NY)
        daily = Job("daily", cron_trigger(CronSettings(minute="0", hour="8"), NY), report_job("daily", env))
        leadership = Leadership(lambda store=store: store, f"replica-{name}", timedelta(seconds=90), clock)
        sender = SlackSender(slack_client(TOKEN, standin.url), settings, store)
        services.append(
            (
                leadership,
                Scheduler(store, [daily], clock, timedelta(hours=1), clock.now()),
                Deliverer(store, sender, settings, clock, holder=f"replica-{name}"),
            )
        )

    def tick(leadership, scheduler, deliverer, barrier):
        barrier.wait()
        if leadership.renew()[0]:
            scheduler.tick()
            deliverer.deliver_due()

    for _ in range(6):  # 07:58 … 08:03, a minute apart: both try at every moment
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=tick, args=(*service, barrier)) for service in services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        clock.advance(timedelta(minutes=1))
    standin.stop()
    posts = standin.posts("#sales-managers")
    assert len(posts) == 1 and "Daily pipeline summary" in posts[0].args["text"]
    assert sum(services[i][0].leading for i in range(2)) == 1, "exactly one leader"


def test_a_new_leader_finds_the_message_the_dead_one_had_in_flight_and_sends_only_the_rest(store_target):
    store = Store.open(store_target)
    standin = SlackStandIn().start()
    settings = AlertsSettings(delivery=DeliverySettings(channel_pace_seconds=0))
    now = datetime.now(UTC)
    outbox = Outbox(store)
    with store.transaction():
        for i in range(3):
            outbox.enqueue(f"m{i}", "daily", "channel:C1", Message(f"message {i}", []), now)
    dead = Deliverer(
        store, SlackSender(slack_client(TOKEN, standin.url), settings, store), settings, SimulatedClock(now)
    )
    [first, second, _] = outbox.due(now)
    for message in (first, second):  # the dead leader claimed two, and posted the first before it died
        assert outbox.claim(message.id, "dead-leader", now, timedelta(minutes=2))
    dead.sender.send(first)
    new = Deliverer(
        store,
        SlackSender(slack_client(TOKEN, standin.url), settings, store),
        settings,
        SimulatedClock(now),
        None,
        "new",
    )
    assert new.recover_orphans() == {"found": 1, "requeued": 1}
    new.deliver_due()
    standin.stop()
    received = Counter(call.args["text"] for call in standin.posts())
    assert received == {"message 0": 1, "message 1": 1, "message 2": 1}
    rows = {row.dedupe_key: row for row in outbox.rows()}
    assert rows["m0"].note == "in flight at a crash; found in Slack" and rows["m0"].slack_ts
    assert rows["m1"].note == "in flight at a crash; not found in Slack: sent again"


def _start(
    tmp: Path, standin: SlackStandIn, name: str, *extra: str, where: str | None = None
) -> tuple[subprocess.Popen, str]:
    """`salesintel run` on the store at `where` (default: tmp/s.db), named `name` in its log file."""
    port = free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": standin.url,
        "OMP_NUM_THREADS": "1",
    }
    env.pop("SALESINTEL_DATABASE_URL", None)
    if where is not None and "://" in where:
        env["SALESINTEL_DATABASE_URL"] = where
    else:
        env["SALESINTEL_DB"] = where or str(tmp / "s.db")
    args = ["--config", str(tmp / "config.yaml"), "run", "--port", str(port), "--as-of", "2024-03-01", *extra]
    process = subprocess.Popen(
        [sys.executable, "-m", "salesintel.bot", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / f"{name}.log").open("w"),
    )
    return process, f"http://127.0.0.1:{port}"


def _health(base: str) -> dict | None:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
            return json.loads(response.read())
    except OSError as error:
        if hasattr(error, "read"):
            return json.loads(error.read())
        return None


def test_three_replicas_one_killed_mid_delivery_lose_nothing_and_send_nothing_twice(tmp_path, store_target):
    """Three `salesintel run` replicas on one store, over real HTTP to a Slack stand-in. 150 messages wait in the
    outbox and the daily report fires every 5 seconds (so several fire times pass while they run, before and after
    the kill). Mid-delivery the leader is SIGKILLed: another replica takes over; every message and every fire time's
    report reaches Slack exactly once."""
    messages = 150
    _store_with_a_refresh(store_target).close()
    config = {
        "alerts": {
            "delivery": {"channel_pace_seconds": 0},
            "schedule": {
                "tick_seconds": 1,
                "lease_seconds": 3,
                "daily": {"second": "*/5", "minute": "*", "hour": "*"},
                "misfire_grace_minutes": 1,
            },
        }
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    store = Store.open(store_target)
    with store.transaction():
        for i in range(messages):
            Outbox(store).enqueue(f"r{i}", "daily", f"channel:C{i % 5}", Message(f"message {i}", []), datetime.now(UTC))
    standin = SlackStandIn(delay_seconds=0.03).start()
    replicas = {name: _start(tmp_path, standin, name, where=store_target) for name in ("a", "b", "c")}
    logs = lambda: [(tmp_path / f"{n}.log").read_text()[-2000:] for n in replicas]  # noqa: E731
    try:
        deadline = time.monotonic() + 60
        while len(standin.posts()) < 40:
            assert time.monotonic() < deadline, logs()
            time.sleep(0.01)
        leaders = [n for n, (_, base) in replicas.items() if ((_health(base) or {}).get("leader") or {}).get("leading")]
        assert len(leaders) == 1, leaders
        leader = leaders[0]
        replicas[leader][0].send_signal(signal.SIGKILL)
        killed_at, posted_at_kill = time.monotonic(), len(standin.posts())
        replicas[leader][0].wait()
        while len(standin.posts()) <= posted_at_kill + 1:
            assert time.monotonic() - killed_at < 20, "no replica took over"
            time.sleep(0.01)
        takeover = time.monotonic() - killed_at
        killed_wall = datetime.now(UTC)

        def reports_after_the_kill() -> int:
            rows = Outbox(store).rows()
            return sum(r.target == "channel:#sales-managers" and r.created_at > killed_wall for r in rows)

        while Outbox(store).statuses().get("sent", 0) < messages or reports_after_the_kill() < 2:
            assert time.monotonic() - killed_at < 60, Outbox(store).statuses()
            time.sleep(0.05)
        time.sleep(2)  # a report queued at the last fire time is delivered within a tick
    finally:
        for process, _ in replicas.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in replicas.values():
            process.wait(timeout=30)
        standin.stop()
    # The queued messages (reports go to #sales-managers: by name, then by the id Slack answered with)
    received = Counter(call.args["text"] for call in standin.posts() if call.args["text"].startswith("message "))
    lost = messages - len(received)
    duplicated = sum(count - 1 for count in received.values())
    reports = [row for row in Outbox(store).rows() if row.target == "channel:#sales-managers"]
    fired = store.job_runs.latest_finished()
    report_posts = standin.posts("#sales-managers")
    print(
        f"replicas on {store.dialect}: lost {lost}, duplicated {duplicated}, takeover {takeover:.1f} s"
        f" (lease 3 s, tick 1 s); {len(reports)} daily reports queued, {len(report_posts)} posted"
    )
    assert lost == 0 and duplicated == 0
    assert takeover < 3 + 1 + 3, "within the lease, one heartbeat and one tick"
    assert "daily" in fired and len(reports) >= 2, "fire times passed after the kill"
    assert {row.status for row in reports} == {"sent"}
    assert len(report_posts) == len(reports), "each fire time's report posted once"


def test_a_request_replayed_to_another_replica_is_refused(tmp_path, store_target):
    """The replay memory is shared by every process on the store (a file beside a SQLite store, a table in a
    PostgreSQL one): the copy of a request one replica accepted is refused by the other, over real HTTP with Slack's
    signature."""
    from tests import slack_requests as slack

    _store_with_a_refresh(store_target).close()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"alerts": {"schedule": {"lease_seconds": 3}}}))
    standin = SlackStandIn().start()
    replicas = [_start(tmp_path, standin, name, where=store_target) for name in ("a", "b")]
    try:
        deadline = time.monotonic() + 60
        while not all(_health(base) for _, base in replicas) and time.monotonic() < deadline:
            time.sleep(0.2)
        body, sent_at = slack.slash_command("/deal-risk", "help", "U002"), int(time.time())
        (_, a), (_, b) = replicas
        content_type = "application/x-www-form-urlencoded"
        assert slack.send(a + "/slack/events", body, content_type, SECRET, sent_at)[0] == 200
        status, answer = slack.send(b + "/slack/events", body, content_type, SECRET, sent_at)
        assert status == 401 and "replay" in answer
        assert slack.send(b + "/slack/events", body, content_type, SECRET, sent_at + 1)[0] == 200, "a new signature"
    finally:
        for process, _ in replicas:
            process.send_signal(signal.SIGTERM)
        for process, _ in replicas:
            process.wait(timeout=30)
        standin.stop()


def test_workers_share_one_port_answer_alike_and_stop_together(tmp_path):
    """`run --workers 2`: two processes on one port (SO_REUSEPORT), one leader between them; both answer; a copy
    of a request one accepted is refused by the other; SIGTERM to the first stops both; a worker that dies is
    started again."""
    from tests import slack_requests as slack

    _store_with_a_refresh(tmp_path / "s.db").close()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"alerts": {"schedule": {"lease_seconds": 3}}}))
    standin = SlackStandIn().start()
    first, base = _start(tmp_path, standin, "workers", "--workers", "2")
    try:
        seen: dict[int, dict] = {}
        deadline = time.monotonic() + 90
        while len(seen) < 2 and time.monotonic() < deadline:
            health = _health(base)  # a new connection each time: the kernel spreads them across the processes
            if health:
                seen[health["process"]] = health
            time.sleep(0.05)
        assert len(seen) == 2 and first.pid in seen, seen.keys()
        assert sum(h["leader"]["leading"] for h in seen.values()) == 1, "one leader between the two"
        [worker] = [pid for pid in seen if pid != first.pid]

        answers = set()
        for _ in range(40):
            body = slack.slash_command("/deal-risk", "help", "U002")
            status, text = slack.send(base + "/slack/events", body, "application/x-www-form-urlencoded", SECRET)
            assert status == 200
            answers.add(text)
        assert len(answers) == 1, "every process says the same"
        # Any worker's /metrics counts every worker's answers (prometheus-client's multiprocess mode).
        from prometheus_client.parser import text_string_to_metric_families

        counted = set()
        for _ in range(12):  # new connections: the kernel spreads them across both processes
            with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
                families = {f.name: f.samples for f in text_string_to_metric_families(response.read().decode())}
            [leading] = families["salesintel_leading"]
            counted.add(
                (
                    leading.labels["process"],
                    sum(
                        s.value
                        for s in families["salesintel_request_seconds"]
                        if s.name.endswith("_count") and s.labels["command"] == "/deal-risk"
                    ),
                )
            )
        assert {answered for _, answered in counted} == {40.0}, counted
        assert len({process for process, _ in counted}) == 2, "both workers were scraped"

        os.kill(worker, signal.SIGKILL)
        restarted = None
        deadline = time.monotonic() + 90
        while restarted is None and time.monotonic() < deadline:
            health = _health(base)
            if health and health["process"] not in (first.pid, worker):
                restarted = health["process"]
            time.sleep(0.05)
        assert restarted, "the dead worker was started again"
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        standin.stop()
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(restarted, 0)


def test_the_port_opens_at_once_and_answers_from_the_last_refresh_while_the_start_up_refresh_runs(tmp_path):
    """Slack must not get "connection refused" for the whole start-up refresh: the service listens first, answers
    from the newest complete refresh, and only then computes the new one."""
    from tests import slack_requests as slack

    store = _store_with_a_refresh(tmp_path / "s.db")
    later = datetime.now(UTC) + timedelta(minutes=1)  # a newer export, not refreshed yet: start-up computes it
    newer = (ROOT / "data/skygeni_sales_data.csv").read_text().replace("D00005,", "D00005,", 1) + "\n"
    (tmp_path / "newer.csv").write_text(newer)  # the same deals, another file (its own hash)
    store.save_snapshot(read_snapshot(tmp_path / "newer.csv", IngestSettings()), later, later)
    store.close()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"bot": {"visibility": "everyone", "executives": ["UX"]}}))
    standin = SlackStandIn().start()
    process, base = _start(tmp_path, standin, "start-up")
    try:
        deadline = time.monotonic() + 60
        health = None
        while (not health or health["start_up"] == "starting") and time.monotonic() < deadline:
            health = _health(base)  # "starting" until this process has taken the lease (under load, a moment)
            time.sleep(0.02)
        assert health and health["start_up"] == "refreshing", health
        body = slack.slash_command("/deal-risk", "D00005", "UX")
        status, answer = slack.send(base + "/slack/events", body, "application/x-www-form-urlencoded", SECRET)
        during = _health(base)["start_up"]
        assert status == 200 and "D00005" in answer and "risk" in answer
        assert during == "refreshing", "answered while the start-up refresh was still running"
        while _health(base)["start_up"] != "done" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _health(base)["start_up"] == "done"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        standin.stop()
