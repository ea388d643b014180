"""The store layer on both databases: every test here runs once on SQLite and once on a real PostgreSQL server, and
one test computes the same refresh on both and compares every number.

The concurrent ones use one connection per thread, as the service does, so PostgreSQL's row locks and SQLite's
write lock are what decides who wins.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml

from salesintel.bot.config import load_settings
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.store import MIGRATIONS, Store, StoreError
from salesintel.engine.store.records import (
    ALERT_ACKNOWLEDGED,
    ALERT_SNOOZED,
    OUTBOX_PENDING,
    OUTBOX_SENDING,
    OUTBOX_SENT,
)
from salesintel.engine.store.replay_memory import replay_memory_for
from salesintel.engine.synth import MessySpec, generate_messy, messy_layout
from tests.engine_fixtures import ROOT

NOW = datetime(2026, 11, 24, tzinfo=UTC)
SPEC = MessySpec(deals=1500, seed=5)


def _messy_snapshot(folder: Path):
    """A messy export (extra fields, zombies, leaks; see `engine.synth`) parsed as a user's config reads it."""
    data = generate_messy(SPEC)
    data.crm.to_csv(folder / "crm.csv", index=False)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["ingest"]["layouts"]["messy"] = messy_layout()
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(folder / "config.yaml")
    return read_snapshot(folder / "crm.csv", settings.ingest, "messy"), settings


def _in_threads(count: int, work) -> list:
    """`work(i)` in `count` threads released together; their results in order."""
    results = [None] * count
    start = threading.Barrier(count)

    def run(i):
        start.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_new_store_has_every_migration_and_reopening_changes_nothing(store_target):
    store = Store.open(store_target)
    assert store.schema_version == len(MIGRATIONS)
    tables = store.conn.tables()
    assert {"snapshots", "deals", "refreshes", "scores", "alerts", "outbox", "job_runs", "leases"} <= set(tables)
    store.close()
    again = Store.open(store_target)
    assert again.schema_version == len(MIGRATIONS) and again.conn.tables() == tables
    assert again.conn.columns("deals")[:3] == ["snapshot_id", "line", "deal_id"]


def test_processes_opening_a_new_store_together_migrate_it_once(store_target):
    opened = _in_threads(4, lambda i: Store.open(store_target))
    assert {store.schema_version for store in opened} == {len(MIGRATIONS)}
    for store in opened:
        store.close()


def test_both_backends_have_the_same_tables_and_columns(tmp_path, postgres_url):
    sqlite, postgres = Store.open(tmp_path / "s.db"), Store.open(postgres_url)
    assert sqlite.conn.tables() == postgres.conn.tables()
    for table in sqlite.conn.tables():
        assert sqlite.conn.columns(table) == postgres.conn.columns(table), table


def test_a_store_behind_this_release_is_refused_without_migrating(store_target):
    Store.open(store_target).close()
    store = Store.open(store_target)
    with store.transaction():
        store.conn.set_schema_version(len(MIGRATIONS) - 1)
    store.close()
    with pytest.raises(StoreError, match="salesintel migrate"):
        Store.open(store_target, migrate=False)
    assert Store.open(store_target).schema_version == len(MIGRATIONS)


def test_snapshot_round_trip_with_extra_fields_rejects_and_lookups(store_target, tmp_path):
    parsed, _ = _messy_snapshot(tmp_path)
    store = Store.open(store_target)
    snapshot = store.save_snapshot(parsed, NOW, NOW)
    assert store.snapshot_by_sha256(parsed.sha256) == snapshot == store.latest_snapshot()
    assert snapshot.rows_loaded == len(parsed.deals) and snapshot.fields == parsed.fields
    deals = store.deals(snapshot.id)
    assert len(deals) == len(parsed.deals) and list(deals["deal_id"]) == list(parsed.deals["deal_id"])
    assert set(parsed.fields) <= set(deals.columns)
    first = deals["deal_id"].iloc[0]
    assert store.deal(snapshot.id, first)["deal_id"] == first
    assert store.find_deal_id(snapshot.id, first.lower()) == first
    assert store.find_deal_id(snapshot.id, "no such deal") is None
    assert len(store.rejects(snapshot.id)) == len(parsed.rejects)
    closed = store.closed_between(snapshot.id, date(2000, 1, 1), date(2100, 1, 1), "Won")
    assert closed and all(row["outcome"] == "Won" for row in closed)
    assert [row["closed_date"] for row in closed] == sorted(row["closed_date"] for row in closed)
    outcomes = store.outcomes(snapshot.id, date(2100, 1, 1))
    assert set(outcomes.values()) == {"Won", "Lost"}


def test_a_snapshot_that_fails_midway_leaves_nothing(store_target, tmp_path):
    parsed, _ = _messy_snapshot(tmp_path)
    store = Store.open(store_target)
    broken = parsed.deals.copy()
    broken.loc[broken.index[-1], "deal_id"] = broken["deal_id"].iloc[0]  # a repeated key fails the last insert
    with pytest.raises(store.conn.integrity_errors):
        store.save_snapshot(type(parsed)(**{**vars(parsed), "deals": broken}), NOW, NOW)
    assert store.latest_snapshot() is None
    assert store.conn.execute("SELECT COUNT(*) FROM deals").fetchone()[0] == 0
    store.save_snapshot(parsed, NOW, NOW)  # and the store still works
    assert store.latest_snapshot() is not None


def test_the_same_export_gives_the_same_numbers_on_both_backends(tmp_path, postgres_url):
    """Ingest, train, score and summarise the messy export on SQLite and on PostgreSQL: equal deals, equal scores
    and reasons, equal metrics."""
    parsed, settings = _messy_snapshot(tmp_path)
    engine = EngineSettings(settings.metrics, settings.model, settings.anomalies)
    results = []
    for where in (tmp_path / "s.db", postgres_url):
        store = Store.open(where)
        snapshot = store.save_snapshot(parsed, NOW, NOW)
        made = refresh(store, engine, SPEC.data_end, NOW)
        results.append((store.deals(snapshot.id), store.scores(made.id), made.metrics.to_json(), store))
    (sqlite_deals, sqlite_scores, sqlite_metrics, sqlite), (pg_deals, pg_scores, pg_metrics, pg) = results
    pd.testing.assert_frame_equal(sqlite_deals, pg_deals, check_exact=True)
    assert sqlite_scores == pg_scores and len(pg_scores) > 100
    assert sqlite_metrics == pg_metrics
    assert sqlite.models() == pg.models()


def test_a_refresh_whose_metrics_fail_leaves_nothing(store_target, tmp_path):
    parsed, settings = _messy_snapshot(tmp_path)
    store = Store.open(store_target)
    snapshot = store.save_snapshot(parsed, NOW, NOW)

    def failing():
        raise RuntimeError("metrics failed")

    with pytest.raises(RuntimeError):
        store.save_refresh(snapshot.id, SPEC.data_end, NOW, failing)
    assert store.latest_refresh() is None
    assert store.conn.execute("SELECT COUNT(*) FROM refreshes").fetchone()[0] == 0


def test_concurrent_acknowledgements_change_the_alert_once(store_target):
    Store.open(store_target).close()
    store = Store.open(store_target)
    with store.transaction():
        alert = store.alerts.open_episode("at_risk", "D1", 1, 0.8, False, ["U1"], {}, NOW)
    stores = [Store.open(store_target) for _ in range(8)]

    def click(i):
        with stores[i].transaction():
            return stores[i].alerts.acknowledge(alert.id, f"U{i}", NOW)

    assert sum(_in_threads(8, click)) == 1
    assert store.alerts.get(alert.id).state == ALERT_ACKNOWLEDGED


def test_snooze_is_compare_and_set_on_what_the_clicker_saw(store_target):
    store = Store.open(store_target)
    with store.transaction():
        alert = store.alerts.open_episode("at_risk", "D1", 1, 0.8, False, ["U1"], {"x": 1}, NOW)
    until = NOW + timedelta(days=3)
    assert store.alerts.snooze(alert.id, until, "U1", NOW, None)
    assert not store.alerts.snooze(alert.id, until + timedelta(days=1), "U2", NOW, None)  # saw an old state
    assert store.alerts.snooze(alert.id, until + timedelta(days=1), "U2", NOW, until)
    snoozed = store.alerts.get(alert.id)
    assert snoozed.state == ALERT_SNOOZED and snoozed.snoozed_until == until + timedelta(days=1)
    counts = store.alerts.counts_since(NOW - timedelta(days=1))
    assert counts == {"new": 1, "held_back": 0, "repeat": 0, "acknowledged": 0}
    assert store.alerts.counts() == {("at_risk", ALERT_SNOOZED, False): 1}


def test_an_outbox_message_is_queued_once_and_claimed_by_exactly_one_process(store_target):
    store = Store.open(store_target)
    with store.transaction():
        assert store.outbox.insert("k1", "daily", "channel:#a", "hi", [], OUTBOX_PENDING, NOW, None, None)
        assert not store.outbox.insert("k1", "daily", "channel:#a", "again", [], OUTBOX_PENDING, NOW, None, None)
    (message,) = store.outbox.in_status(OUTBOX_PENDING)
    stores = [Store.open(store_target) for _ in range(8)]

    def claim(i):
        with stores[i].transaction():
            claimed = stores[i].outbox.claim(
                message.id, OUTBOX_PENDING, OUTBOX_SENDING, f"p{i}", NOW, NOW + timedelta(minutes=1)
            )
            if claimed:  # hold the row a moment: the others must skip it or find it taken, never take it too
                threading.Event().wait(0.05)
            return claimed

    assert sum(_in_threads(8, claim)) == 1
    (claimed,) = store.outbox.in_status(OUTBOX_SENDING)
    assert len(store.outbox.orphaned_claims(OUTBOX_SENDING, "someone else")) == 1
    assert store.outbox.oldest_pending_created_at() == NOW
    with store.transaction():
        store.outbox.mark_sent(claimed.id, OUTBOX_SENT, NOW, "C1", "1.1")
    assert store.outbox.counts() == {("daily", OUTBOX_SENT): 1}
    assert store.outbox.oldest_pending_created_at() is None


def test_a_channel_named_in_config_is_known_by_the_id_of_its_latest_delivery(store_target):
    """The id to read a `#name` channel's history by: the latest delivery's, never a name, never another target's."""
    store = Store.open(store_target)
    assert store.outbox.channel_id("channel:#a") is None
    with store.transaction():
        for key, target, channel in (
            ("k1", "channel:#a", "COLD"),
            ("k2", "channel:#a", "#a"),  # a release that kept the name
            ("k3", "channel:#b", "CB"),
            ("k4", "channel:#a", "CNEW"),
            ("k5", "channel:#a", None),  # queued, not delivered yet
            ("k6", "channel:#a", "#a"),
        ):
            store.outbox.insert(key, "daily", target, "hi", [], OUTBOX_PENDING, NOW, None, None)
            (row,) = [m for m in store.outbox.in_status(OUTBOX_PENDING) if m.dedupe_key == key]
            if channel:
                store.outbox.mark_sent(row.id, OUTBOX_SENT, NOW, channel, "1.1")
    assert store.outbox.channel_id("channel:#a") == "CNEW"
    assert store.outbox.channel_id("channel:#b") == "CB"


def test_a_scheduled_run_is_claimed_once_and_the_transaction_goes_on(store_target):
    """On PostgreSQL an error aborts the whole transaction: a lost claim must not be one."""
    store = Store.open(store_target)
    fire = "2024-03-01T08:00:00-05:00"
    with store.transaction():
        assert store.job_runs.claim("daily", fire, "running", NOW, None)
        assert not store.job_runs.claim("daily", fire, "running", NOW, None)
        store.job_runs.finish("daily", fire, "done", NOW, "ok")
    assert store.job_runs.last_fire_time("daily") == datetime.fromisoformat(fire)
    assert store.job_runs.latest_finished()["daily"][0] == "done"


def test_one_lease_holder_at_a_time_and_takeover_after_expiry(store_target):
    Store.open(store_target).close()
    stores = [Store.open(store_target) for _ in range(6)]
    ttl = timedelta(seconds=5)

    def acquire(i):
        with stores[i].transaction():
            return stores[i].leases.acquire("scheduler", f"p{i}", NOW, ttl)

    winners = [i for i, won in enumerate(_in_threads(6, acquire)) if won]
    assert len(winners) == 1
    store = stores[0]
    holder = f"p{winners[0]}"
    assert store.leases.holder("scheduler", NOW)[0] == holder
    with store.transaction():
        assert not store.leases.acquire("scheduler", "late", NOW + timedelta(seconds=4), ttl)
        assert store.leases.acquire("scheduler", "late", NOW + timedelta(seconds=6), ttl)
    with store.transaction():
        store.leases.release("scheduler", "late")
    assert store.leases.holder("scheduler", NOW + timedelta(seconds=7)) is None


def test_slack_users_models_prune_and_vacuum(store_target, tmp_path):
    store = Store.open(store_target)
    store.save_slack_user("rep_1", "U1", "a@example.com", NOW)
    store.save_slack_user("rep_1", "U9", "a@example.com", NOW)  # looked up again: replaced
    assert store.slack_users() == {"rep_1": "U9"}
    parsed, _ = _messy_snapshot(tmp_path)
    first = store.save_snapshot(parsed, NOW, NOW)
    model = store.save_model(first.id, SPEC.data_end, NOW, _summary(), b"\x00model\xff")
    assert store.model(model.id).pipeline == b"\x00model\xff"
    assert store.latest_model(SPEC.data_end, SPEC.data_end - timedelta(days=1)).id == model.id
    later = parsed.deals.assign(deal_name=parsed.deals["deal_name"].astype(object) + " (later)")
    second = store.save_snapshot(type(parsed)(**{**vars(parsed), "deals": later, "sha256": "b" * 64}), NOW, NOW)
    deleted = store.prune(1, NOW - timedelta(days=1))
    assert deleted["snapshots"] == 1 and deleted["models"] == 1 and deleted["deals"] == len(parsed.deals)
    store.vacuum()
    assert store.latest_snapshot().id == second.id and store.size_bytes() > 0


def _summary() -> dict:
    return {"has_skill": True, "train_from": "2023-01-01", "train_to": "2024-01-01", "deals": 10, "examples": 20}


def test_replay_memory_is_shared_by_every_process_on_the_store(store_target):
    Store.open(store_target).close()
    store = Store.open(store_target)
    first, second = replay_memory_for(store.target, 300), replay_memory_for(store.target, 300)
    assert first.remember("v0=abc", 1000.0)
    assert not second.remember("v0=abc", 1100.0)  # another process saw it within the window
    assert second.remember("v0=abc", 1400.0)  # the window passed: a new request with the same signature bytes
    assert first.remembered(1400.0) == 1


def test_a_spent_dashboard_link_is_remembered_until_it_expires_and_forgetting_spares_the_window(store_target):
    """Link nonces share the memory with Slack's signatures: kept until the link's expiry, and the periodic
    forgetting runs on the real time, so it never drops signatures still inside the window."""
    from salesintel.engine.store import replay_memory as memory_module

    Store.open(store_target).close()
    memory = replay_memory_for(Store.open(store_target).target, 300)
    assert memory.remember("dashboard-link:n1", 1000.0, keep_until=1600.0)
    assert memory.remember("v0=recent", 1490.0)
    memory._inserts = memory_module.PRUNE_EVERY - 1  # the next insert forgets what expired
    assert memory.remember("v0=other", 1500.0)
    assert not memory.remember("v0=recent", 1500.0), "a signature inside the window survives the forgetting"
    assert not memory.remember("dashboard-link:n1", 1550.0), "a spent link stays spent until it expires"
    assert memory.seen("dashboard-link:n1", 1550.0) and not memory.seen("dashboard-link:n2", 1550.0)
    assert memory.remembered(1500.0) == 2, "a link kept for later is not counted as an accepted request"
    assert memory.remember("dashboard-link:n1", 1901.0), "long after expiry the nonce may be forgotten"


def test_a_whole_store_copied_from_sqlite_to_postgresql_keeps_every_row(tmp_path, postgres_url):
    from salesintel.engine.store.copy import COPY_ORDER, copy_store

    parsed, settings = _messy_snapshot(tmp_path)
    source = Store.open(tmp_path / "s.db")
    source.save_snapshot(parsed, NOW, NOW)
    refresh(source, EngineSettings(settings.metrics, settings.model, settings.anomalies), SPEC.data_end, NOW)
    with source.transaction():
        alert = source.alerts.open_episode("at_risk", "D1", 1, 0.8, False, ["U1"], {"why": "é ✓"}, NOW)
        source.alerts.acknowledge(alert.id, "U1", NOW)
        source.outbox.insert("k1", "realtime", "user:U1", "hi", [{"type": "section"}], OUTBOX_PENDING, NOW, 1, None)
        source.job_runs.claim("daily", "2024-03-01T13:00:00+00:00", "done", NOW, None)
        source.leases.acquire("scheduler", "p1", NOW, timedelta(seconds=90))
    source.save_slack_user("rep_1", "U1", None, NOW)
    target = Store.open(postgres_url)
    copied = copy_store(source, target)
    for table in COPY_ORDER:
        columns = source.conn.columns(table)
        order = ", ".join(columns)
        rows = source.conn.execute(f"SELECT {order} FROM {table} ORDER BY {order.replace('data, ', '')}").fetchall()
        theirs = target.conn.execute(f"SELECT {order} FROM {table} ORDER BY {order.replace('data, ', '')}").fetchall()
        assert [tuple(r) for r in theirs] == [tuple(r) for r in rows], table
        assert copied[table] == len(rows)
    assert target.leases.holder("scheduler", NOW) is None, "a lease names a process of the source: not copied"
    back = Store.open(tmp_path / "back.db")  # and back to a file, streamed from the server
    assert copy_store(target, back) == copied
    for table in COPY_ORDER:
        columns = ", ".join(source.conn.columns(table))
        ordered = f"SELECT {columns} FROM {table} ORDER BY {columns.replace('data, ', '')}"
        assert back.conn.execute(ordered).fetchall() == source.conn.execute(ordered).fetchall(), table
    with target.transaction():  # ids continue after the copied ones
        again = target.alerts.open_episode("at_risk", "D2", 1, 0.8, False, ["U1"], {}, NOW)
    assert again.id == alert.id + 1


def test_a_thread_whose_server_connection_was_cut_reconnects_on_its_next_request(postgres_url):
    """A PostgreSQL restart or failover cuts every connection: the request that finds out fails, the next one from
    the same service thread gets a new connection."""
    import psycopg

    from salesintel.engine.store import ThreadLocalStore

    stores = ThreadLocalStore(postgres_url)
    first = stores.get()
    pid = first.conn.raw.info.backend_pid
    assert first.latest_snapshot() is None
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(psycopg.OperationalError):
        first.latest_snapshot()
    again = stores.get()
    assert again is not first and again.latest_snapshot() is None
    assert again.conn.raw.info.backend_pid != pid
    stores.close()


def test_after_a_cut_the_scheduler_and_the_replay_memory_work_on_new_connections(postgres_url):
    """The scheduler thread's jobs must not keep a dead connection (they would fail every tick while this process
    kept the lease), and the replay memory must not fail every request after a failover."""
    import psycopg

    from salesintel.alerts.clock import SimulatedClock
    from salesintel.alerts.jobs import RefreshJob
    from salesintel.alerts.runs import AlertEnvironment
    from salesintel.bot.app import BotDeps
    from salesintel.bot.config import Credentials, Settings
    from salesintel.bot.service import Worker
    from salesintel.engine.store import ThreadLocalStore

    settings = Settings()
    stores = ThreadLocalStore(postgres_url)
    clock = SimulatedClock(NOW)
    job = RefreshJob(
        AlertEnvironment(stores.get(), settings.alerts, ZoneInfo("UTC")),
        EngineSettings(settings.metrics, settings.model),
        settings.ingest,
    )
    worker = Worker(BotDeps(stores, settings, clock), Credentials.from_environment({}), job, NOW, threading.Event())
    memory = replay_memory_for(stores.target, 300)
    first = worker.scheduler()
    assert memory.remember("v0=1", 1000.0)
    cut = [first.store.conn.raw.info.backend_pid, memory._connection().raw.info.backend_pid]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for pid in cut:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(psycopg.OperationalError):
        first.store.latest_snapshot()  # the tick that finds out fails
    again = worker.scheduler()
    assert again is not first and again.store.conn.raw.info.backend_pid not in cut
    again.tick()  # runs on the new connection without raising
    assert memory.remember("v0=2", 1001.0) and not memory.remember("v0=1", 1002.0), "reconnected, still remembers"
    stores.close()


def test_an_export_with_ingest_hazards_and_nul_bytes_is_stored_alike_on_both(tmp_path, postgres_url):
    """Every planted row-level hazard, plus a NUL inside a deal's name and a region: PostgreSQL's text cannot hold
    a NUL, and the snapshot must not fail there while it loads on SQLite. Both stores hold the same deals and the
    same rejects; the NUL is shown as U+FFFD."""
    from salesintel.engine.settings import IngestSettings
    from salesintel.engine.synth import SynthSpec, generate, plant_ingest_hazards

    crm, hazards = plant_ingest_hazards(generate(SynthSpec(deals=400, seed=2)).crm.astype(object))
    crm.loc[6, "region"] = "EM\x00EA"
    crm.to_csv(tmp_path / "crm.csv", index=False)
    parsed = read_snapshot(tmp_path / "crm.csv", IngestSettings())
    named = parsed.deals.assign(deal_name=parsed.deals["deal_name"].astype(object))
    named.loc[5, "deal_name"] = "Acme\x00 renewal"  # as a layout mapping a CRM's name column would read it
    parsed = type(parsed)(**{**vars(parsed), "deals": named})
    stored = []
    for where in (tmp_path / "s.db", postgres_url):
        store = Store.open(where)
        snapshot = store.save_snapshot(parsed, NOW, NOW)
        stored.append((store.deals(snapshot.id), [(r["line"], r["deal_id"]) for r in store.rejects(snapshot.id)]))
    (lite_deals, lite_rejects), (pg_deals, pg_rejects) = stored
    pd.testing.assert_frame_equal(lite_deals, pg_deals, check_exact=True)
    assert lite_rejects == pg_rejects and len(pg_rejects) >= len(hazards.invisible)
    assert "\ufffd" in "".join(pg_rejects[i][1] for i in range(len(pg_rejects)))
    assert (pg_deals["deal_name"] == "Acme\ufffd renewal").sum() == 1
    assert (pg_deals["region"].astype(object) == "EM\ufffdEA").sum() == 1


def test_alert_feedback_is_one_answer_per_person_and_the_monthly_report_shows_it(store_target, tmp_path):
    from salesintel.alerts.ledger import AlertLedger
    from salesintel.alerts.runs import AlertEnvironment, report_message

    parsed, settings = _messy_snapshot(tmp_path)
    store = Store.open(store_target)
    store.save_snapshot(parsed, NOW, NOW)
    refresh(store, EngineSettings(settings.metrics, settings.model, settings.anomalies), SPEC.data_end, NOW)
    ledger = AlertLedger(store)
    with store.transaction():
        first = ledger.open_episode(
            "high_value_at_risk", "D1", 0.8, False, ["user:rep_1"], {"sales_rep_id": "rep_1"}, NOW
        )
        second = ledger.open_episode("stalled", "D2", 0.6, False, ["user:rep_2"], {"sales_rep_id": "rep_2"}, NOW)
    assert ledger.record_feedback(first.id, "U1", True, NOW)
    assert not ledger.record_feedback(first.id, "U1", True, NOW), "the same answer again changes nothing"
    assert ledger.record_feedback(first.id, "U1", False, NOW), "a changed mind replaces the answer"
    assert ledger.record_feedback(first.id, "UMGR", True, NOW)
    assert ledger.record_feedback(second.id, "U2", False, NOW)
    summary = ledger.feedback_summary(NOW - timedelta(days=30))
    assert summary == {
        "rules": {"high_value_at_risk": (1, 1), "stalled": (0, 1)},
        "reps": {"rep_1": (1, 1), "rep_2": (0, 1)},
        "answers": 3,
    }
    env = AlertEnvironment(store, settings.alerts, ZoneInfo("UTC"))
    message, _ = report_message("monthly", env, NOW + timedelta(days=1))
    body = json.dumps(message.blocks)
    assert "high_value_at_risk: 1 useful, 1 not useful" in body and "rep_2 0/1" in body
