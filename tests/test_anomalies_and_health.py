"""Segment anomalies (planted vs none) and the ops checks: stale CRM data, model drift."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from salesintel.alerts.outbox import Outbox
from salesintel.alerts.rules import drift_problems, stale_data
from salesintel.alerts.runs import AlertEnvironment, health_checks
from salesintel.alerts.settings import AlertsSettings
from salesintel.engine.anomalies import find_anomalies
from salesintel.engine.asof import view_as_of
from salesintel.engine.drift import population_stability
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from tests.engine_fixtures import LATER, ROOT, bundled, space_for

AS_OF = date(2024, 3, 1)


def anomalies_of(deals, settings: AnomalySettings | None = None):
    settings = settings or AnomalySettings()
    view = view_as_of(deals, AS_OF, LATER)
    return find_anomalies(
        view.history, deals[deals["created_date"] <= pd.Timestamp(AS_OF)], AS_OF, settings, space_for(view)
    )


def test_the_bundled_data_has_no_anomaly_and_says_so():
    result = anomalies_of(bundled())
    assert result["anomalies"] == [] and result["cells_tested"] > 50
    assert result["statement"].startswith("No segment departed from its own baseline beyond chance")


def test_a_planted_collapse_in_one_pair_is_found_with_its_hypothesis():
    deals = bundled()
    recent = deals["closed_date"] > pd.Timestamp(AS_OF) - pd.Timedelta(days=90)
    cell = (
        recent
        & deals["industry"].eq("FinTech")
        & deals["region"].eq("APAC")
        & (deals["closed_date"] <= pd.Timestamp(AS_OF))
    )
    rng = np.random.default_rng(0)
    deals.loc[cell, "outcome"] = np.where(rng.random(cell.sum()) < 0.08, "Won", "Lost")
    deals.loc[cell, "sales_cycle_days"] = deals.loc[cell, "sales_cycle_days"] + 60
    result = anomalies_of(deals, AnomalySettings(min_sample=30))  # the pair has ~45 recent closes
    labels = [a["label"] for a in result["anomalies"]]
    assert "FinTech × APAC" in labels
    found = result["anomalies"][labels.index("FinTech × APAC")]
    assert found["signals"]["win_rate"]["significant"] and found["signals"]["win_rate"]["direction"] == "down"
    assert found["signals"]["cycle_days"]["significant"]
    assert "drag on and are then lost" in found["hypothesis"] and found["next_steps"]


def test_stale_data_is_an_ops_alert_once_per_snapshot(tmp_path, caplog):
    store = Store.open(tmp_path / "s.db")
    taken = datetime(2024, 3, 1, 6, tzinfo=UTC)
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), AS_OF, taken)
    env = AlertEnvironment(store, AlertsSettings(), ZoneInfo("UTC"))
    assert health_checks(env, taken + timedelta(hours=20)) == []
    problems = health_checks(env, taken + timedelta(hours=30))
    assert problems and "CRM data is 30 hours old" in problems[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="salesintel.alerts"):
        health_checks(env, taken + timedelta(hours=40))
    ops = [r for r in Outbox(store).rows() if r.kind == "ops"]
    assert len(ops) == 1 and ops[0].target == "channel:#salesintel-ops"
    assert "CRM data is" not in caplog.text, "the same problem is not logged again on every check"


def test_stale_warning_wording():
    taken = datetime(2024, 3, 1, tzinfo=UTC)
    assert stale_data(taken, taken + timedelta(hours=23), AlertsSettings()) is None
    assert "3 days old" in stale_data(taken, taken + timedelta(days=3), AlertsSettings())


def test_population_shift_past_the_threshold_is_a_drift_problem():
    assert population_stability({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0
    shifted = population_stability({"a": 0.9, "b": 0.1}, {"a": 0.3, "b": 0.7})
    drift = {"psi": {"lead_source": shifted}, "model_has_skill": False, "skill": {"auc": None}}
    assert drift_problems(drift, AlertsSettings()) == [
        f"open pipeline has shifted on lead_source (PSI {shifted:.2f} > 0.25)"
    ]


def test_the_findings_a_forked_process_computes_beside_scoring_are_the_inline_ones(tmp_path):
    """Large snapshots compute trend, drift and anomalies in a forked child (engine.background); the refresh must
    store exactly what the inline path stores."""
    taken = datetime(2024, 3, 1, 6, tzinfo=UTC)
    stored = []
    for background_from in (0, 10**9):  # every snapshot forks; none does
        store = Store.open(tmp_path / f"s{background_from}.db")
        store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
        settings = EngineSettings(
            MetricsSettings(), ModelSettings(), AnomalySettings(), background_from_deals=background_from
        )
        stored.append(refresh(store, settings, AS_OF, taken).metrics.to_json())
    assert stored[0]["anomalies"]["cells_tested"] > 50 and len(stored[0]["trend"]) == 12
    assert stored[0] == stored[1]


def test_findings_that_fail_while_the_scores_are_written_leave_no_trace_of_the_refresh(tmp_path, monkeypatch):
    """The scores are written while the findings still run in their process; if those then fail, the refresh is
    rolled back whole: no refresh, no scores, no reasons (readers never see half a refresh)."""
    from salesintel.engine import refresh as refresh_module

    def findings_that_die(*args):
        raise RuntimeError("the anomaly scan ran out of memory")

    monkeypatch.setattr(refresh_module, "_findings", findings_that_die)
    taken = datetime(2024, 3, 1, 6, tzinfo=UTC)
    store = Store.open(tmp_path / "store.db")
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    settings = EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings(), background_from_deals=0)
    with pytest.raises(Exception, match="ran out of memory"):
        refresh(store, settings, AS_OF, taken)
    for table in ("refreshes", "scores", "refresh_reasons"):
        assert store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    assert store.latest_refresh() is None


def test_a_refresh_with_the_stage_known_counts_open_deals_with_no_stage(tmp_path):
    """Stage is a categorical in the deal frame; an open deal with a blank stage is counted as "(not recorded)"
    (filling a categorical with a new level raised, and failed every refresh of a current export)."""
    crm = pd.read_csv(ROOT / "data/skygeni_sales_data.csv")
    open_then = (pd.to_datetime(crm["created_date"]) <= pd.Timestamp(AS_OF)) & (
        pd.to_datetime(crm["closed_date"]) > pd.Timestamp(AS_OF) + pd.Timedelta(days=30)
    )
    crm.loc[crm.index[open_then][:5], "deal_stage"] = ""
    crm.to_csv(tmp_path / "crm.csv", index=False)
    taken = datetime(2024, 3, 1, 6, tzinfo=UTC)  # the as-of date is the snapshot's: stage known
    store = Store.open(tmp_path / "s.db")
    store.save_snapshot(read_snapshot(tmp_path / "crm.csv", IngestSettings()), taken, taken)
    metrics = refresh(
        store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), AS_OF, taken
    ).metrics.to_json()
    assert metrics["stage_known"]
    by_stage = {row["stage"]: row["count"] for row in metrics["open_pipeline"]["by_stage"]}
    assert by_stage["(not recorded)"] == 5
