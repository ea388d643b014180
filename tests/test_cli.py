"""`salesintel ingest` as a user runs it: counts printed, reloads idempotent, the Salesforce mapping works."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def salesintel(tmp_path, *args):
    env = {"SALESINTEL_DB": str(tmp_path / "s.db"), "PATH": ""}
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(ROOT / "config.yaml"), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)


def test_salesforce_export_loads_through_the_config_mapping(tmp_path):
    result = salesintel(tmp_path, "ingest", str(ROOT / "tests/fixtures/salesforce_opportunities.csv"))
    assert result.returncode == 0, result.stderr
    assert "(salesforce): read 4, loaded 3, rejected 1" in result.stdout
    assert "IsClosed is not true/false" in result.stdout
    rows = sqlite3.connect(tmp_path / "s.db").execute(
        "SELECT deal_id, outcome, closed_date, deal_amount FROM deals ORDER BY deal_id").fetchall()
    assert rows == [("0061", "Won", "2024-02-10", 52000.0), ("0062", "Lost", "2024-03-01", 8000.0),
                    ("0063", None, None, 120000.0)]


def test_loading_the_same_file_twice_keeps_one_snapshot(tmp_path):
    salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv")
    again = salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv")
    assert "already loaded as snapshot #1" in again.stdout
    assert sqlite3.connect(tmp_path / "s.db").execute("SELECT count(*) FROM snapshots").fetchone() == (1,)


def test_missing_file_exits_non_zero_and_writes_nothing(tmp_path):
    result = salesintel(tmp_path, "ingest", "nope.csv")
    assert result.returncode != 0 and "nope.csv: no such file" in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_refresh_then_metrics_tells_the_truth_about_the_bundled_data(tmp_path):
    salesintel(tmp_path, "ingest", "data/skygeni_sales_data.csv")
    refreshed = salesintel(tmp_path, "refresh", "--as-of", "2024-03-01")
    assert refreshed.returncode == 0, refreshed.stderr
    assert "4003 closed deals, 702 open; 0 of" in refreshed.stdout
    summary = salesintel(tmp_path, "metrics")
    assert "Win rate 45% (n=4,003; 95% CI 44–47%)" in summary.stdout
    assert "No segment's win rate differs significantly from the rest" in summary.stdout
    as_json = json.loads(salesintel(tmp_path, "metrics", "--json", "--as-of", "2024-03-01").stdout)
    assert as_json["significant"] == 0 and as_json["open_pipeline"]["count"] == 702


def test_refresh_before_any_ingest_says_what_to_do(tmp_path):
    result = salesintel(tmp_path, "refresh")
    assert result.returncode == 1
    assert "run `salesintel ingest PATH` first" in result.stderr


def test_metrics_before_any_refresh_says_what_to_do(tmp_path):
    result = salesintel(tmp_path, "metrics", "--as-of", "2024-03-01")
    assert result.returncode == 1
    assert "no refresh as of 2024-03-01 yet" in result.stderr
