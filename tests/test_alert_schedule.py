"""Five simulated weeks of the alert engine (across the March DST change), delivered to a local Slack stand-in.

The scheduler, rules, episodes, outbox and deliverer run for real on a real store (once on SQLite, once on
PostgreSQL); only time is simulated.
Slack is reached over real HTTP by the real slack_sdk client. Along the way the script acknowledges and snoozes
alerts, restarts the service, reruns a job, injects 429s and 5xx, and takes the service down twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from salesintel.alerts.clock import SimulatedClock
from salesintel.alerts.delivery import Deliverer, SlackSender, slack_client
from salesintel.alerts.jobs import RefreshJob, build_jobs, misfire_grace
from salesintel.alerts.ledger import AlertLedger
from salesintel.alerts.outbox import CHART_KIND, Outbox
from salesintel.alerts.runs import AlertEnvironment, realtime_run
from salesintel.alerts.schedule import Scheduler
from salesintel.alerts.settings import AlertsSettings, CronSettings, RoutingSettings, ScheduleSettings
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from salesintel.engine.synth import SynthSpec, generate
from tests.postgres_server import BACKENDS, new_store_target
from tests.slack_standin import SlackStandIn

NY = ZoneInfo("America/New_York")
START, END = datetime(2024, 2, 26, 0, 0, tzinfo=NY), datetime(2024, 4, 1, 12, 0, tzinfo=NY)
CHANNELS = {"daily": "#sales-managers", "weekly": "#cro-vp", "monthly": "#executive", "ops": "#salesintel-ops"}


def routing() -> RoutingSettings:
    users = {f"rep_{i}": {"slack": f"U{i:03d}", "manager": "mgr_a" if i <= 12 else "mgr_b"} for i in range(1, 26)}
    users["rep_23"] = {"email": "rep23@example.com", "manager": "mgr_b"}  # found with users.lookupByEmail
    del users["rep_24"]
    users["mgr_a"], users["mgr_b"] = {"slack": "U901"}, {"slack": "U902"}
    return RoutingSettings(channels=CHANNELS, users=users)  # rep_24 has no Slack user: a permanent error


@dataclass
class Simulation:
    store: Store
    standin: SlackStandIn
    settings: AlertsSettings
    events: dict = field(default_factory=dict)


def _ingest(tmp_path, store: Store) -> None:
    data = generate(SynthSpec(deals=3000, seed=7, start=date(2023, 1, 1), days=460))
    path = tmp_path / "crm.csv"
    data.crm.to_csv(path, index=False)
    taken = datetime(2024, 4, 6, tzinfo=UTC)
    store.save_snapshot(read_snapshot(path, IngestSettings()), taken, taken)


@pytest.fixture(scope="module", params=BACKENDS)
def sim(request, tmp_path_factory) -> Simulation:
    tmp_path = tmp_path_factory.mktemp("sim")
    standin = SlackStandIn(users_by_email={"rep23@example.com": "U023"}).start()
    store = Store.open(new_store_target(request, tmp_path, request.param))
    _ingest(tmp_path, store)
    settings = AlertsSettings(
        schedule=ScheduleSettings(refresh=CronSettings(minute="0", hour="7"), misfire_grace_minutes=120),
        daily_cap_per_recipient=3,
        routing=routing(),
    )
    env = AlertEnvironment(store, settings, NY)
    clock = SimulatedClock(START)
    engine = EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings())

    def service():
        jobs = build_jobs(env, RefreshJob(env, engine, IngestSettings()))
        sender = SlackSender(slack_client("xoxb-test", standin.url), settings, store)
        deliverer = Deliverer(store, sender, settings, clock)
        deliverer.recover_orphans()  # what a restarted leader does first
        return Scheduler(store, jobs, clock, misfire_grace(env)), deliverer

    scheduler, deliverer = service()
    result = Simulation(store, standin, settings)
    down = [
        (datetime(2024, 3, 20, 7, 30, tzinfo=NY), datetime(2024, 3, 20, 9, 30, tzinfo=NY)),
        (datetime(2024, 3, 25, 6, 0, tzinfo=NY), datetime(2024, 3, 25, 12, 0, tzinfo=NY)),
    ]
    ledger = AlertLedger(store)
    moment = START
    while moment < END:
        # Delivery sleeps (per-channel pacing) move the clock a little; each step starts on the half-hour grid.
        if clock.now() < moment:
            clock.set(moment)
        local = moment.astimezone(NY)
        moment += timedelta(minutes=30)
        if any(a <= local < b for a, b in down):
            continue
        if local == datetime(2024, 3, 4, 10, 0, tzinfo=NY):
            _act_on_alerts(result, ledger, clock.now())
        if local == datetime(2024, 3, 5, 12, 0, tzinfo=NY):
            scheduler, deliverer = service()  # a restart: new scheduler, new deliverer, same store
        if local == datetime(2024, 3, 6, 7, 0, tzinfo=NY):
            standin.fail_next("chat.postMessage", ("429", 2), ("500",), ("500",), ("error", "internal_error"))
            result.events["faults_at"] = len(standin.calls)
        if local == datetime(2024, 3, 7, 12, 0, tzinfo=NY):
            before = len(Outbox(store).rows())
            result.events["rerun"] = (realtime_run(env, clock.now()), before, len(Outbox(store).rows()))
        scheduler.tick()
        deliverer.deliver_due()
    result.events["end_statuses"] = Outbox(store).statuses()
    yield result
    standin.stop()


def _act_on_alerts(sim: Simulation, ledger: AlertLedger, now: datetime) -> None:
    """Acknowledge one alert and snooze another (the one whose deal stays open longest) for a week."""
    sent = [a for a in ledger.active("high_value_at_risk") if not a.control and a.sends]
    deals = sim.store.deals(sim.store.latest_snapshot().id).set_index("deal_id")
    sent.sort(key=lambda a: deals.loc[a.deal_id, "closed_date"] if a.deal_id in deals.index else 0)
    snoozed, acked = sent[-1], sent[0]
    ledger.acknowledge(acked.id, "U001", now)
    ledger.snooze(snoozed.id, now + timedelta(weeks=1), "U001", now)
    sim.events.update(
        acked=acked.id, snoozed=snoozed.id, acted_at=len(sim.standin.calls), snooze_until=now + timedelta(weeks=1)
    )


def report_dates(sim: Simulation, channel: str, title: str) -> list[str]:
    return [
        re.search(
            rf"{title} · (\d{{4}}-\d\d-\d\d)",
            c.args["text"] if "·" in c.args["text"] else c.args["blocks"][0]["text"]["text"],
        ).group(1)
        for c in sim.standin.posts(channel)
    ]


def alert_id_of(call) -> int | None:
    for block in call.args.get("blocks") or []:
        if block.get("block_id", "").startswith("alert:"):
            return int(block["block_id"].split(":")[1])
    return None


def test_daily_summary_arrives_once_a_day_at_8_local_across_dst(sim):
    dates = report_dates(sim, "#sales-managers", "Daily pipeline summary")
    expected = [(START.date() + timedelta(days=i)).isoformat() for i in range((END.date() - START.date()).days + 1)]
    expected.remove("2024-03-25")  # down from 06:00 to 12:00: four hours late is beyond the grace period
    assert dates == expected
    runs = dict(sim.store.conn.execute("SELECT fire_time, status FROM job_runs WHERE job = 'daily'").fetchall())
    assert runs["2024-03-08T13:00:00+00:00"] == "done"  # 08:00 EST
    assert runs["2024-03-11T12:00:00+00:00"] == "done"  # 08:00 EDT, after the DST change
    assert runs["2024-03-20T12:00:00+00:00"] == "late"  # down at 08:00, back at 09:30: sent once, late
    assert runs["2024-03-25T12:00:00+00:00"] == "skipped"


def test_weekly_report_on_mondays_and_monthly_deep_dive_on_the_first(sim):
    assert report_dates(sim, "#cro-vp", "Weekly pipeline health") == [
        "2024-02-26",
        "2024-03-04",
        "2024-03-11",
        "2024-03-18",
        "2024-04-01",
    ]
    assert report_dates(sim, "#executive", "Monthly deep-dive") == ["2024-03-01", "2024-04-01"]


def test_every_queued_message_reached_slack_exactly_once(sim):
    sent = Outbox(sim.store).rows("sent")
    messages = [m for m in sent if m.kind != CHART_KIND]
    assert len(sim.standin.posts()) == len(messages) > 100
    charts = [f["name"] for shared in sim.standin.shared_files for f in shared["files"]]
    assert len(charts) == len(set(charts)) == len(sent) - len(messages) > 0, "each report's charts, each once"
    drawn = {f"{m.dedupe_key}:chart:{chart['name']}" for m in messages for chart in m.attachments}
    assert {m.dedupe_key for m in sent if m.kind == CHART_KIND} == drawn, "every chart a sent report carried"
    assert sim.events["end_statuses"].get("pending", 0) == 0 and sim.events["end_statuses"].get("sending", 0) == 0


def test_a_rerun_queues_nothing_new(sim):
    counts, before, after = sim.events["rerun"]
    assert counts["new"] == counts["repeat"] == 0 and before == after


def test_rate_limits_and_server_errors_are_survived(sim):
    faulted = sim.standin.calls[sim.events["faults_at"] :]
    failed = [c for c in faulted[:20] if c.method == "chat.postMessage" and not c.args.get("ok_answer")]
    assert len(failed) == 4
    rate_limited = failed[0]  # the first fault queued is the 429
    delivered = [
        c
        for c in faulted
        if c.args.get("ok_answer")
        and c.args.get("channel") == rate_limited.args["channel"]
        and c.args.get("text") == rate_limited.args["text"]
    ]
    assert delivered, "the message refused with 429 was delivered on a later attempt"


def test_acknowledged_alert_is_never_repeated(sim):
    later = sim.standin.calls[sim.events["acted_at"] :]
    assert not [c for c in later if c.args.get("ok_answer") and alert_id_of(c) == sim.events["acked"]]
    assert AlertLedger(sim.store).get(sim.events["acked"]).acked_by == "U001"


def test_snoozed_alert_is_silent_until_the_snooze_ends_then_speaks_again(sim):
    alert_id, until = sim.events["snoozed"], sim.events["snooze_until"]
    rows = [r for r in Outbox(sim.store).rows() if r.alert_id == alert_id]
    created = [r.created_at for r in rows]
    assert not [c for c in created if until - timedelta(weeks=1) < c < until]
    assert [c for c in created if c >= until], "after the snooze it is re-evaluated and, still at risk, repeated"


def test_permanent_error_is_recorded_and_reported_on_the_ops_channel(sim):
    failed = Outbox(sim.store).rows("failed")
    assert failed and all(r.target == "user:rep_24" and "no Slack user for rep_24" in r.last_error for r in failed)
    ops = [c.args["text"] for c in sim.standin.posts("#salesintel-ops")]
    assert any("could not deliver" in text and "rep_24" in text for text in ops)


def test_email_only_rep_is_found_with_users_lookup_by_email(sim):
    lookups = [c for c in sim.standin.calls if c.method == "users.lookupByEmail"]
    assert [c.args["email"] for c in lookups] == ["rep23@example.com"], "looked up once, then cached in the store"
    assert sim.store.conn.execute("SELECT slack_id FROM slack_users WHERE rep_id = 'rep_23'").fetchone() == ("U023",)
    assert any(c.args["channel"] == "D023" for c in sim.standin.posts())


def test_the_daily_cap_folds_overflow_into_the_next_digest(sim):
    digested = Outbox(sim.store).rows("digested")
    assert digested
    texts = [b["text"]["text"] for c in sim.standin.posts("#sales-managers") for b in c.args["blocks"] if "text" in b]
    assert any("Held over from yesterday" in text for text in texts)
    per_day = {}
    for row in Outbox(sim.store).rows("sent"):
        if row.kind == "realtime":
            day = row.created_at.astimezone(NY).date()
            per_day[(row.target, day)] = per_day.get((row.target, day), 0) + 1
    assert max(per_day.values()) <= sim.settings.daily_cap_per_recipient


def test_the_control_group_receives_nothing(sim):
    control = [a.id for a in AlertLedger(sim.store).listing() if a.control]
    assert control, "with a 10% share some deals must be held back"
    assert not [r for r in Outbox(sim.store).rows() if r.alert_id in control]
    assert not [c for c in sim.standin.posts() if alert_id_of(c) in control]


def test_repeats_and_resolutions_reply_in_the_alerts_thread(sim):
    """Across the five weeks: every follow-up of an alert is a reply to an earlier top-level post in the same
    conversation, and resolutions were sent (only) as replies."""
    posts = sim.standin.posts()
    top = {(c.args["channel"], c.args["answered_ts"]) for c in posts if not c.args.get("thread_ts")}
    replies = [c for c in posts if c.args.get("thread_ts")]
    assert replies, "the simulation repeats and resolves alerts"
    for reply in replies:
        assert (reply.args["channel"], reply.args["thread_ts"]) in top
    resolutions = [c for c in posts if "Resolved:" in c.args.get("text", "")]
    assert resolutions and all(c.args.get("thread_ts") for c in resolutions)
