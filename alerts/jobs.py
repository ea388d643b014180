"""The scheduled jobs, as plain functions of (fire time, now) closed over the store and settings.

- refresh: ingest any new snapshot in the watched folder, recompute as of today (or the pinned date; or, for an
  export that ends more than a week before it was taken, its last day: `engine.refresh.default_as_of`), then run
  the real-time rules and the health checks (stale data, drift);
- daily, weekly, monthly: queue that report for its channel, once per fire time.
Delivery is not a job: the service delivers after every tick, so messages leave as soon as they are queued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from salesintel.alerts.routing import digest_recipients
from salesintel.alerts.runs import (
    AlertEnvironment,
    NothingToReport,
    digest_run,
    health_checks,
    held_snapshot_alert,
    ops_alert,
    realtime_run,
    report_run,
)
from salesintel.alerts.schedule import Job, cron_trigger
from salesintel.alerts.settings import REPORT_KINDS, ScheduleSettings
from salesintel.engine.ingest import IngestError, file_sha256, read_snapshot
from salesintel.engine.refresh import EngineSettings, RefreshError, early_end, refresh
from salesintel.engine.settings import IngestSettings
from salesintel.engine.snapshot_guard import save_guarded
from salesintel.engine.warehouse import WarehouseSource, read_warehouse

log = logging.getLogger("salesintel.jobs")


@dataclass
class RefreshJob:
    env: AlertEnvironment
    engine: EngineSettings
    ingest: IngestSettings
    pinned_as_of: date | None = None
    watch_folder: Path | None = None
    warehouse: WarehouseSource | None = None
    _seen: set[tuple[str, float, int]] = field(default_factory=set)
    _ends_early: dict[int, date | None] = field(default_factory=dict)

    def __call__(self, fire_time: datetime, now: datetime) -> str | None:
        notes = [note for note in (self._ingest_new_files(now), self._pull_warehouse(now)) if note]
        snapshot = self.env.store.latest_snapshot()
        if snapshot is None:
            return "; ".join([*notes, "no snapshot loaded yet"])
        as_of = self.pinned_as_of or self._as_of(snapshot, now.astimezone(self.env.timezone).date(), now)
        latest = self.env.store.latest_refresh(as_of)
        if not (latest and latest.snapshot_id == snapshot.id):
            try:
                result = refresh(self.env.store, self.engine, as_of, now)
            except RefreshError as error:
                ops_alert(self.env, f"refresh:{snapshot.id}:{as_of}", f"refresh failed: {error}", now)
                return str(error)
            notes.append(f"refresh #{result.id} as of {as_of}")
        try:
            counts = realtime_run(self.env, now)
            notes.append(", ".join(f"{k} {v}" for k, v in counts.items() if v))
            problems = health_checks(self.env, now)
        except NothingToReport as error:
            return str(error)
        notes += problems
        return "; ".join(n for n in notes if n) or None

    def _as_of(self, snapshot, today: date, now: datetime) -> date:
        """Today, as the pipeline ages. An export whose last event (a creation or a close) is more than a week
        before it was taken is answered as of that last day, as `salesintel refresh` does, with an ops alert saying
        so — unless the service has already answered a later day: a live CRM's quiet week (no deal created or
        closed) must not send its date back, un-age its deals and resolve their alerts. Its deals are read once
        per snapshot."""
        if snapshot.id not in self._ends_early:
            self._ends_early[snapshot.id] = early_end(snapshot, self.env.store.deals(snapshot.id))
        end = self._ends_early[snapshot.id]
        answered = self.env.store.latest_refresh()
        if end is None or (answered is not None and answered.as_of > end):
            return today
        problem = (
            f"snapshot #{snapshot.id} ({snapshot.source}) ends on {end}, {(snapshot.taken_at.date() - end).days} days "
            f"before it was taken: answering as of {end}, not today. If the CRM is in use, the export is missing "
            "its recent deals"
        )
        ops_alert(self.env, f"ends-early:{snapshot.id}", problem, now)
        return end

    def _pull_warehouse(self, now: datetime) -> str | None:
        """Run the warehouse query; a result not loaded before becomes a snapshot, through the same guard as a file
        (held, with an ops alert, when it fails the checks against the previous one). A failing query raises an
        ops alert once per hour it keeps failing, and the last snapshot stays in use."""
        if self.warehouse is None:
            return None
        try:
            parsed = read_warehouse(self.warehouse, self.ingest)
        except IngestError as error:
            ops_alert(self.env, f"warehouse:{now:%Y-%m-%dT%H}", f"cannot load {error}", now)
            return str(error)
        existing = self.env.store.snapshot_by_sha256(parsed.sha256)
        if existing:
            return None
        saved = save_guarded(self.env.store, parsed, now, now, self.ingest, accept=False)
        snapshot = saved.snapshot
        if not snapshot.promoted:
            held_snapshot_alert(self.env, saved, str(self.warehouse), now)
        return (
            f"snapshot #{snapshot.id} from the {self.warehouse} ({snapshot.rows_loaded} loaded, "
            f"{snapshot.rows_rejected} rejected{'' if snapshot.promoted else ', held'})"
        )

    def _ingest_new_files(self, now: datetime) -> str | None:
        """Load each new CSV in the watched folder once it is complete: unchanged for `watch_settle_seconds` and
        still unchanged after it was read (a file being copied in is left for a later tick). A snapshot that fails
        the guard against the previous one is held and raises an ops alert (see `engine.snapshot_guard`)."""
        if not self.watch_folder or not self.watch_folder.is_dir():
            return None
        loaded = []
        for path in sorted(self.watch_folder.glob("*.csv")):
            stat = path.stat()
            marker = (path.name, stat.st_mtime, stat.st_size)
            if marker in self._seen:
                continue
            if now.timestamp() - stat.st_mtime < self.ingest.watch_settle_seconds:
                loaded.append(f"{path.name} changed less than {self.ingest.watch_settle_seconds} s ago: left for later")
                continue
            if self.env.store.snapshot_by_sha256(file_sha256(path)):
                self._seen.add(marker)
                continue
            try:
                parsed = read_snapshot(path, self.ingest)
            except IngestError as error:
                self._seen.add(marker)
                ops_alert(self.env, f"ingest:{path.name}:{stat.st_mtime}", f"cannot load {error}", now)
                continue
            after = path.stat()
            if (after.st_mtime, after.st_size) != (stat.st_mtime, stat.st_size) or parsed.sha256 != file_sha256(path):
                loaded.append(f"{path.name} changed while it was read: left for later")
                continue
            self._seen.add(marker)
            taken = datetime.fromtimestamp(stat.st_mtime, UTC)
            saved = save_guarded(self.env.store, parsed, taken, now, self.ingest, accept=False)
            snapshot = saved.snapshot
            if not snapshot.promoted:
                held_snapshot_alert(self.env, saved, path, now)
            loaded.append(
                f"snapshot #{snapshot.id} from {path.name} ({snapshot.rows_loaded} loaded, "
                f"{snapshot.rows_rejected} rejected{'' if snapshot.promoted else ', held'})"
            )
        return "; ".join(loaded) or None


def report_job(kind: str, env: AlertEnvironment):
    def run(fire_time: datetime, now: datetime) -> str | None:
        try:
            queued = report_run(kind, env, now, occurrence=fire_time.astimezone(UTC).isoformat())
        except NothingToReport as error:
            return str(error)
        return "queued" if queued else "already queued"

    return run


def digest_job(kind: str, env: AlertEnvironment, target: str):
    def run(fire_time: datetime, now: datetime) -> str | None:
        try:
            queued = digest_run(kind, env, now, fire_time.astimezone(UTC).isoformat(), target)
        except NothingToReport as error:
            return str(error)
        return "queued" if queued else "already queued"

    return run


def digest_jobs(env: AlertEnvironment, zone_of: Callable[[str], ZoneInfo | None] | None = None) -> list[Job]:
    """One job per (report, digest recipient: by email or by Slack DM), on the report's schedule in the recipient's
    own time zone: a daily digest at 08:00 reaches Berlin at 08:00 Berlin time and New York at 08:00 New York time,
    DST included. A person without `tz:` in config is asked about through `zone_of` (Slack's `users.info`); else
    the service's zone."""
    jobs = []
    for kind in REPORT_KINDS:
        for recipient in digest_recipients(kind, env.settings.email, env.settings.routing, zone_of):
            trigger = cron_trigger(getattr(env.settings.schedule, kind), recipient.zone or env.timezone)
            jobs.append(Job(f"{kind}-{recipient.target}", trigger, digest_job(kind, env, recipient.target)))
    return jobs


def tuning_job(env: AlertEnvironment):
    def run(fire_time: datetime, now: datetime) -> str | None:
        from salesintel.alerts.tuning import tuning_run

        try:
            return tuning_run(env, now)
        except NothingToReport as error:
            return str(error)

    return run


def job_triggers(schedule: ScheduleSettings, timezone: ZoneInfo) -> dict[str, CronTrigger]:
    """When each job fires: the one place the configured cron fields become triggers."""
    return {name: cron_trigger(getattr(schedule, name), timezone) for name in ("refresh", *REPORT_KINDS, "tuning")}


def build_jobs(
    env: AlertEnvironment, refresh_job: RefreshJob, zone_of: Callable[[str], ZoneInfo | None] | None = None
) -> list[Job]:
    """Every scheduled job; `zone_of(person)` is a digest recipient's time zone from Slack (see `digest_jobs`)."""
    triggers = job_triggers(env.settings.schedule, env.timezone)
    runs = {"refresh": refresh_job, **{kind: report_job(kind, env) for kind in REPORT_KINDS}}
    if env.settings.realtime.tuning.enabled:
        runs["tuning"] = tuning_job(env)
    return [Job(name, triggers[name], run) for name, run in runs.items()] + digest_jobs(env, zone_of)


def misfire_grace(env: AlertEnvironment) -> timedelta:
    return timedelta(minutes=env.settings.schedule.misfire_grace_minutes)
