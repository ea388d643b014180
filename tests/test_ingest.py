"""Ingestion: every row read is loaded or rejected with a reason; whole-file problems are clear errors."""

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from salesintel.engine import arrow_reader
from salesintel.engine.ingest import IngestError, read_snapshot
from salesintel.engine.settings import IngestSettings
from salesintel.engine.store import MIGRATIONS, Store
from salesintel.engine.store.database import nul_shown
from salesintel.engine.synth import filtered_export

ROOT = Path(__file__).resolve().parents[1]

HEADER = (
    "deal_id,created_date,closed_date,sales_rep_id,industry,region,product_type,lead_source,deal_stage,deal_amount,"
    "sales_cycle_days,outcome\n"
)
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
    parsed = read_snapshot(
        write(tmp_path, HEADER + "D9,2024-01-01,,rep_1,SaaS,APAC,Core,Inbound,Demo,1000,,Open\n"), IngestSettings()
    )
    assert len(parsed.deals) == 1 and parsed.deals["outcome"].isna().all()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("deal_id,created_date\nD1,2024-01-01\n", "missing required column"),
        (HEADER, "no data rows"),
    ],
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


def test_a_snapshot_that_fails_while_its_deals_are_written_leaves_nothing_behind(tmp_path):
    """All or nothing: the snapshot row is written first, then its deals; when a deal cannot be written (here a
    repeated id that slipped past validation), the snapshot row goes too, and the next load starts clean."""
    path = write(tmp_path, HEADER + GOOD + GOOD.replace("D1,", "D2,"))
    parsed = read_snapshot(path, IngestSettings())
    parsed.deals.loc[1, "deal_id"] = "D1"
    store = Store.open(tmp_path / "s.db")
    with pytest.raises(Exception, match="UNIQUE"):
        store.save_snapshot(parsed, datetime(2024, 1, 12), datetime(2024, 1, 12))
    for table in ("snapshots", "deals", "rejects", "snapshot_frames"):
        assert store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    assert store.latest_snapshot() is None and store.snapshot_by_sha256(parsed.sha256) is None


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

    from salesintel.engine.store import MIGRATIONS as steps

    path = tmp_path / "old.db"
    from salesintel.engine.store.connections import SqliteConnection

    old = sqlite_utils.Database(path)
    steps[0](SqliteConnection(old.conn))
    old.execute("PRAGMA user_version = 1")
    old["snapshots"].insert(
        {
            "source": "x.csv",
            "sha256": "abc",
            "layout": "skygeni",
            "taken_at": "2024-01-01T00:00:00",
            "loaded_at": "2024-01-01T00:00:00",
            "rows_read": 0,
            "rows_loaded": 0,
            "rows_rejected": 0,
        }
    )
    old.conn.commit()
    old.conn.close()
    store = Store.open(path)
    assert store.schema_version == len(MIGRATIONS)
    assert store.snapshot_by_sha256("abc").source == "x.csv"
    assert "scores" in store.db.table_names() and "model_id" in store.db["refreshes"].columns_dict


# Typed extra fields ------------------------------------------------------------------------------------------

TYPED_LAYOUT = {
    "columns": {f: f for f in ("deal_id", "created_date", "closed_date", "sales_rep_id", "deal_amount", "outcome")},
    "fields": {
        "competitor": {"column": "Competitor", "kind": "category"},
        "employees": {"column": "Employees", "kind": "number", "unit": "employees"},
        "renewal": {"column": "Renewal", "kind": "boolean"},
        "signed": {"column": "Signed", "kind": "date", "known": "close"},
    },
}
TYPED_HEADER = "deal_id,created_date,closed_date,sales_rep_id,deal_amount,outcome,Competitor,Employees,Renewal,Signed\n"
TYPED_GOOD = (
    'T1,2024-01-01,2024-01-11,rep_1,100,Won,Globex,"1,200",yes,2024-01-10\n'
    "T2,2024-01-01,2024-01-11,rep_1,100,Lost,N/A,Unknown,-,\n"
    "T3,2024-01-01,,rep_2,100,Open,Initech,35,FALSE,2024-02-01T10:30:00Z\n"
)


def typed_settings(**layout) -> IngestSettings:
    return IngestSettings(layout="typed", layouts={"typed": {**TYPED_LAYOUT, **layout}})


def test_typed_extra_fields_are_parsed_by_kind(tmp_path):
    parsed = read_snapshot(write(tmp_path, TYPED_HEADER + TYPED_GOOD), typed_settings())
    assert parsed.rejects == []
    deals = parsed.deals.set_index("deal_id")
    assert deals["competitor"].tolist() == ["Globex", None, "Initech"]
    assert deals.loc["T1", "employees"] == 1200.0 and deals.loc["T3", "employees"] == 35.0
    assert deals["renewal"].tolist() == [True, None, False]
    assert deals["signed"].tolist() == ["2024-01-10", None, "2024-02-01"]
    assert parsed.fields["employees"]["unit"] == "employees"


@pytest.mark.parametrize(
    "cells, reason",
    [
        ("Globex,lots,yes,2024-01-10", "employees is not a number: 'lots'"),
        ("Globex,inf,yes,2024-01-10", "employees is not a number: 'inf'"),
        ("Globex,12,perhaps,2024-01-10", "renewal is not true/false: 'perhaps'"),
        ("Globex,12,yes,2024-13-40", "signed is not a date: '2024-13-40'"),
        ("Globex,12,yes,last week", "signed is not a date: 'last week'"),
    ],
)
def test_a_typed_field_that_is_not_its_kind_rejects_the_row_with_line_and_reason(tmp_path, cells, reason):
    row = f"T9,2024-01-01,2024-01-11,rep_1,100,Won,{cells}\n"
    parsed = read_snapshot(write(tmp_path, TYPED_HEADER + TYPED_GOOD + row), typed_settings())
    assert len(parsed.deals) == 3
    [reject] = parsed.rejects
    assert (reject.line, reject.deal_id, reject.reasons) == (5, "T9", (reason,))


def test_a_date_field_follows_the_layouts_date_format(tmp_path):
    text = (
        TYPED_HEADER
        + "T1,01/02/2024,11/02/2024,rep_1,100,Won,,,,10/02/2024\n"
        + "T2,01/02/2024,11/02/2024,rep_1,100,Won,,,,2024-02-10\n"
    )
    parsed = read_snapshot(write(tmp_path, text), typed_settings(date_format="%d/%m/%Y"))
    assert parsed.deals["signed"].tolist() == ["2024-02-10"]
    assert [r.reasons for r in parsed.rejects] == [("signed is not a date: '2024-02-10'",)]


def test_typed_extra_fields_round_trip_through_the_store_with_their_dtypes(tmp_path):
    parsed = read_snapshot(write(tmp_path, TYPED_HEADER + TYPED_GOOD), typed_settings())
    store = Store.open(tmp_path / "s.db")
    snapshot = store.save_snapshot(parsed, datetime(2024, 3, 1), datetime(2024, 3, 1))
    deals = store.deals(snapshot.id).set_index("deal_id")
    assert deals["employees"].dtype == "float64" and deals["employees"].isna().tolist() == [False, True, False]
    assert deals["renewal"].dtype == "boolean" and deals["renewal"].tolist() == [True, pd.NA, False]
    assert deals["signed"].dtype.kind == "M"
    assert deals["signed"].tolist()[0] == pd.Timestamp("2024-01-10") and pd.isna(deals.loc["T2", "signed"])
    assert deals.loc["T3", "signed"] == pd.Timestamp("2024-02-01")
    assert deals["competitor"].isna().tolist() == [False, True, False]
    stored = json.loads(store.db.execute("SELECT extras FROM deals WHERE deal_id = 'T1'").fetchone()[0])
    assert stored == {"competitor": "Globex", "employees": 1200.0, "renewal": True, "signed": "2024-01-10"}


def test_a_unit_on_a_field_that_is_not_a_number_is_a_config_error():
    with pytest.raises(ValidationError, match="unit 'USD' is only for number fields; this field is kind category"):
        typed_settings(fields={"competitor": {"column": "Competitor", "kind": "category", "unit": "USD"}})


def config_file(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_ingest_command_loads_typed_fields_into_the_store(salesintel, tmp_path):
    row = "T9,2024-01-01,2024-01-11,rep_1,100,Won,Globex,12,maybe,2024-01-10\n"
    path = write(tmp_path, TYPED_HEADER + TYPED_GOOD + row)
    config = config_file(tmp_path, {"ingest": {"layout": "typed", "layouts": {"typed": TYPED_LAYOUT}}})
    result = salesintel(tmp_path, "ingest", str(path), config=config)
    assert result.returncode == 0, result.stderr
    assert "(typed): read 4, loaded 3, rejected 1" in result.stdout and "renewal is not true/false" in result.stdout
    store = Store.open(tmp_path / "s.db")
    [reject] = store.rejects(1)
    assert (reject["line"], reject["reason"]) == (5, "renewal is not true/false: 'maybe'")
    deals = store.deals(1).set_index("deal_id")
    assert deals["renewal"].tolist() == [True, pd.NA, False] and deals["signed"].dtype.kind == "M"
    assert store.snapshot(1).fields["employees"] == {
        "column": "Employees",
        "kind": "number",
        "known": "creation",
        "label": None,
        "unit": "employees",
    }


def test_ingest_command_names_the_field_whose_unit_is_misplaced(salesintel, tmp_path):
    layout = {**TYPED_LAYOUT, "fields": {"renewal": {"column": "Renewal", "kind": "boolean", "unit": "days"}}}
    result = salesintel(
        tmp_path, "ingest", "x.csv", config=config_file(tmp_path, {"ingest": {"layouts": {"typed": layout}}})
    )
    assert result.returncode != 0
    assert "ingest.layouts.typed.fields.renewal" in result.stderr
    assert "unit 'days' is only for number fields; this field is kind boolean" in result.stderr


# Built-in Salesforce layout ----------------------------------------------------------------------------------

SF_HEADER = "Id,Name,StageName,Amount,CreatedDate,CloseDate,IsClosed,IsWon,OwnerId"


def test_salesforce_is_built_in_and_its_absent_extra_columns_are_none(tmp_path):
    parsed = read_snapshot(ROOT / "tests/fixtures/salesforce_opportunities.csv", IngestSettings())
    assert parsed.layout == "salesforce" and len(parsed.deals) == 3
    for name in ("forecast_category", "probability", "next_step", "expected_revenue", "last_activity"):
        assert parsed.deals[name].isna().all(), name


def test_salesforce_extra_columns_are_typed_when_present(tmp_path):
    text = (
        f"{SF_HEADER},ForecastCategoryName,Probability,NextStep,LastActivityDate\n"
        "0061,A,Closed Won,100,2024-01-03,2024-02-10,true,true,005A,Closed,100%,,2024-02-09\n"
        "0062,B,Negotiation,200,2024-01-05,2024-06-30,false,false,005A,Pipeline,60,Send quote,2024-02-01\n"
        "0063,C,Proposal,300,2024-01-05,2024-06-30,false,false,005A,Pipeline,high,,2024-02-01\n"
    )
    parsed = read_snapshot(write(tmp_path, text), IngestSettings())
    assert parsed.layout == "salesforce"
    deals = parsed.deals.set_index("deal_id")
    assert deals["probability"].tolist() == [100.0, 60.0]
    assert deals["forecast_category"].tolist() == ["Closed", "Pipeline"]
    assert deals["next_step"].tolist() == [None, "Send quote"] and deals["expected_revenue"].isna().all()
    assert deals["last_activity"].tolist() == ["2024-02-09", "2024-02-01"]
    assert parsed.fields["probability"]["unit"] == "%"
    assert [(r.line, r.reasons) for r in parsed.rejects] == [(4, ("probability is not a number: 'high'",))]


def test_a_configured_layout_wins_over_a_built_in_one_of_the_same_name():
    mine = {
        "columns": {
            "deal_id": "Key",
            "created_date": "Opened",
            "sales_rep_id": "Rep",
            "deal_amount": "Value",
            "closed_date": "Closed",
            "outcome": "Result",
        }
    }
    layouts = IngestSettings(layouts={"salesforce": mine}).all_layouts()
    assert list(layouts) == ["skygeni", "salesforce"] and layouts["salesforce"].columns["deal_id"] == "Key"


# Two readers, one result ---------------------------------------------------------------------------------------

TRICKY_FILES = {
    "blank lines": HEADER + GOOD + "\n\nD2,x,,rep_1,SaaS,APAC,Core,Inbound,Demo,1,,Won\n\n" + GOOD.replace("D1", "D3"),
    "crlf and no final line break": (
        HEADER + GOOD + "\r\n" + "D2,2024-01-01,,rep_1,SaaS,APAC,Core,Inbound,Demo,bad,,Open"
    )
    .replace("\n", "\r\n")
    .replace("\r\r", "\r"),
    "byte order mark and quoted commas": "\ufeff"
    + HEADER
    + GOOD
    + 'D2,2024-01-01,,rep_1,"Saas, Inc",APAC,Core,Inbound,Demo,"1,000",,Open\n',
    "quoted line break": HEADER
    + GOOD
    + 'D2,2024-01-01,,rep_1,"Saa\nS",APAC,Core,Inbound,Demo,1,,Open\nD1,2024-01-01,,rep_1,,,,,,5,,Open\n',
    "row of the wrong width": HEADER + GOOD + "D2,2024-01-01\n" + GOOD.replace("D1", "D3"),
    "whitespace-only line": HEADER + GOOD + "   \n" + GOOD.replace("D1", "D3"),
}


@pytest.mark.parametrize("name", list(TRICKY_FILES))
def test_the_pyarrow_reader_and_the_csv_module_give_the_same_deals_and_rejects(tmp_path, monkeypatch, name):
    path = tmp_path / "tricky.csv"
    path.write_bytes(TRICKY_FILES[name].encode("utf-8"))
    fast = read_snapshot(path, IngestSettings())
    monkeypatch.setattr(arrow_reader, "batches", lambda *args, **kwargs: False)
    exact = read_snapshot(path, IngestSettings())
    pd.testing.assert_frame_equal(fast.deals.astype(object), exact.deals.astype(object))
    assert fast.rejects == exact.rejects
    assert fast.rows_read == exact.rows_read


def test_rows_after_blank_lines_keep_their_own_line_numbers(tmp_path):
    parsed = read_snapshot(write(tmp_path, TRICKY_FILES["blank lines"]), IngestSettings())
    assert parsed.deals["line"].tolist() == [2, 7] and [r.line for r in parsed.rejects] == [5]


def test_progress_adds_up_to_the_file_size(tmp_path):
    path = write(tmp_path, HEADER + GOOD + "".join(GOOD.replace("D1", f"D{i}") for i in range(2, 50)))
    seen = []
    read_snapshot(path, IngestSettings(), progress=seen.append)
    assert sum(seen) == path.stat().st_size


def test_duplicates_across_chunks_name_the_first_line_as_within_one_chunk(tmp_path, monkeypatch):
    """Chunks of two rows (csv module) against one chunk (pyarrow): the cross-chunk lookup finds the same first
    lines, including an id first seen on a row rejected for another reason, and placeholders are still missing."""
    rows = [
        GOOD,
        GOOD.replace("D1", "D2").replace("1000", "bad"),
        GOOD.replace("D1", "D3").replace("SaaS", "N/A"),
        GOOD,
        GOOD.replace("D1", "D2"),
        GOOD.replace("D1", "D4"),
        GOOD.replace("D1", "D3"),
        GOOD,
    ]
    path = write(tmp_path, HEADER + "".join(rows))
    one_chunk = read_snapshot(path, IngestSettings())
    monkeypatch.setattr(arrow_reader, "batches", lambda *args, **kwargs: False)
    monkeypatch.setattr("salesintel.engine.ingest.CHUNK_ROWS", 2)
    chunked = read_snapshot(path, IngestSettings())
    pd.testing.assert_frame_equal(one_chunk.deals.astype(object), chunked.deals.astype(object))
    assert one_chunk.rejects == chunked.rejects
    assert [r.reasons[-1] for r in chunked.rejects if r.line >= 5] == [
        "duplicate deal_id: D1 already on line 2",
        "duplicate deal_id: D2 already on line 3",
        "duplicate deal_id: D3 already on line 4",
        "duplicate deal_id: D1 already on line 2",
    ]
    assert chunked.deals["deal_id"].tolist() == ["D1", "D3", "D4"] and chunked.deals["industry"].tolist()[1] is None


# Hazards of real exports, planted by engine.synth and followed through what a user sees ---------------------------


def _planted_export(tmp_path: Path):
    from salesintel.engine.synth import SynthSpec, generate, plant_ingest_hazards

    data = generate(SynthSpec(deals=1500, seed=3, start=datetime(2023, 1, 1).date(), days=400))
    crm, hazards = plant_ingest_hazards(data.crm, seed=3)
    path = tmp_path / "crm.csv"
    crm.to_csv(path, index=False)
    return path, data, hazards


def test_every_planted_row_hazard_is_rejected_with_its_reason_and_the_rest_loads(salesintel, tmp_path):
    path, data, hazards = _planted_export(tmp_path)
    result = salesintel(tmp_path, "ingest", str(path))
    planted = 4 * 3
    assert result.returncode == 0, result.stderr
    assert f"read {1500 + planted}, loaded 1500, rejected {planted}" in result.stdout
    store = Store.open(tmp_path / "s.db")
    reasons = {r["deal_id"]: r["reason"] for r in store.rejects(1)}
    for twin in hazards.case_twins:
        assert reasons[twin].startswith("duplicate deal_id:"), twin  # D00007 and d00007 are one deal
    for hidden in hazards.invisible:  # a NUL is stored as U+FFFD (PostgreSQL cannot hold one); the reason says which
        assert "deal_id contains an invisible or control character" in reasons[nul_shown(hidden)]
        assert repr(hidden) in reasons[nul_shown(hidden)]
    for infinite in hazards.infinite_amounts:
        assert reasons[infinite].startswith("deal_amount is not a finite number")
    for fractional in hazards.fractional_cycles:
        assert "sales_cycle_days is not a whole number of days" in reasons[fractional]
    deals = store.deals(1)
    assert len(deals) == 1500 and set(deals["deal_id"]) == set(data.crm["deal_id"])
    assert deals["deal_amount"].map(float).lt(float("inf")).all()
    as_of = data.spec.snapshot_date.isoformat()
    assert salesintel(tmp_path, "refresh", "--as-of", as_of).returncode == 0
    daily = salesintel(tmp_path, "report", "daily", "--as-of", as_of)
    assert daily.returncode == 0 and "Daily pipeline summary" in daily.stdout
    assert "inf" not in daily.stdout.lower().replace("info", "")


def test_a_column_named_twice_in_the_header_is_an_error_naming_it(salesintel, tmp_path):
    path = write(tmp_path, HEADER.rstrip("\n") + ",deal_amount\n" + GOOD.rstrip("\n") + ",10000\n")
    result = salesintel(tmp_path, "ingest", str(path))
    assert result.returncode == 1
    assert "column 'deal_amount' appears 2 times in the header (columns 10, 13)" in result.stderr
    assert not (tmp_path / "s.db").exists() or Store.open(tmp_path / "s.db").latest_snapshot() is None


def test_each_absent_optional_column_is_named_with_what_it_disables(salesintel, tmp_path):
    path, data, _ = _planted_export(tmp_path)
    pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=["lead_source", "deal_stage"]).to_csv(
        path, index=False
    )
    result = salesintel(tmp_path, "ingest", str(path))
    assert result.returncode == 0, result.stderr
    assert "absent  lead_source: no column (lead_source); no win rates, drivers or reasons by lead source" in (
        result.stdout
    )
    assert "absent  deal_stage: no column (deal_stage); no stage in answers" in result.stdout
    as_of = data.spec.snapshot_date.isoformat()
    assert salesintel(tmp_path, "refresh", "--as-of", as_of).returncode == 0
    metrics = json.loads(salesintel(tmp_path, "metrics", "--json", "--as-of", as_of).stdout)
    assert not [s for s in metrics["segments"] if s["field"] == "lead_source"]
    assert "lead_source" not in {f["field"] for f in metrics["fields"]["used"]}


def test_an_export_whose_every_row_is_rejected_is_held_and_exits_1(salesintel, tmp_path):
    path = write(tmp_path, HEADER + GOOD.replace("1000", "-5"))
    result = salesintel(tmp_path, "ingest", str(path))
    assert result.returncode == 1
    assert "snapshot #1 is stored but not used: every row was rejected (1 read, none loaded)" in result.stderr
    assert "no snapshot is in use yet" in result.stderr and "--accept" in result.stderr
    assert Store.open(tmp_path / "s.db").latest_snapshot() is None


def test_a_shrunken_or_reshaped_export_is_held_until_accepted(salesintel, tmp_path):
    rows = [GOOD.replace("D1,", f"D{i},") for i in range(1, 41)]
    full = write(tmp_path, HEADER + "".join(rows), "full.csv")
    assert salesintel(tmp_path, "ingest", str(full)).returncode == 0
    small = write(tmp_path, filtered_export(HEADER + "".join(rows), 5), "small.csv")
    held = salesintel(tmp_path, "ingest", str(small))
    assert held.returncode == 1 and "deal count dropped from 40 to 5 (88%" in held.stderr
    assert "refreshes keep using snapshot #1" in held.stderr
    assert Store.open(tmp_path / "s.db").latest_snapshot().id == 1
    again = salesintel(tmp_path, "ingest", str(small))
    assert again.returncode == 1 and "already loaded as snapshot #2, held and not used" in again.stderr
    accepted = salesintel(tmp_path, "ingest", str(small), "--accept")
    assert accepted.returncode == 0 and "snapshot #2 accepted" in accepted.stdout
    assert Store.open(tmp_path / "s.db").latest_snapshot().id == 2
    frame = pd.read_csv(small, dtype=str, keep_default_na=False).drop(columns=["lead_source"])
    frame.to_csv(tmp_path / "reshaped.csv", index=False)
    reshaped = salesintel(tmp_path, "ingest", str(tmp_path / "reshaped.csv"))
    assert reshaped.returncode == 1 and "the columns changed: lead_source present before, missing now" in (
        reshaped.stderr
    )
    ops = Store.open(tmp_path / "s.db").outbox.in_status("pending")
    assert [m.kind for m in ops] == ["ops", "ops"], "each held snapshot raised one ops alert"
