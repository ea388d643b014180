"""The weekly and monthly reports carry charts: PNGs rendered headless, with alt text that states the numbers they
plot, uploaded into the report's thread through Slack's files upload API (to the stand-in, over real HTTP)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import matplotlib.image

from salesintel.alerts.charts import anomaly_chart, report_charts
from salesintel.alerts.clock import SimulatedClock
from salesintel.alerts.delivery import Deliverer, SlackSender, slack_client
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


def test_a_weekly_report_is_posted_with_its_charts_in_its_thread(tmp_path):
    store = Store.open(tmp_path / "s.db")
    taken = datetime(2026, 11, 24, tzinfo=UTC)
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), date(2024, 3, 1), taken)
    standin = SlackStandIn().start()
    settings = AlertsSettings(delivery=DeliverySettings(channel_pace_seconds=0))
    env = AlertEnvironment(store, settings, ZoneInfo("America/New_York"))
    assert report_run("weekly", env, NOW, "2024-03-04T14:00:00+00:00")
    sender = SlackSender(slack_client("xoxb-c", standin.url), settings, store)
    assert Deliverer(store, sender, settings, SimulatedClock(NOW)).deliver_due() == 1
    [report] = standin.posts("#cro-vp")
    completed = [c for c in standin.calls if c.method == "files.completeUploadExternal"]
    uploads = [c for c in standin.calls if c.method == "file_upload"]
    asked = [c for c in standin.calls if c.method == "files.getUploadURLExternal"]
    assert len(completed) == len(uploads) == len(asked) == 4
    assert all(c.args["thread_ts"] == report.args["answered_ts"] for c in completed), "in the report's thread"
    assert all(u.args["data"].startswith(b"\x89PNG") for u in uploads)
    assert all(a.args.get("alt_txt") for a in asked), "every chart carries its alt text"
    standin.stop()


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
