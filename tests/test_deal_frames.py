"""Store.deals gives the same frame from a snapshot's Parquet copy as from its rows, and older stores still open."""

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlite_utils

from salesintel.engine.ingest import read_snapshot
from salesintel.engine.settings import IngestSettings
from salesintel.engine.store import MIGRATIONS, Store
from salesintel.engine.store.connections import SqliteConnection

COLUMNS = (
    "deal_id",
    "created_date",
    "closed_date",
    "sales_rep_id",
    "industry",
    "region",
    "deal_amount",
    "sales_cycle_days",
    "outcome",
)
LAYOUT = {
    "columns": {name: name for name in COLUMNS},
    "fields": {
        "competitor": {"column": "Competitor", "kind": "category"},
        "employees": {"column": "Employees", "kind": "number"},
        "renewal": {"column": "Renewal", "kind": "boolean"},
        "signed": {"column": "Signed", "kind": "date"},
        "absent": {"column": "NotInTheFile", "kind": "number"},
        "blank": {"column": "Blank", "kind": "category"},
    },
}
HEADER = ",".join(COLUMNS) + ",Competitor,Employees,Renewal,Signed,Blank\n"
ROWS = {
    "mixed": (
        'A1,2024-01-01,2024-01-11,rep_1,SaaS,APAC,100,10,Won,Globex,"1,200",yes,2024-01-10,\n'
        "A2,2024-01-01,2024-01-11,rep_1,Unknown,,100.5,,Lost,N/A,Unknown,-,,\n"
        "A3,2024-01-02,,rep_2,FinTech,EMEA,7,,Open,Initech,35,FALSE,2024-02-01,\n"
        "A4,2024-01-03,2024-02-03,rep_2,,EMEA,0,31,Won,,,true,,\n"
    ),
    # every deal open: closed_date and outcome are NULL in every row; no gaps in the extras
    "all open": (
        "B1,2024-01-01,,rep_1,SaaS,APAC,100,,Open,Globex,12,yes,2024-01-10,\n"
        "B2,2024-01-05,,rep_3,SaaS,APAC,200,,Open,Acme,13,no,2024-01-11,\n"
    ),
}


def settings() -> IngestSettings:
    return IngestSettings(layout="frames", layouts={"frames": LAYOUT})


def both_paths(store: Store, snapshot_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from_blob = store.deals(snapshot_id)
    with store.db.conn:
        removed = store.db.execute("DELETE FROM snapshot_frames WHERE snapshot_id = ?", [snapshot_id]).rowcount
    assert removed == 1
    return from_blob, store.deals(snapshot_id)


@pytest.mark.parametrize("name", list(ROWS))
def test_the_parquet_copy_and_the_rows_give_the_same_frame(tmp_path, name):
    path = tmp_path / "crm.csv"
    path.write_text(HEADER + ROWS[name])
    parsed = read_snapshot(path, settings())
    assert not parsed.rejects
    store = Store.open(tmp_path / "s.db")
    snapshot = store.save_snapshot(parsed, datetime(2024, 3, 1), datetime(2024, 3, 1))
    from_blob, from_rows = both_paths(store, snapshot.id)
    pd.testing.assert_frame_equal(from_blob, from_rows, check_exact=True)
    assert list(from_blob.columns) == [*from_rows.columns] and from_blob["line"].is_monotonic_increasing
    assert from_blob["renewal"].dtype == "boolean" and from_blob["employees"].dtype == "float64"
    assert from_blob["signed"].dtype.kind == "M" and from_blob["created_date"].dtype.kind == "M"
    assert from_blob["absent"].isna().all() and from_blob["blank"].isna().all()


def test_a_snapshot_without_extra_fields_reads_the_same_both_ways(tmp_path):
    path = Path(__file__).parents[1] / "data" / "skygeni_sales_data.csv"
    parsed = read_snapshot(path, IngestSettings())
    store = Store.open(tmp_path / "s.db")
    snapshot = store.save_snapshot(parsed, datetime(2024, 3, 1), datetime(2024, 3, 1))
    assert store.db.execute("SELECT count(*) FROM deals WHERE extras IS NOT NULL").fetchone()[0] == 0
    from_blob, from_rows = both_paths(store, snapshot.id)
    pd.testing.assert_frame_equal(from_blob, from_rows, check_exact=True)


def test_a_store_from_before_the_lean_deals_table_keeps_its_deals_and_lookups(tmp_path):
    """A version-6 store (rowid deals table, two indexes, no frames) is migrated and answers every deals query."""
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    for step, migrate in enumerate(MIGRATIONS[:6], start=1):
        migrate(SqliteConnection(old.conn))
        old.execute(f"PRAGMA user_version = {step}")
    old["snapshots"].insert(
        {
            "id": 1,
            "source": "x.csv",
            "sha256": "abc",
            "layout": "skygeni",
            "fields": "{}",
            "taken_at": "2024-01-01T00:00:00",
            "loaded_at": "2024-01-01T00:00:00",
            "rows_read": 2,
            "rows_loaded": 2,
            "rows_rejected": 0,
        }
    )
    base = {
        "snapshot_id": 1,
        "deal_name": "",
        "created_date": "2024-01-01",
        "sales_rep_id": "rep_1",
        "industry": "SaaS",
        "region": None,
        "product_type": None,
        "lead_source": None,
        "deal_stage": "Demo",
        "deal_amount": 10.0,
        "extras": None,
    }
    old["deals"].insert_all(
        [
            {**base, "line": 3, "deal_id": "Z2", "closed_date": None, "sales_cycle_days": None, "outcome": None},
            {**base, "line": 2, "deal_id": "z1", "closed_date": "2024-01-05", "sales_cycle_days": 4, "outcome": "Won"},
        ]
    )
    old.conn.commit()
    old.conn.close()
    store = Store.open(path)
    assert store.schema_version == len(MIGRATIONS)
    deals = store.deals(1)
    assert deals["deal_id"].tolist() == ["z1", "Z2"] and deals["sales_cycle_days"].tolist()[0] == 4
    assert store.outcomes(1, date(2024, 2, 1)) == {"z1": "Won"}
    assert [d["deal_id"] for d in store.closed_between(1, date(2024, 1, 1), date(2024, 2, 1))] == ["z1"]
    assert store.deal(1, "Z2")["line"] == 3 and store.find_deal_id(1, "Z1") == "z1"
    with pytest.raises(Exception, match="UNIQUE"):
        with store.db.conn:
            store.db.execute("INSERT INTO deals (snapshot_id, line, deal_id) VALUES (1, 9, 'z1')")
