"""The weekly and monthly reports carry charts: PNGs rendered headless, with alt text that states the numbers they
plot, uploaded into the report's thread through Slack's files upload API (to the stand-in, over real HTTP)."""

from __future__ import annotations

import io
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import matplotlib.image
import pytest

from salesintel.alerts.charts import anomaly_chart, report_charts
from salesintel.alerts.clock import SimulatedClock
from salesintel.alerts.delivery import Deliverer, SlackSender, slack_client
from salesintel.alerts.outbox import CHART_KIND, FAILED, PENDING, SENT, Outbox
from salesintel.alerts.runs import AlertEnvironment, report_run
from salesintel.alerts.settings import AlertsSettings, DeliverySettings
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from tests.engine_fixtures import ROOT
from tests.slack_standin import SlackStandIn

NOW = datetime(2024, 3, 4, 14, tzinfo=UTC)


def _image(png: bytes):
    return matplotlib.image.imread(io.BytesIO(png), format="png")


def test_the_bundled_datas_charts_are_images_whose_alt_text_states_their_numbers(bundled_store):
    refresh_row = bundled_store.latest_refresh()
    metrics = refresh_row.metrics
    scores = bundled_store.scores(refresh_row.id)
    charts = {c.name: c for c in report_charts("weekly", metrics.trend, scores, metrics.risk_rule, [])}
    assert set(charts) == {"win_rate", "cohorts", "pipeline", "risk"}
    for chart in charts.values():
        height, width, _ = _image(chart.png).shape
        assert width > 400 and height > 200
    last = [t for t in metrics.trend if t["win_rate"]["n"]][-1]
    rate = last["win_rate"]
    assert f"{last['period']} {rate['rate']:.0%} ({rate['low']:.0%}–{rate['high']:.0%}, n={rate['n']})" in (
        charts["win_rate"].alt
    )
    cohort = [t for t in metrics.trend if t["cohort"]["win_rate"]["n"]][0]
    closed = cohort["cohort"]
    assert (
        f"{cohort['period']} {closed['win_rate']['rate']:.0%} ({closed['win_rate']['low']:.0%}–"
        f"{closed['win_rate']['high']:.0%}, n={closed['win_rate']['n']} closed of {closed['created']} created"
    ) in charts["cohorts"].alt
    assert "under half its deals closed speaks only for its fast deals" in charts["cohorts"].alt
    live = [s for s in scores if not s.stale]
    assert f"{len(live)} live deals" in charts["pipeline"].alt
    assert f"Risk of {len(live)} open live deals" in charts["risk"].alt
    assert "no deal is called at risk" in charts["risk"].alt, "the bundled data has no skill: the rule is silent"


def test_an_anomaly_chart_shows_the_segment_against_its_baseline_with_intervals():
    anomaly = {
        "label": "Outbound × APAC",
        "signals": {"win_rate": {"recent": 0.2, "baseline": 0.5, "n_recent": 60, "n_baseline": 300}},
    }
    chart = anomaly_chart(anomaly)
    assert chart.alt.startswith("Outbound × APAC: win rate 20% recently (")
    assert "n=60" in chart.alt and "against 50% in its baseline" in chart.alt and "n=300" in chart.alt
    assert _image(chart.png).shape[1] > 300


@pytest.fixture
def weekly_report(tmp_path):
    """A store whose outbox holds the weekly report (with its four charts), and a Slack stand-in to send it to."""
    store = Store.open(tmp_path / "s.db")
    taken = datetime(2026, 11, 24, tzinfo=UTC)
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), date(2024, 3, 1), taken)
    standin = SlackStandIn().start()
    settings = AlertsSettings(delivery=DeliverySettings(channel_pace_seconds=0))
    env = AlertEnvironment(store, settings, ZoneInfo("America/New_York"))
    assert report_run("weekly", env, NOW, "2024-03-04T14:00:00+00:00")
    yield store, standin, settings, SlackSender(slack_client("xoxb-c", standin.url), settings, store)
    standin.stop()


def shared_charts(standin, report) -> list[str]:
    """The file names shared in the report's thread, as Slack's conversations.replies lists them."""
    thread = standin.replies(report.args["channel"], report.args["answered_ts"])
    return [f["name"] for message in thread for f in message.get("files", [])]


def test_a_weekly_report_is_posted_with_its_charts_in_its_thread(weekly_report):
    store, standin, settings, sender = weekly_report
    assert Deliverer(store, sender, settings, SimulatedClock(NOW)).deliver_due() == 5, "the report, then 4 charts"
    [report] = standin.posts("#cro-vp")
    completed = [c for c in standin.calls if c.method == "files.completeUploadExternal"]
    uploads = [c for c in standin.calls if c.method == "file_upload"]
    asked = [c for c in standin.calls if c.method == "files.getUploadURLExternal"]
    assert len(completed) == len(uploads) == len(asked) == 4
    assert all(c.args["thread_ts"] == report.args["answered_ts"] for c in completed), "in the report's thread"
    assert all(u.args["data"].startswith(b"\x89PNG") for u in uploads)
    assert all(a.args.get("alt_txt") for a in asked), "every chart carries its alt text"
    assert len(set(shared_charts(standin, report))) == 4


def test_a_failed_chart_upload_is_retried_without_posting_the_report_again(weekly_report):
    store, standin, settings, sender = weekly_report
    clock = SimulatedClock(NOW)
    standin.fail_next("files.completeUploadExternal", ("500",), ("error", "internal_error"))
    assert Deliverer(store, sender, settings, clock).deliver_due() == 3, "the report and two charts; two wait"
    [report] = standin.posts("#cro-vp")
    waiting = [m for m in Outbox(store).rows(PENDING) if m.kind == CHART_KIND]
    assert len(waiting) == 2 and all(m.last_error for m in waiting)
    clock.advance(timedelta(minutes=10))
    assert Deliverer(store, sender, settings, clock).deliver_due() == 2
    assert len(standin.posts("#cro-vp")) == 1, "the report is posted once"
    names = shared_charts(standin, report)
    assert len(names) == len(set(names)) == 4, "every chart once, in the report's thread"
    assert {m.status for m in Outbox(store).rows()} == {SENT}


def test_a_chart_in_flight_at_a_crash_is_found_in_the_thread_not_uploaded_twice(weekly_report):
    store, standin, settings, sender = weekly_report
    clock = SimulatedClock(NOW)
    dead = Deliverer(store, sender, settings, clock, holder="dead")
    assert dead.deliver_due(limit=1) == 1, "the report is posted and its charts queued"
    chart = next(m for m in Outbox(store).due(NOW) if m.kind == CHART_KIND)
    assert Outbox(store).claim(chart.id, "dead", NOW, timedelta(minutes=5))
    sender.send(chart)  # the upload reaches Slack; the process dies before marking it sent
    alive = Deliverer(store, sender, settings, clock, holder="alive")
    assert alive.recover_orphans() == {"found": 1, "requeued": 0}
    assert alive.deliver_due() == 3
    [report] = standin.posts("#cro-vp")
    names = shared_charts(standin, report)
    assert len(names) == len(set(names)) == 4
    assert f"{chart.attachments[0]['name']}-{chart.id}.png" in names


def test_a_chart_slack_refuses_is_reported_on_the_ops_channel_and_the_report_stands(weekly_report):
    store, standin, settings, sender = weekly_report
    standin.fail_next("files.getUploadURLExternal", *[("error", "missing_scope")] * 4)
    Deliverer(store, sender, settings, SimulatedClock(NOW)).deliver_due()
    assert len(standin.posts("#cro-vp")) == 1
    failed = [m for m in Outbox(store).rows(FAILED)]
    assert len(failed) == 4 and all(m.kind == CHART_KIND and m.last_error == "missing_scope" for m in failed)
    [ops] = standin.posts("#salesintel-ops")  # one report for the day, not one per chart
    text = ops.args["text"]
    assert "could not upload the chart “" in text and "the weekly report in #cro-vp: missing_scope" in text
    assert "needs the files:write scope" in text and "The report itself was posted" in text


def test_a_chart_upload_that_timed_out_but_reached_slack_is_found_in_the_thread_not_uploaded_again(weekly_report):
    """The client gives up waiting, Slack shares the file anyway: the retry waits at least a minute (a file shows
    in its thread a moment after the call), looks in the thread, finds it, and marks it sent."""
    store, standin, settings, _ = weekly_report
    sender = SlackSender(slack_client("xoxb-c", standin.url, timeout=1), settings, store)
    clock = SimulatedClock(NOW)
    standin.fail_next("files.completeUploadExternal", ("slow", 2.5))
    assert Deliverer(store, sender, settings, clock).deliver_due() == 4, "the report and three charts"
    [late] = [m for m in Outbox(store).rows(PENDING) if m.kind == CHART_KIND]
    assert late.last_error and late.attempts == 1
    assert Outbox(store).due(NOW + timedelta(seconds=59)) == [], "not looked for before a minute has passed"
    deadline = time.monotonic() + 10
    while len(standin.shared_files) < 4:  # the stand-in finishes the call the client gave up on
        assert time.monotonic() < deadline
        time.sleep(0.05)
    clock.advance(timedelta(minutes=2))
    assert Deliverer(store, sender, settings, clock).deliver_due() == 0, "found, not sent again"
    [found] = [m for m in Outbox(store).rows(SENT) if m.id == late.id]
    assert found.note == "an earlier attempt reached Slack" and Outbox(store).rows(PENDING) == []
    [report] = standin.posts("#cro-vp")
    names = shared_charts(standin, report)
    assert len(names) == len(set(names)) == 4


def test_a_cohort_counts_only_deals_created_in_its_month_and_closed_by_the_date():
    """Point in time: a deal created in January that closes after the as-of date is open for January's cohort."""
    import pandas as pd

    from salesintel.engine.metrics import _creation_cohort
    from salesintel.engine.settings import MetricsSettings

    created = pd.to_datetime(pd.Series(["2024-01-05", "2024-01-20", "2024-01-25", "2024-02-02"]))
    closed = pd.to_datetime(pd.Series(["2024-01-30", "2024-02-10", "2024-03-20", "2024-02-20"]))
    outcome = pd.Series(["Won", "Lost", "Won", "Won"])
    as_of = date(2024, 3, 1)
    decided = outcome.notna() & (closed <= pd.Timestamp(as_of))
    cohort = _creation_cohort(
        created.dt.to_period("M") == pd.Period("2024-01", "M"),
        created,
        decided,
        outcome.eq("Won"),
        as_of,
        MetricsSettings(),
    )
    assert cohort["created"] == 3 and cohort["win_rate"]["n"] == 2 and cohort["win_rate"]["wins"] == 1
    assert abs(cohort["decided_share"] - 2 / 3) < 1e-9
