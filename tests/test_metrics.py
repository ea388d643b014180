"""Metrics as of a date: the as-of cut, segment findings under false-discovery control, PQI and RES."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from salesintel.engine.asof import view_as_of
from salesintel.engine.metrics import compute_metrics
from salesintel.engine.quality import pipeline_quality_index, revenue_efficiency_score
from salesintel.engine.settings import MetricsSettings

TAKEN = date(2030, 1, 1)


def deals_frame(rows):
    frame = pd.DataFrame(rows)
    for column in ("created_date", "closed_date"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def book(n=2000, seed=7, planted=None):
    """n closed deals over 2023 with random attributes; `planted` = (field, value, win rate) for one segment."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    cycle = rng.integers(5, 120, n)
    frame = pd.DataFrame(
        {
            "deal_id": [f"D{i:05d}" for i in range(n)],
            "deal_name": None,
            "created_date": created,
            "closed_date": created + pd.to_timedelta(cycle, unit="D"),
            "sales_rep_id": rng.choice([f"rep_{i}" for i in range(5)], n),
            "industry": rng.choice(["SaaS", "FinTech", "EdTech"], n),
            "region": rng.choice(["APAC", "Europe"], n),
            "product_type": rng.choice(["Core", "Pro"], n),
            "lead_source": rng.choice(["Inbound", "Outbound"], n),
            "deal_stage": rng.choice(["Demo", "Proposal"], n),
            "deal_amount": rng.integers(1000, 90000, n).astype(float),
            "sales_cycle_days": cycle,
        }
    )
    p = np.full(n, 0.45)
    if planted:
        field, value, rate = planted
        p[frame[field].eq(value).to_numpy()] = rate
    frame["outcome"] = np.where(rng.random(n) < p, "Won", "Lost")
    return frame


def test_a_deal_closed_after_the_date_is_open_and_its_future_is_blanked():
    deals = deals_frame(
        [
            {
                "deal_id": "A",
                "created_date": "2024-01-01",
                "closed_date": "2024-02-01",
                "outcome": "Won",
                "deal_stage": "Closed",
                "deal_amount": 1.0,
                "sales_cycle_days": 31,
            },
            {
                "deal_id": "B",
                "created_date": "2024-01-10",
                "closed_date": "2024-04-01",
                "outcome": "Lost",
                "deal_stage": "Closed",
                "deal_amount": 1.0,
                "sales_cycle_days": 82,
            },
            {
                "deal_id": "C",
                "created_date": "2024-03-05",
                "closed_date": None,
                "outcome": None,
                "deal_stage": "Demo",
                "deal_amount": 1.0,
                "sales_cycle_days": None,
            },
        ]
    )
    view = view_as_of(deals, date(2024, 3, 1), TAKEN)
    assert list(view.history["deal_id"]) == ["A"]
    assert list(view.open["deal_id"]) == ["B"]
    opened = view.open.iloc[0]
    assert opened["outcome"] is None and pd.isna(opened["closed_date"]) and pd.isna(opened["sales_cycle_days"])
    assert opened["deal_stage"] is None, "a later snapshot's stage is not known at the as-of date"
    assert opened["age_days"] == 51


def test_the_stage_is_used_when_the_snapshot_is_not_newer_than_the_date():
    deals = deals_frame(
        [
            {
                "deal_id": "C",
                "created_date": "2024-03-01",
                "closed_date": None,
                "outcome": None,
                "deal_stage": "Demo",
                "deal_amount": 1.0,
                "sales_cycle_days": None,
            }
        ]
    )
    assert view_as_of(deals, date(2024, 3, 5), date(2024, 3, 5)).open.iloc[0]["deal_stage"] == "Demo"


def test_nothing_after_the_as_of_date_changes_the_metrics():
    deals = book()
    as_of = date(2023, 9, 1)
    rewritten = deals.copy()
    later = rewritten["closed_date"] > pd.Timestamp(as_of)
    rewritten.loc[later, "outcome"] = "Won"
    rewritten.loc[later, "deal_stage"] = "Negotiation"
    rewritten.loc[later, "closed_date"] += pd.Timedelta(days=30)
    rewritten.loc[later, "sales_cycle_days"] += 30
    settings = MetricsSettings()
    assert compute_metrics(deals, as_of, TAKEN, settings) == compute_metrics(rewritten, as_of, TAKEN, settings)


def test_noise_yields_no_finding_and_says_so():
    metrics = compute_metrics(book(seed=3), date(2024, 6, 1), TAKEN, MetricsSettings())
    assert metrics["significant"] == 0
    assert metrics["statement"].startswith("No segment's win rate differs significantly")


def test_a_planted_segment_is_found_significant():
    metrics = compute_metrics(
        book(planted=("lead_source", "Outbound", 0.25)), date(2024, 6, 1), TAKEN, MetricsSettings()
    )
    outbound = next(s for s in metrics["segments"] if s["value"] == "Outbound")
    assert outbound["status"] == "significant" and outbound["rate"]["rate"] < 0.3
    assert "Lead source Outbound" in metrics["statement"]


def test_a_small_segment_is_insufficient_data_and_never_a_finding():
    deals = book(n=600, planted=("sales_rep_id", "rep_0", 0.0))
    metrics = compute_metrics(deals, date(2024, 6, 1), TAKEN, MetricsSettings(min_sample=200))
    rep = next(s for s in metrics["segments"] if s["value"] == "rep_0")
    assert rep["status"] == "insufficient data" and rep["q_value"] is None
    assert "insufficient data" in metrics["statement"]


def test_pqi_is_high_probability_value_share_times_mean_over_median():
    amounts = pd.Series([10.0, 20.0, 90.0])
    result = pipeline_quality_index(amounts, pd.Series([0.9, 0.1, 0.6]), high_probability=0.5)
    assert result["high_probability_share"] == pytest.approx(100 / 120)
    assert result["size_ratio"] == pytest.approx(40 / 20)
    assert result["pqi"] == pytest.approx(100 / 120 * 2)


def test_res_is_won_revenue_share_times_win_rate():
    closed = pd.DataFrame({"deal_amount": [100.0, 300.0, 600.0], "won": [True, False, True]})
    result = revenue_efficiency_score(closed)
    assert result["res"] == pytest.approx(0.7 * 2 / 3)
