"""The service is wired once at start-up: credentials read once from the environment, one scheduler for the worker."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

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


@pytest.mark.parametrize("kind", ["local", "shared"])
def test_the_replay_memory_refuses_a_copy_within_the_window_and_forgets_what_is_older(kind, tmp_path):
    """Local: one process's memory. Shared: the file beside the store, here seen through two guards (two replicas):
    a copy refused by the one that did not accept the original."""
    import io

    from salesintel.bot.request_guard import WINDOW_SECONDS, LocalReplayMemory, RequestGuard
    from salesintel.engine.store.replay_memory import SharedReplayMemory
    from tests import slack_requests as slack

    now = [1_800_000_000.0]

    def memory():
        if kind == "local":
            return LocalReplayMemory()
        return SharedReplayMemory.beside(tmp_path / "store.db.replay", WINDOW_SECONDS)

    guard = RequestGuard("secret", clock=lambda: now[0], memory=memory())
    other = RequestGuard("secret", clock=lambda: now[0], memory=memory()) if kind == "shared" else guard

    def environ(body: str, timestamp: int) -> dict:
        return {
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "wsgi.input": io.BytesIO(body.encode()),
            "HTTP_X_SLACK_REQUEST_TIMESTAMP": str(timestamp),
            "HTTP_X_SLACK_SIGNATURE": slack.signature("secret", str(timestamp), body),
        }

    first = slack.slash_command("/deal-risk", "D00001", "U1")
    assert guard.check(environ(first, int(now[0]))) is None
    assert "replay" in other.check(environ(first, int(now[0]))).reason
    for _ in range(10):  # ten minutes of traffic, 100 requests a minute
        now[0] += 60
        for _request in range(100):
            assert guard.check(environ(slack.slash_command("/deal-risk", "D00001", "U1"), int(now[0]))) is None
    assert guard.memory.remembered(now[0]) == 100 * (WINDOW_SECONDS // 60 + 1)  # five minutes, and exactly five


def test_the_newest_finished_run_of_each_job_is_what_metrics_report(tmp_path):
    from datetime import UTC, datetime, timedelta

    from salesintel.engine.store import Store

    store = Store.open(tmp_path / "s.db")
    start = datetime(2026, 11, 30, 8, tzinfo=UTC)
    with store.transaction():
        for day, status in ((0, "done"), (1, "failed")):
            fire = (start + timedelta(days=day)).isoformat()
            assert store.job_runs.claim("refresh", fire, "running", start + timedelta(days=day), None)
            store.job_runs.finish("refresh", fire, status, start + timedelta(days=day, seconds=42 + day), None)
        assert store.job_runs.claim("daily", start.isoformat(), "running", start, None)  # still running: not reported
    assert store.job_runs.latest_finished() == {
        "refresh": ("failed", start + timedelta(days=1), start + timedelta(days=1, seconds=43))
    }


def test_a_new_term_is_noticed_whichever_renewal_gained_the_lease(tmp_path):
    """The heartbeat and the tick both renew the lease; orphan recovery runs on the tick. A gain seen first by the
    heartbeat must still start a new term for the tick (it once did not: a message left in flight stayed there)."""
    from datetime import UTC, datetime, timedelta

    from salesintel.alerts.clock import SimulatedClock
    from salesintel.alerts.leadership import Leadership
    from salesintel.engine.store import Store

    store = Store.open(tmp_path / "s.db")
    clock = SimulatedClock(datetime(2026, 11, 30, 8, tzinfo=UTC))
    old = Leadership(lambda: store, "old", timedelta(seconds=3), clock)
    new = Leadership(lambda: store, "new", timedelta(seconds=3), clock)
    assert old.renew() == (True, True) and new.renew() == (False, False)
    assert not new.take_new_term()
    clock.advance(timedelta(seconds=4))  # the old leader died: its lease expired
    assert new.renew() == (True, True)  # the heartbeat's renewal gains it
    assert new.renew() == (True, False)  # the tick's renewal sees no gain ...
    assert new.take_new_term() and not new.take_new_term()  # ... but the new term is there, once


def test_the_answer_memo_keeps_one_refreshs_scores_and_every_answer():
    """A refresh's every score is large: the memo holds the latest refresh's only, whatever else it holds."""
    from salesintel.alerts.answer_memo import AnswerMemo

    memo = AnswerMemo()
    built = []
    first = memo(("scores", (1, "t1")), lambda: built.append(1) or ("deal",) * 3)
    assert memo(("scores", (1, "t1")), lambda: built.append(1) or ()) is first and built == [1]
    memo(("deal_risk", (1, "t1"), "D1"), lambda: "answer")
    memo(("scores", (2, "t2")), lambda: built.append(2) or ("deal",))
    assert [k for k in memo._entries if k[0] == "scores"] == [("scores", (2, "t2"))]
    assert memo(("deal_risk", (1, "t1"), "D1"), lambda: "rebuilt") == "answer", "other entries stay"
