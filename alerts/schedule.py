"""When jobs run: cron schedules in one time zone, claims so each fire time runs once, and the misfire policy.

APScheduler's `CronTrigger` does the calendar arithmetic (time zones, DST). The `Scheduler` here is driven by
`tick()`: in the service an APScheduler `BackgroundScheduler` calls it every few seconds; in tests a simulated
clock calls it, so a month passes in a second. Each tick looks at every fire time since the job's last recorded
one, up to now.

Misfire policy: when fire times were missed (the service was down), only the most recent one is considered.
If it is at most `misfire_grace` late it runs once, and its claim row is marked late; the older ones, and any
fire time later than the grace, are recorded as skipped and logged. Claims are rows keyed by (job, fire time):
a second process, or a rerun after a crash, cannot run the same fire time twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from salesintel.alerts.clock import Clock
from salesintel.alerts.settings import CronSettings
from salesintel.engine.store import Store

log = logging.getLogger("salesintel.schedule")
LATE_AFTER = timedelta(minutes=1)
"""A run this much after its fire time is recorded as late."""


@dataclass(frozen=True)
class Job:
    name: str
    trigger: CronTrigger
    run: Callable[[datetime, datetime], str | None]
    """Called with (fire time, now); returns an optional note for the claim row."""


@dataclass(frozen=True)
class JobRun:
    job: str
    fire_time: datetime
    status: str
    note: str | None = None


def cron_trigger(cron: CronSettings, timezone: ZoneInfo) -> CronTrigger:
    return CronTrigger(
        second=cron.second,
        minute=cron.minute,
        hour=cron.hour,
        day=cron.day,
        month=cron.month,
        day_of_week=cron.day_of_week,
        timezone=timezone,
    )


class Scheduler:
    def __init__(
        self, store: Store, jobs: list[Job], clock: Clock, misfire_grace: timedelta, started: datetime | None = None
    ):
        """`started`: when the service started; a job that never ran has no backlog before it."""
        self.store, self.jobs, self.clock, self.grace = store, jobs, clock, misfire_grace
        self._started = started or clock.now()

    def tick(self) -> list[JobRun]:
        """Run what is due now; returns what was run or skipped, in order."""
        runs = []
        for job in self.jobs:
            runs += self._tick_job(job, self.clock.now())
        return runs

    def _tick_job(self, job: Job, now: datetime) -> list[JobRun]:
        since = self._last_fire_time(job.name) or self._started
        due = []
        fire = job.trigger.get_next_fire_time(None, since + timedelta(seconds=1))
        while fire is not None and fire <= now:
            due.append(fire)
            fire = job.trigger.get_next_fire_time(None, fire + timedelta(seconds=1))
        if not due:
            return []
        runs = [
            self._skip(job, missed, "missed while the service was down; a later run replaces it") for missed in due[:-1]
        ]
        latest = due[-1]
        if now - latest > self.grace:
            runs.append(self._skip(job, latest, f"{now - latest} late, beyond the {self.grace} grace period"))
        else:
            runs.append(self._run(job, latest, now))
        return [run for run in runs if run is not None]

    def _last_fire_time(self, job: str) -> datetime | None:
        return self.store.job_runs.last_fire_time(job)

    def _claim(self, job: str, fire_time: datetime, status: str, note: str | None) -> bool:
        with self.store.transaction():
            return self.store.job_runs.claim(job, _utc(fire_time), status, self.clock.now(), note)

    def _skip(self, job: Job, fire_time: datetime, why: str) -> JobRun | None:
        if not self._claim(job.name, fire_time, "skipped", why):
            return None
        log.warning(
            "job skipped", extra={"event": "job_skipped", "job": job.name, "fire_time": _utc(fire_time), "why": why}
        )
        return JobRun(job.name, fire_time, "skipped", why)

    def _run(self, job: Job, fire_time: datetime, now: datetime) -> JobRun | None:
        late = now - fire_time > LATE_AFTER
        note = f"late by {now - fire_time}" if late else None
        if not self._claim(job.name, fire_time, "running", note):
            return None
        try:
            result = job.run(fire_time, now)
        except Exception as error:
            self._finish(job.name, fire_time, "failed", f"{type(error).__name__}: {error}")
            log.exception("job failed", extra={"event": "job_failed", "job": job.name, "fire_time": _utc(fire_time)})
            return JobRun(job.name, fire_time, "failed", str(error))
        status = "late" if late else "done"
        note = "; ".join(n for n in (note, result) if n) or None
        self._finish(job.name, fire_time, status, note)
        log.info("job ran", extra={"event": "job_ran", "job": job.name, "fire_time": _utc(fire_time), "status": status})
        return JobRun(job.name, fire_time, status, note)

    def _finish(self, job: str, fire_time: datetime, status: str, note: str | None) -> None:
        with self.store.transaction():
            self.store.job_runs.finish(job, _utc(fire_time), status, self.clock.now(), note)


def _utc(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).isoformat()
