"""The `salesintel` command as a user runs it (in this process, see `conftest.salesintel`): what it prints and what
it exits with."""

import json
import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_salesforce_export_loads_through_the_config_mapping(salesintel, tmp_path):
    result = salesintel(tmp_path, "ingest", str(ROOT / "tests/fixtures/salesforce_opportunities.csv"))
    assert result.returncode == 0, result.stderr
    assert "(salesforce): read 4, loaded 3, rejected 1" in result.stdout
    assert "IsClosed is not true/false" in result.stdout
    rows = (
        sqlite3.connect(tmp_path / "s.db")
        .execute("SELECT deal_id, outcome, closed_date, deal_amount FROM deals ORDER BY deal_id")
        .fetchall()
    )
    assert rows == [
        ("0061", "Won", "2024-02-10", 52000.0),
        ("0062", "Lost", "2024-03-01", 8000.0),
        ("0063", None, None, 120000.0),
    ]


def test_loading_the_same_file_twice_keeps_one_snapshot(salesintel, tmp_path):
    salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv")
    again = salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv")
    assert "already loaded as snapshot #1" in again.stdout
    assert sqlite3.connect(tmp_path / "s.db").execute("SELECT count(*) FROM snapshots").fetchone() == (1,)


def test_missing_file_exits_non_zero_and_writes_nothing(salesintel, tmp_path):
    result = salesintel(tmp_path, "ingest", "nope.csv")
    assert result.returncode != 0 and "nope.csv: no such file" in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_refresh_then_metrics_tells_the_truth_about_the_bundled_data(salesintel, tmp_path):
    salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv")
    refreshed = salesintel(tmp_path, "refresh", "--as-of", "2024-03-01")
    assert refreshed.returncode == 0, refreshed.stderr
    assert "4003 closed deals, 702 open; 0 of" in refreshed.stdout
    summary = salesintel(tmp_path, "metrics")
    assert "Win rate 45% (n=4,003; 95% CI 44–47%)" in summary.stdout
    assert "No segment's win rate differs significantly from the rest" in summary.stdout
    as_json = json.loads(salesintel(tmp_path, "metrics", "--json", "--as-of", "2024-03-01").stdout)
    assert as_json["significant"] == 0 and as_json["open_pipeline"]["count"] == 702


def test_refresh_before_any_ingest_says_what_to_do(salesintel, tmp_path):
    result = salesintel(tmp_path, "refresh")
    assert result.returncode == 1
    assert "run `salesintel ingest PATH` first" in result.stderr


def test_metrics_before_any_refresh_says_what_to_do(salesintel, tmp_path):
    result = salesintel(tmp_path, "metrics", "--as-of", "2024-03-01")
    assert result.returncode == 1
    assert "no refresh as of 2024-03-01 yet" in result.stderr


def test_risk_answers_for_an_open_deal_and_names_its_method(salesintel, tmp_path):
    salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv")
    result = salesintel(tmp_path, "risk", " d00005 ", "--as-of", "2024-03-01")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("D00005 · $45k · owner rep_2")
    assert "method: segment win rates shrunk toward the overall rate (the model has no skill)" in result.stdout
    assert "adds nothing over the base rate" in result.stdout
    as_json = json.loads(salesintel(tmp_path, "risk", "D00005", "--json").stdout)
    assert as_json["risk"] == pytest.approx(1 - as_json["p_win"]) and as_json["model_version"] == "v1"


@pytest.mark.parametrize(
    "typed, message",
    [
        ("D99999", "no deal D99999 in the snapshot of"),
        ("<!channel>", "is not a deal id"),
        ("D00001", "D00001 is not in the open pipeline as of 2024-03-01: it closed Won on 2023-12-15"),
    ],
)
def test_risk_for_a_deal_it_cannot_answer_says_why(salesintel, tmp_path, typed, message):
    salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv")
    result = salesintel(tmp_path, "risk", typed, "--as-of", "2024-03-01")
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_synth_is_deterministic_and_loads_cleanly(salesintel, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    salesintel(tmp_path, "synth", "--deals", "2000", "--seed", "4", "--out", str(first))
    salesintel(tmp_path, "synth", "--deals", "2000", "--seed", "4", "--out", str(second))
    assert first.read_bytes() == second.read_bytes()
    loaded = salesintel(tmp_path, "ingest", str(first))
    assert "read 2000, loaded 2000, rejected 0" in loaded.stdout


def test_backtest_and_train_on_planted_data(salesintel, tmp_path):
    crm = tmp_path / "crm.csv"
    salesintel(tmp_path, "synth", "--deals", "8000", "--seed", "2", "--out", str(crm))
    salesintel(tmp_path, "ingest", str(crm))
    trained = salesintel(tmp_path, "train", "--as-of", "2024-01-01")
    assert "model v1 as of 2024-01-01" in trained.stdout and "better than the base rate" in trained.stdout
    report = salesintel(tmp_path, "backtest", "--as-of", "2023-12-01", "--to", "2024-01-01", "--every", "31")
    assert report.returncode == 0, report.stderr
    assert report.stdout.count("Backtest as of") == 2 and "lift" in report.stdout


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("realtime", "no deal qualifies for a real-time alert as of 2024-03-01"),
        ("daily", "Daily pipeline summary · 2024-03-01"),
        ("weekly", "No lead source is significantly weaker than the rest."),
        ("monthly", "No segment departed from its own baseline beyond chance"),
    ],
)
def test_report_renders_each_kind_on_the_bundled_data_without_sending(salesintel, tmp_path, kind, expected):
    salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv")
    result = salesintel(tmp_path, "report", kind, "--as-of", "2024-03-01")
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    outbox = sqlite3.connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert outbox == 0, "report only renders"


def test_report_lists_a_weekly_reports_charts_and_writes_them_where_asked(salesintel, tmp_path):
    salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv")
    result = salesintel(tmp_path, "report", "weekly", "--as-of", "2024-03-01", "--charts", str(tmp_path / "png"))
    assert result.returncode == 0, result.stderr
    assert "[chart: Win rate by month of close] → " in result.stdout and "95% interval: " in result.stdout
    written = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert written == ["cohorts.png", "pipeline.png", "risk.png", "win_rate.png"]
    assert all((tmp_path / "png" / name).read_bytes().startswith(b"\x89PNG") for name in written)


def test_alert_commands_acknowledge_idempotently(salesintel, tmp_path):
    crm = tmp_path / "crm.csv"
    salesintel(tmp_path, "synth", "--deals", "3000", "--seed", "7", "--out", str(crm))
    salesintel(tmp_path, "ingest", str(crm))
    salesintel(tmp_path, "refresh", "--as-of", "2024-03-01")
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(
        "INSERT INTO alerts (key, rule, deal_id, episode, state, control, risk, sends) "
        "VALUES ('high_value_at_risk:D00001:1', 'high_value_at_risk', 'D00001', 1, 'open', 0, 0.8, 1)"
    )
    db.commit()
    assert "#1     high_value_at_risk   D00001" in salesintel(tmp_path, "alerts").stdout
    first = salesintel(tmp_path, "alerts", "ack", "1", "--by", "maria")
    assert "alert #1 acknowledged by maria" in first.stdout
    again = salesintel(tmp_path, "alerts", "ack", "1", "--by", "maria")
    assert "already acknowledged: nothing changed" in again.stdout
    assert "no alert #9" in salesintel(tmp_path, "alerts", "snooze", "9", "--for", "1d").stderr


def test_a_slack_user_set_in_the_store_is_listed_and_used_for_mentions(salesintel, tmp_path):
    assert "rep_7 → U0777" in salesintel(tmp_path, "users", "set", "rep_7", "U0777").stdout
    assert "rep_7          U0777          store" in salesintel(tmp_path, "users").stdout
    row = (
        sqlite3.connect(tmp_path / "s.db").execute("SELECT slack_id FROM slack_users WHERE rep_id = 'rep_7'").fetchone()
    )
    assert row == ("U0777",)
