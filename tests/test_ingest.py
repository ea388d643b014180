"""Ingestion: every row read is loaded or rejected with a reason; whole-file problems are clear errors."""

from datetime import datetime
from pathlib import Path

import pytest

from engine.ingest import IngestError, read_snapshot
from engine.settings import IngestSettings
from engine.store import MIGRATIONS, Store

HEADER = "deal_id,created_date,closed_date,sales_rep_id,industry,region,product_type,lead_source,deal_stage,deal_amount,sales_cycle_days,outcome\n"
GOOD = "D1,2024-01-01,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,1000,10,Won\n"


def write(tmp_path: Path, text: str, name: str = "snap.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bundled_dataset_loads_every_row():
    parsed = read_snapshot(Path("data/skygeni_sales_data.csv"), IngestSettings())
    assert (parsed.rows_read, len(parsed.deals), len(parsed.rejects)) == (5000, 5000, 0)


@pytest.mark.parametrize(
    "row, reason",
    [
        ("D2,2024-13-45,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,1000,10,Won\n", "created_date is not a date"),
        ("D2,2024-02-01,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,1000,,Won\n", "closed before created"),
        ("D2,2024-01-01,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,-5,10,Won\n", "deal_amount is negative"),
        ("D2,2024-01-01,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,abc,10,Won\n", "deal_amount is not a number"),
        ("D2,2024-01-01,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,,10,Won\n", "deal_amount is empty"),
        ("D2,2024-01-01,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,100,10,Maybe\n", "unknown outcome"),
        ("D1,2024-01-01,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,100,10,Won\n", "duplicate deal_id"),
        ("D2,2024-01-01,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,100,30,Won\n", "sales_cycle_days disagrees"),
        ("D2,2024-01-01,2024-01-11,rep_1,SaaS\n", "wrong number of fields"),
    ],
)
def test_bad_row_is_rejected_with_line_and_reason(tmp_path, row, reason):
    parsed = read_snapshot(write(tmp_path, HEADER + GOOD + row), IngestSettings())
    assert parsed.rows_read == len(parsed.deals) + len(parsed.rejects) == 2
    [reject] = parsed.rejects
    assert reject.line == 3
    assert any(r.startswith(reason) for r in reject.reasons), reject.reasons


def test_open_deal_is_first_class(tmp_path):
    parsed = read_snapshot(write(tmp_path, HEADER + "D9,2024-01-01,,rep_1,SaaS,APAC,Core,Inbound,Demo,1000,,Open\n"), IngestSettings())
    assert len(parsed.deals) == 1 and parsed.deals["outcome"].isna().all()


@pytest.mark.parametrize(
    "text, message",
    [("", "empty file"), ("deal_id,created_date\nD1,2024-01-01\n", "missing required column"), (HEADER, "no data rows")],
)
def test_whole_file_problems_raise_a_clear_error(tmp_path, text, message):
    with pytest.raises(IngestError, match=message):
        read_snapshot(write(tmp_path, text), IngestSettings())


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(IngestError, match="no such file"):
        read_snapshot(tmp_path / "nope.csv", IngestSettings())


def test_store_keeps_deals_and_rejects_and_finds_reloads_by_hash(tmp_path):
    path = write(tmp_path, HEADER + GOOD + "D1,x,,rep_1,SaaS,APAC,Core,Inbound,Demo,1,,Won\n")
    parsed = read_snapshot(path, IngestSettings())
    store = Store.open(tmp_path / "s.db")
    snapshot = store.save_snapshot(parsed, datetime(2024, 1, 12), datetime(2024, 1, 12))
    assert store.snapshot_by_sha256(parsed.sha256) == snapshot
    assert len(store.deals(snapshot.id)) == 1 and len(store.rejects(snapshot.id)) == 1
    assert store.schema_version == len(MIGRATIONS)


def test_a_file_mixing_good_and_bad_rows_loses_none_of_them(tmp_path):
    rows = [GOOD]
    rows += [f"G{i},2024-01-01,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,{i},10,Lost\n" for i in range(20)]
    rows += [f"B{i},2024-01-0{i % 9 + 1},bad,rep_1,SaaS,APAC,Core,Inbound,Demo,1,10,Won\n" for i in range(7)]
    rows += ["D1,2024-01-01,2024-01-11,rep_1,SaaS,APAC,Core,Inbound,Demo,1,10,Won\n", "short,row\n"]
    path = write(tmp_path, HEADER + "".join(rows))
    parsed = read_snapshot(path, IngestSettings())
    data_lines = len(path.read_text().splitlines()) - 1
    assert (len(parsed.deals), len(parsed.rejects)) == (21, 9)
    assert len(parsed.deals) + len(parsed.rejects) == data_lines
    store = Store.open(tmp_path / "s.db")
    snapshot = store.save_snapshot(parsed, datetime(2024, 2, 1), datetime(2024, 2, 1))
    stored = store.db.execute("SELECT (SELECT count(*) FROM deals) + (SELECT count(*) FROM rejects)").fetchone()[0]
    assert stored == snapshot.rows_read == data_lines


def test_a_file_in_another_encoding_is_refused_by_name(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + GOOD.replace("SaaS", "Société")).encode("latin-1"))
    with pytest.raises(IngestError, match="latin1.csv"):
        read_snapshot(path, IngestSettings())


def test_an_older_store_is_migrated_in_place_keeping_its_data(tmp_path):
    import sqlite_utils

    from engine.store import MIGRATIONS as steps

    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    steps[0](old)
    old.execute("PRAGMA user_version = 1")
    old["snapshots"].insert({"source": "x.csv", "sha256": "abc", "layout": "skygeni", "taken_at": "2024-01-01T00:00:00",
                             "loaded_at": "2024-01-01T00:00:00", "rows_read": 0, "rows_loaded": 0, "rows_rejected": 0})
    old.conn.commit()
    old.conn.close()
    store = Store.open(path)
    assert store.schema_version == len(MIGRATIONS)
    assert store.snapshot_by_sha256("abc").source == "x.csv"
    assert "scores" in store.db.table_names() and "model_id" in store.db["refreshes"].columns_dict
