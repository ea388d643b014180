"""The service is wired once at start-up: credentials read once from the environment, one scheduler for the worker."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from salesintel.alerts.clock import SimulatedClock
from salesintel.alerts.jobs import RefreshJob
from salesintel.alerts.runs import AlertEnvironment
from salesintel.bot.app import BotDeps
from salesintel.bot.config import Credentials, Settings
from salesintel.bot.service import Worker
from salesintel.engine.refresh import EngineSettings
from salesintel.engine.store import ThreadLocalStore


def test_credentials_come_from_the_environment_given_and_name_their_mode_and_secrets():
    none = Credentials.from_environment({})
    assert none.mode == "terminal" and none.secrets == [] and none.api_url == "https://slack.com/api/"
    http = Credentials.from_environment(
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3", "SLACK_API_URL": "http://x/"}
    )
    assert http.mode == "http" and http.secrets == ["xoxb-1", "s3"] and http.api_url == "http://x/"
    socket = Credentials.from_environment({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})
    assert socket.mode == "socket"


def test_the_worker_builds_its_scheduler_once_and_leaves_the_start_up_job_alone(tmp_path):
    settings = Settings()
    stores = ThreadLocalStore(tmp_path / "s.db")
    clock = SimulatedClock(datetime(2024, 3, 1, 12, tzinfo=UTC))
    start_env = AlertEnvironment(stores.get(), settings.alerts, ZoneInfo(settings.timezone))
    job = RefreshJob(start_env, EngineSettings(settings.metrics, settings.model), settings.ingest)
    worker = Worker(
        BotDeps(stores, settings, clock), Credentials.from_environment({}), job, clock.now(), threading.Event()
    )
    built: list = []
    thread = threading.Thread(target=lambda: built.extend([worker.scheduler(), worker.scheduler()]))
    thread.start()
    thread.join()
    assert built[0] is built[1]  # not rebuilt on every tick
    assert job.env is start_env  # the start-up job is not mutated; the scheduler runs its own copy
    assert built[0].store is not start_env.store  # on the worker thread's own connection
    stores.close()
