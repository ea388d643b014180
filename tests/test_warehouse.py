"""The warehouse source against a real PostgreSQL table, typed as a warehouse's would be (dates as timestamps,
amounts as numerics): the same snapshot as the same data in a CSV file, the same rejects, the same guard, on the
command line and on the service's schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy
import yaml

from salesintel.alerts.runs import AlertEnvironment
from salesintel.alerts.settings import AlertsSettings
from salesintel.bot.config import load_settings
from salesintel.engine.ingest import IngestError, read_snapshot
from salesintel.engine.refresh import EngineSettings
from salesintel.engine.store import Store
from salesintel.engine.synth import MessySpec, generate_messy, messy_layout
from salesintel.engine.warehouse import WarehouseSource, read_warehouse
from tests.engine_fixtures import ROOT

SPEC = MessySpec(deals=1200, seed=11)
QUERY = "SELECT * FROM crm_deals ORDER BY row_number"


def _sqlalchemy_url(postgres_url: str) -> str:
    return postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def warehouse(tmp_path, postgres_url):
    """The messy export as a typed warehouse table (plus a few rows a warehouse can hold and a deal must not), and
    the same rows as a CSV file; a config whose layout maps them."""
    crm = generate_messy(SPEC).crm
    bad = crm.iloc[:3].copy()
    bad["deal_id"] = [crm["deal_id"].iloc[10], "W-NEG", "W-BACKWARDS"]  # a repeated id, then two impossible deals
    bad.loc[bad.index[1], "deal_amount"] = -5
    bad.loc[bad.index[2], ["created_date", "closed_date"]] = ["2024-05-01", "2024-04-01"]
    crm = pd.concat([crm, bad], ignore_index=True)
    crm.to_csv(tmp_path / "crm.csv", index=False)
    typed = crm.assign(
        created_date=pd.to_datetime(crm["created_date"]),
        closed_date=pd.to_datetime(crm["closed_date"]),
        row_number=range(len(crm)),
    )
    engine = sqlalchemy.create_engine(_sqlalchemy_url(postgres_url))
    with engine.begin() as connection:
        typed.to_sql("crm_deals", connection, index=False, dtype={"deal_amount": sqlalchemy.Numeric(14, 2)})
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["ingest"]["layouts"]["messy"] = messy_layout()
    config["ingest"]["layout"] = "messy"
    config["ingest"]["warehouse"] = {"query": QUERY}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    yield _sqlalchemy_url(postgres_url), engine, tmp_path
    engine.dispose()


def test_a_warehouse_table_gives_the_snapshot_its_csv_export_gives(warehouse):
    url, _, folder = warehouse
    settings = load_settings(folder / "config.yaml").ingest
    from_sql = read_warehouse(WarehouseSource(url, QUERY), settings)
    from_csv = read_snapshot(folder / "crm.csv", settings)
    pd.testing.assert_frame_equal(from_sql.deals.drop(columns="line"), from_csv.deals.drop(columns="line"))
    kinds = lambda rejects: [(r.line, r.deal_id, [x.split(":")[0] for x in r.reasons]) for r in rejects]  # noqa: E731
    assert kinds(from_sql.rejects) == kinds(from_csv.rejects)  # the values named as each source holds them
    assert {r.deal_id for r in from_sql.rejects} >= {"W-NEG", "W-BACKWARDS"}
    assert len(from_sql.rejects) == 3 and from_sql.fields == from_csv.fields and from_sql.layout == "messy"
    assert read_warehouse(WarehouseSource(url, QUERY), settings).sha256 == from_sql.sha256, "same rows, same hash"
    backwards = read_warehouse(WarehouseSource(url, QUERY + " DESC"), settings)
    assert backwards.sha256 == from_sql.sha256, "the same rows in another order are the same snapshot"


def test_ingest_warehouse_on_the_command_line_loads_once_and_guards_a_shrunken_result(
    salesintel, warehouse, tmp_path, monkeypatch
):
    url, engine, folder = warehouse
    monkeypatch.setenv("SALESINTEL_WAREHOUSE_URL", url)
    config = folder / "config.yaml"
    first = salesintel(tmp_path, "ingest", "--warehouse", config=config)
    assert first.returncode == 0, first.stderr
    assert "snapshot #1 (messy): read 1203, loaded 1200, rejected 3" in first.stdout
    again = salesintel(tmp_path, "ingest", "--warehouse", config=config)
    assert "already loaded as snapshot #1" in again.stdout
    with engine.begin() as connection:  # someone's filter in the warehouse keeps a tenth of the deals
        connection.execute(sqlalchemy.text("DELETE FROM crm_deals WHERE row_number % 10 != 0"))
    held = salesintel(tmp_path, "ingest", "--warehouse", config=config)
    assert held.returncode == 1 and "stored but not used" in held.stderr
    assert "salesintel ingest --warehouse --accept" in held.stderr
    store = Store.open(tmp_path / "s.db")
    assert store.latest_snapshot().id == 1
    [ops] = [m for m in store.outbox.in_status() if m.kind == "ops"]
    assert "from the warehouse postgresql+psycopg://salesintel@" in ops.text and "--warehouse --accept" in ops.text
    with engine.begin() as connection:  # the warehouse moves on after the alert: --accept must not take this
        connection.execute(sqlalchemy.text("DELETE FROM crm_deals WHERE row_number % 20 != 0"))
    accepted = salesintel(tmp_path, "ingest", "--warehouse", "--accept", config=config)
    assert accepted.returncode == 0 and "snapshot #2 accepted" in accepted.stdout, accepted.stderr
    store = Store.open(tmp_path / "s.db")
    assert store.latest_snapshot().id == 2 and store.latest_snapshot().rows_loaded == 120 and store.snapshot(3) is None
    nothing = salesintel(tmp_path, "ingest", "--warehouse", "--accept", config=config)
    assert nothing.returncode == 1 and "no held snapshot" in nothing.stderr


def test_a_failing_query_or_url_is_a_clear_error_and_loads_nothing(salesintel, warehouse, tmp_path, monkeypatch):
    url, _, folder = warehouse
    settings = load_settings(folder / "config.yaml").ingest
    with pytest.raises(IngestError, match=r'the query failed \(.*"no_such_table" does not exist'):
        read_warehouse(WarehouseSource(url, "SELECT * FROM no_such_table"), settings)
    secret = url.replace("salesintel@", "salesintel:hunter2@")
    with pytest.raises(IngestError, match=r"salesintel:\*\*\*@") as raised:
        read_warehouse(WarehouseSource(secret.replace("host=%2F", "host=%2Fnowhere%2F"), QUERY), settings)
    assert "hunter2" not in str(raised.value)
    with pytest.raises(IngestError, match="not a usable SQLAlchemy URL"):
        read_warehouse(WarehouseSource("nosuchdialect://x/y", QUERY), settings)
    monkeypatch.setenv("SALESINTEL_WAREHOUSE_URL", url)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["ingest"]["warehouse"] = {"query": "SELECT deal_id FROM crm_deals"}
    (folder / "narrow.yaml").write_text(yaml.safe_dump(config))
    narrow = salesintel(tmp_path, "ingest", "--warehouse", config=folder / "narrow.yaml")
    assert narrow.returncode == 1 and "warehouse" in narrow.stderr and "created_date" in narrow.stderr
    assert not (tmp_path / "s.db").exists() or Store.open(tmp_path / "s.db").latest_snapshot() is None


def test_the_refresh_job_pulls_the_warehouse_on_its_schedule(warehouse, tmp_path):
    """The service's refresh job: the first fire loads and refreshes; a fire with nothing new in the warehouse
    loads nothing; after the warehouse changes, the next fire loads the new snapshot and refreshes on it."""
    from salesintel.alerts.jobs import RefreshJob

    url, engine, folder = warehouse
    settings = load_settings(folder / "config.yaml")
    store = Store.open(tmp_path / "s.db")
    env = AlertEnvironment(store, AlertsSettings(), ZoneInfo("UTC"))
    job = RefreshJob(
        env,
        EngineSettings(settings.metrics, settings.model, settings.anomalies),
        settings.ingest,
        pinned_as_of=SPEC.data_end,
        warehouse=WarehouseSource(url, QUERY),
    )
    now = datetime(2026, 11, 30, 8, tzinfo=UTC)
    note = job(now, now)
    assert "snapshot #1 from the warehouse" in note and "refresh #1" in note
    assert "snapshot #" not in (job(now + timedelta(minutes=30), now + timedelta(minutes=30)) or "")
    with engine.begin() as connection:  # a deal is won in the CRM; the warehouse shows it at the next sync
        won = connection.execute(
            sqlalchemy.text("SELECT deal_id FROM crm_deals WHERE deal_stage = 'Proposal' ORDER BY row_number LIMIT 1")
        ).scalar_one()
        connection.execute(
            sqlalchemy.text(
                "UPDATE crm_deals SET outcome = 'Won', deal_stage = 'Closed Won', closed_date = :day"
                " WHERE deal_id = :deal"
            ),
            {"day": datetime(2024, 8, 20), "deal": won},
        )
    later = now + timedelta(hours=1)
    note = job(later, later)
    assert "snapshot #2 from the warehouse" in note and "refresh #2" in note
    assert store.latest_refresh().snapshot_id == 2
    assert store.deal(1, won)["outcome"] is None and store.deal(2, won)["outcome"] == "Won"
