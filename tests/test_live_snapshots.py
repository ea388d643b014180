"""Live operation: snapshots dropped in a watched folder, the stage known at the date, the stalled-deal rule."""

import os
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from salesintel.alerts.jobs import RefreshJob
from salesintel.alerts.ledger import AlertLedger
from salesintel.alerts.runs import AlertEnvironment
from salesintel.alerts.settings import AlertsSettings, RealtimeRuleSettings
from salesintel.engine.refresh import EngineSettings
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from salesintel.engine.synth import filtered_export, half_copied

HEADER = (
    "deal_id,created_date,closed_date,sales_rep_id,industry,region,product_type,lead_source,deal_stage,deal_amount,"
    "sales_cycle_days,outcome\n"
)


def crm(open_rows: list[str]) -> str:
    """300 closed deals with cycles of 20 to 119 days (so a 60-day-old open deal is not older than history knows)."""
    closed = []
    for i in range(300):
        created = date(2023, i % 9 + 1, 1)
        cycle = 20 + i % 100
        closed.append(
            f"C{i:04d},{created},{created + timedelta(days=cycle)},rep_{i % 5},SaaS,APAC,Core,Inbound,Demo,"
            f"1000,{cycle},{'Won' if i % 2 else 'Lost'}\n"
        )
    return HEADER + "".join(closed) + "".join(open_rows)


def drop(path, text: str, taken: datetime) -> None:
    """A CRM export lands in the folder; its modification time is when it was taken."""
    path.write_text(text)
    os.utime(path, (taken.timestamp(), taken.timestamp()))


def test_watched_folder_snapshots_load_and_the_stalled_rules_fire(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    store = Store.open(tmp_path / "s.db")
    settings = AlertsSettings(realtime=RealtimeRuleSettings(min_amount=10**9), control_share=0.0)
    env = AlertEnvironment(store, settings, ZoneInfo("UTC"))
    job = RefreshJob(
        env, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), IngestSettings(), watch_folder=inbox
    )
    early = (
        "O0001,2024-01-01,,rep_1,SaaS,APAC,Core,Inbound,Qualified,5000,,\n"
        "O0002,2024-02-25,,rep_2,SaaS,APAC,Core,Inbound,Demo,5000,,\n"
    )
    now = datetime(2024, 3, 1, 7, tzinfo=UTC)
    drop(inbox / "crm-0301.csv", crm([early]), now - timedelta(hours=1))
    note = job(now, now)
    assert "snapshot #1 from crm-0301.csv (302 loaded, 0 rejected)" in note
    stalled = {a.deal_id for a in AlertLedger(store).active("stalled")}
    assert stalled == {"O0001"}, "60 days old and still Qualified; O0002 has been in Demo only since this snapshot"

    later = datetime(2024, 4, 5, 7, tzinfo=UTC)
    moved = early.replace("Inbound,Qualified", "Inbound,Proposal")
    drop(inbox / "crm-0405.csv", crm([moved]), later - timedelta(hours=1))
    assert "snapshot #2" in job(later, later)
    active = {a.deal_id for a in AlertLedger(store).active("stalled")}
    assert active == {"O0002"}, "O0001 reached Proposal (episode resolved); O0002 has been in Demo since 1 March"
    job(later + timedelta(minutes=30), later + timedelta(minutes=30))
    assert store.db.execute("SELECT COUNT(*) FROM refreshes").fetchone() == (2,), "same data, same date: no new refresh"
    assert store.stage_since(2, date(2024, 4, 5)) == {"O0002": date(2024, 3, 1)}


def _job(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    store = Store.open(tmp_path / "s.db")
    env = AlertEnvironment(store, AlertsSettings(control_share=0.0), ZoneInfo("UTC"))
    engine = EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings())
    return inbox, store, RefreshJob(env, engine, IngestSettings(watch_settle_seconds=60), watch_folder=inbox)


def test_a_file_still_being_copied_is_left_until_it_has_settled_then_loaded_once(tmp_path):
    inbox, store, job = _job(tmp_path)
    now = datetime(2024, 3, 1, 7, tzinfo=UTC)
    full = crm([])
    drop(inbox / "crm.csv", half_copied(full), now - timedelta(seconds=5))  # still being copied, seconds ago
    assert "crm.csv changed less than 60 s ago: left for later" in job(now, now)
    assert store.latest_snapshot() is None
    drop(inbox / "crm.csv", full, now + timedelta(seconds=20))  # the copy finished
    later = now + timedelta(minutes=5)
    assert "snapshot #1 from crm.csv (300 loaded, 0 rejected)" in job(later, later)
    assert "snapshot #2" not in (job(later + timedelta(minutes=5), later + timedelta(minutes=5)) or "")


def test_a_partial_export_is_held_with_an_ops_alert_and_the_previous_snapshot_stays_in_use(tmp_path):
    inbox, store, job = _job(tmp_path)
    now = datetime(2024, 3, 1, 7, tzinfo=UTC)
    drop(
        inbox / "a.csv", crm(["O0001,2024-02-01,,rep_1,SaaS,APAC,Core,Inbound,Demo,5000,,\n"]), now - timedelta(hours=1)
    )
    job(now, now)
    later = now + timedelta(days=1)
    partial = filtered_export(crm([]), 10)  # 10 of 301 deals: a report exported with a filter on
    drop(inbox / "b.csv", partial, later - timedelta(hours=1))
    note = job(later, later)
    assert "snapshot #2 from b.csv (10 loaded, 0 rejected, held)" in note
    held = store.snapshot(2)
    assert not held.promoted and "deal count dropped from 301 to 10" in held.held_reason
    assert store.latest_snapshot().id == 1 and store.latest_refresh().snapshot_id == 1
    [ops] = [m for m in store.outbox.in_status("pending") if m.kind == "ops" and "held, not used" in m.text]
    assert "snapshot #2 from b.csv held, not used: deal count dropped from 301 to 10" in ops.text
    assert "still using snapshot #1" in ops.text


def test_the_service_answers_an_export_that_ends_long_before_it_was_taken_as_of_its_last_day(tmp_path):
    """An old export copied in today: the service refreshes as of the export's last day, as `salesintel refresh`
    does (not today, which would age every open deal into "likely dead"), once, however many ticks pass; an export
    that runs up to its taking is refreshed as of today, day by day."""
    inbox, store, job = _job(tmp_path)
    old = crm(["O0001,2023-12-20,,rep_1,SaaS,APAC,Core,Inbound,Demo,5000,,\n"])  # its last event: a close, 2023-12-28
    now = datetime(2024, 6, 1, 7, tzinfo=UTC)
    drop(inbox / "old.csv", old, now - timedelta(hours=1))
    assert "refresh #1 as of 2023-12-28" in job(now, now)
    job(now + timedelta(days=1), now + timedelta(days=1))
    assert store.db.execute("SELECT COUNT(*) FROM refreshes").fetchone() == (1,), "not again every tick or day"
    assert [s.deal_id for s in store.scores(1) if not s.stale] == ["O0001"], "open, not aged by the gap"
    [said] = [m.text for m in store.outbox.in_status("pending") if m.kind == "ops" and "ends on" in m.text]
    assert "old.csv) ends on 2023-12-28, 156 days before it was taken: answering as of 2023-12-28, not today" in said

    live = crm(["O0002,2024-06-01,,rep_2,SaaS,APAC,Core,Inbound,Demo,5000,,\n"])
    later = datetime(2024, 6, 3, 7, tzinfo=UTC)
    drop(inbox / "live.csv", live, later - timedelta(hours=1))
    assert "refresh #2 as of 2024-06-03" in job(later, later)
    assert "refresh #3 as of 2024-06-04" in job(later + timedelta(days=1), later + timedelta(days=1))

    quiet = later + timedelta(days=12)  # a live CRM's quiet fortnight: a new export, nothing created or closed since
    drop(inbox / "quiet.csv", live.replace("5000,,\n", "5100,,\n"), quiet - timedelta(hours=1))
    assert "as of 2024-06-15" in job(quiet, quiet), "its date does not go back to its last event (1 June)"


def test_prune_keeps_the_newest_snapshots_whole_and_vacuums(salesintel, tmp_path):
    exports = []
    for day in range(3):  # three daily exports, each with the refresh of its day
        path = tmp_path / f"crm-{day}.csv"
        path.write_text(crm([f"O{day:04d},2024-02-0{day + 1},,rep_1,SaaS,APAC,Core,Inbound,Demo,5000,,\n"]))
        os.utime(path, (datetime(2024, 3, day + 1, tzinfo=UTC).timestamp(),) * 2)
        assert salesintel(tmp_path, "ingest", str(path)).returncode == 0
        assert salesintel(tmp_path, "refresh", "--as-of", f"2024-03-0{day + 1}").returncode == 0
        exports.append(path)
    pruned = salesintel(tmp_path, "prune", "--keep", "2")
    assert pruned.returncode == 0, pruned.stderr
    deleted = "deleted scores 1, refresh_reasons 1, refreshes 1, models 1, deals 301, snapshot_frames 1, snapshots 1;"
    assert deleted in pruned.stdout and "MiB ->" in pruned.stdout
    store = Store.open(tmp_path / "s.db")
    assert [s["snapshot_id"] for s in store.models()] == [2, 3] and store.snapshot(1) is None
    latest = store.latest_refresh()
    assert latest.snapshot_id == 3 and [s.deal_id for s in store.scores(latest.id)] == ["O0002"]
    assert salesintel(tmp_path, "report", "daily", "--as-of", "2024-03-03").returncode == 0
    assert salesintel(tmp_path, "ingest", str(exports[0])).returncode == 0  # a pruned export may be loaded again…
    assert Store.open(tmp_path / "s.db").latest_snapshot().id == 3, "…but an older export never becomes the newest"
