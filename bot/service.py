"""`salesintel run`: the Bolt app and the alert scheduler in one process. The composition root.

Modes, chosen by the environment:
- HTTP: `SLACK_BOT_TOKEN` + `SLACK_SIGNING_SECRET` → a threaded WSGI server on `--port` serving `/slack/events`
  (signatures verified) and `GET /healthz`;
- Socket Mode: `SLACK_APP_TOKEN` (+ `SLACK_BOT_TOKEN`) → Bolt's Socket Mode handler, plus `/healthz` on `--port`;
- terminal: no credentials → alerts print to the terminal and slash commands typed on stdin go through the very
  same Bolt handlers (no signature on local input). End of input stops the service.
A background APScheduler job ticks the alert `Scheduler` and then delivers the outbox. SIGTERM (or SIGINT) stops
taking requests, lets in-flight requests and the current tick finish, shuts the scheduler down and exits 0.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.request import BoltRequest
from waitress import wasyncore
from waitress.server import create_server

from salesintel.alerts.answer_memo import AnswerMemo
from salesintel.alerts.clock import SystemClock
from salesintel.alerts.delivery import (
    Deliverer,
    SlackSender,
    TerminalSender,
    TransientError,
    blocks_as_text,
    process_name,
    slack_client,
)
from salesintel.alerts.email_delivery import with_email
from salesintel.alerts.jobs import RefreshJob, build_jobs, job_triggers, misfire_grace
from salesintel.alerts.leadership import Leadership
from salesintel.alerts.outbox import Outbox
from salesintel.alerts.runs import AlertEnvironment
from salesintel.alerts.schedule import Scheduler
from salesintel.bot.app import BotDeps, create_app
from salesintel.bot.config import Credentials, Settings, store_target, warehouse_source
from salesintel.bot.dashboard import Dashboard
from salesintel.bot.dashboard_access import LINK, DashboardAccess, dashboard_secret
from salesintel.bot.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from salesintel.bot.metrics import ServiceMetrics, StoreCollector
from salesintel.bot.request_guard import MAX_BODY_BYTES, WINDOW_SECONDS, RequestGuard
from salesintel.bot.slow_answers import AnswerWithinBudget
from salesintel.bot.workers import WorkerProcesses, leave_when_orphaned, worker_of
from salesintel.engine.collection import settle_long_lived_objects
from salesintel.engine.refresh import EngineSettings
from salesintel.engine.store import ThreadLocalStore
from salesintel.engine.store.replay_memory import replay_memory_for

log = logging.getLogger("salesintel.service")


TERMINAL_COMMANDS = ("/deal-risk", "/pipeline", "/winrate", "/alerts", "/salesintel")


class HttpServer:
    """The HTTP side of `run`: waitress, a production WSGI server in pure Python.

    Chosen over gunicorn because salesintel is one process whose scheduler and delivery threads live beside the
    request threads (gunicorn forks workers, each of which would need its own), and waitress needs no C extensions.
    It gives a bounded thread pool, a listen backlog of 1024, slow clients buffered by its event loop instead of
    holding a thread, a request body limit and an idle-connection timeout; `stop` stops accepting, lets requests in
    flight finish (up to `DRAIN_SECONDS`), then returns, so SIGTERM ends the service within seconds even with idle
    keep-alive connections open.
    """

    DRAIN_SECONDS = 5

    def __init__(self, app, port: int, threads: int = 8, shared_port: bool = False, host: str = "0.0.0.0"):
        """`host`: 127.0.0.1 keeps the port to this machine (terminal mode's dashboard)."""
        # A port shared by the processes of `run --workers N` (see bot.workers): each binds it with SO_REUSEPORT.
        where = {"sockets": [_shared_socket(port)]} if shared_port else {"host": host, "port": port}
        self._loop: threading.Thread | None = None
        self._server = create_server(
            app,
            **where,
            threads=threads,
            backlog=1024,
            connection_limit=1000,
            channel_timeout=30,
            max_request_body_size=MAX_BODY_BYTES,
            ident="salesintel",
        )

    @property
    def port(self) -> int:
        return self._server.effective_port

    def start(self) -> None:
        self._loop = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._loop.start()

    def stop(self) -> None:
        """No new connections, then the requests in hand are finished (up to DRAIN_SECONDS). The listening socket is
        closed by the server's own loop thread: closed from here, the loop's select() could be waiting on it and die
        with EBADF ("Exception in thread http")."""
        closed = threading.Event()

        def close_listener() -> None:
            wasyncore.dispatcher.close(self._server)
            closed.set()

        if self._loop is not None and self._loop.is_alive():
            self._server.trigger.pull_trigger(close_listener)
            closed.wait(self.DRAIN_SECONDS)
        if not closed.is_set():
            close_listener()
        self._server.task_dispatcher.shutdown(cancel_pending=False, timeout=self.DRAIN_SECONDS)


def _shared_socket(port: int) -> socket.socket:
    shared = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    shared.bind(("0.0.0.0", port))
    return shared


ZONES_RETRY = timedelta(minutes=15)
"""How long the scheduler keeps digest jobs in the service's zone for people Slack could not be asked about, before
it is built again to ask."""


@dataclass
class DigestZones:
    """Digest recipients' time zones as Slack knows them (`users.info`), for people config gives no `tz:`, for
    one build of the scheduler. Each person is asked once; once Slack cannot be reached, nobody else is (the first
    tick must not wait out a timeout per person and report) and `unreachable` asks for a later build. None: the
    service's zone (no Slack, Slack cannot say, or an error, logged as `digest_zone_unknown`)."""

    sender: SlackSender | None
    answers: dict[str, ZoneInfo | None] = field(default_factory=dict)
    unreachable: bool = False

    def __call__(self, person: str) -> ZoneInfo | None:
        if self.sender is None or self.unreachable:
            return None
        if person not in self.answers:
            try:
                self.answers[person] = self.sender.timezone_of(f"user:{person}")
            except Exception as error:  # whatever it is, the schedule is built: in the service's zone
                self.unreachable = isinstance(error, TransientError)
                self.answers[person] = None
                log.warning(
                    "digest recipient's time zone unknown",
                    extra={"event": "digest_zone_unknown", "person": person, "error": str(error)},
                )
        return self.answers[person]


@dataclass
class Worker:
    """What the background scheduler runs every tick: due jobs, then delivery. One tick at a time."""

    deps: BotDeps
    credentials: Credentials
    refresh_job: RefreshJob
    """The start-up refresh's job; the scheduler runs a copy bound to its own thread's store."""
    started: datetime
    stopping: threading.Event
    terminal: TextIO | None = None
    leadership: Leadership | None = None
    """None: a single process that always leads (tests); the service passes one."""
    last_tick: datetime | None = None
    start_up: str = "starting"
    """"starting", "refreshing" (the leader's start-up refresh: answers come from the previous one), "done"."""
    observe_slack: Callable[[str, float, str], None] | None = None
    """Told each Slack Web API call the deliverer makes (the service's metrics)."""
    _last_sent: dict = field(default_factory=dict)
    _channel_ids: dict = field(default_factory=dict)
    _timezones: dict = field(default_factory=dict)
    _scheduler: Scheduler | None = None
    _zones: DigestZones | None = None
    _built_at: datetime | None = None

    def scheduler(self) -> Scheduler:
        """Built on the first tick: ticks run one at a time on the background scheduler's one thread, whose store
        (one connection per thread) the jobs then keep using. Built again when that thread's store is a new one (a
        PostgreSQL connection the server cut is replaced by `ThreadLocalStore.get`): jobs holding the dead one
        would fail every tick while this process kept the lease."""
        store = self.deps.stores.get()
        now = self.deps.clock.now()
        zones_again = self._zones is not None and self._zones.unreachable and now - self._built_at >= ZONES_RETRY
        if self._scheduler is None or self._scheduler.store is not store or zones_again:
            env = AlertEnvironment(store, self.deps.settings.alerts, self.deps.timezone)
            self._zones = DigestZones(self._slack_sender(store) if self.credentials.bot_token else None)
            jobs = build_jobs(env, replace(self.refresh_job, env=env), self._zones)
            self._scheduler = Scheduler(env.store, jobs, self.deps.clock, misfire_grace(env), self.started)
            self._built_at = now
        return self._scheduler

    def tick(self) -> None:
        """Due jobs, then delivery, while this process holds the scheduler lease; a follower only keeps trying
        to take it (and answers requests meanwhile, on other threads)."""
        if self.stopping.is_set():
            return
        try:
            leading = self.leadership.renew()[0] if self.leadership else True
            # Gained by this renewal or by the heartbeat's since the last tick: either way, a new term.
            gained = self.leadership.take_new_term() if self.leadership else False
            if leading:
                if gained:
                    self.deliverer().recover_orphans()
                self.scheduler().tick()
                self.deliver()
        except Exception:
            log.exception("tick failed", extra={"event": "tick_failed"})
            return
        self.last_tick = self.deps.clock.now()

    def deliver(self) -> int:
        return self.deliverer().deliver_due(should_stop=self.stopping.is_set)

    def _slack_sender(self, store) -> SlackSender:
        return SlackSender(
            slack_client(
                self.credentials.bot_token,
                self.credentials.api_url,
                self.deps.settings.alerts.delivery.request_timeout_seconds,
                self.observe_slack,
            ),
            self.deps.settings.alerts,
            store,
            self._channel_ids,
            self._timezones,
        )

    def deliverer(self) -> Deliverer:
        store = self.deps.stores.get()
        sender = self._slack_sender(store) if self.credentials.bot_token else TerminalSender(self.terminal)
        holder = self.leadership.holder if self.leadership else None
        return Deliverer(
            store,
            with_email(sender, self.deps.settings.alerts, self.credentials.smtp_password),
            self.deps.settings.alerts,
            self.deps.clock,
            self._last_sent,
            holder,
            timezone=self.deps.timezone,
        )


def health(deps: BotDeps, worker: Worker, background: BackgroundScheduler) -> tuple[int, dict]:
    """Store, scheduler and last-refresh state; 503 when the store cannot be read."""
    try:
        store = deps.stores.get()
        refresh = store.latest_refresh()
        snapshot = store.latest_snapshot()
        outbox = Outbox(store).statuses()
    except Exception as error:  # a health check reports failure instead of raising it
        return 503, {"status": "error", "store": {"ok": False, "error": str(error)}}
    # Computed here from the configured triggers: the worker's own jobs belong to the scheduler thread.
    now = deps.clock.now()
    triggers = job_triggers(deps.settings.alerts.schedule, deps.timezone) if background.running else {}
    schedule = {name: trigger.get_next_fire_time(None, now) for name, trigger in triggers.items()}
    stale = deps.context().stale()
    # The last tick that ended well: a tick that fails, or hangs, makes the service unhealthy after three periods.
    last_ok = worker.last_tick or worker.started
    tick_limit = timedelta(seconds=3 * deps.settings.alerts.schedule.tick_seconds)
    tick_stale = background.running and now - last_ok > tick_limit
    leadership = worker.leadership
    body = {
        "status": "failing" if tick_stale else "ok" if background.running and not stale else "degraded",
        "leader": {
            "holder": leadership.current() if leadership else None,
            "this_process": leadership.holder if leadership else None,
            "leading": leadership.leading if leadership else True,
        },
        "process": os.getpid(),
        "start_up": worker.start_up,
        # The file's path on SQLite; on PostgreSQL only the dialect: this endpoint is unauthenticated.
        "store": {
            "ok": True,
            "path": str(deps.stores.path) if deps.stores.path else None,
            "dialect": "postgresql" if deps.stores.target.is_postgres else "sqlite",
        },
        "scheduler": {
            "running": background.running,
            "last_tick": worker.last_tick.isoformat() if worker.last_tick else None,
            "last_tick_stale": tick_stale,
            "next": {job: (t.isoformat() if t else None) for job, t in schedule.items()},
        },
        "last_refresh": {
            "id": refresh.id,
            "as_of": refresh.as_of.isoformat(),
            "computed_at": refresh.computed_at.isoformat(),
            "model": refresh.metrics.model.get("version"),
        }
        if refresh
        else None,
        "data": {"snapshot_taken_at": snapshot.taken_at.isoformat() if snapshot else None, "stale": stale},
        "outbox": outbox,
    }
    return (503 if tick_stale else 200), body


def wsgi_app(
    bolt_handler: SlackRequestHandler | None,
    health_check,
    guard: RequestGuard | None = None,
    metrics: ServiceMetrics | None = None,
    dashboard: Dashboard | None = None,
):
    """`/healthz`, `/metrics` (Prometheus), `/dashboard/…` (the web dashboard, `bot.dashboard`), and `/slack/events`
    for Bolt once `guard` passed the request (size, signature, no replay)."""

    def application(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if dashboard is not None and (path == "/dashboard" or path.startswith("/dashboard/")):
            return dashboard(environ, start_response)
        if path == "/metrics" and metrics is not None and environ["REQUEST_METHOD"] == "GET":
            data = metrics.exposition()
            start_response("200 OK", [("Content-Type", METRICS_CONTENT_TYPE), ("Content-Length", str(len(data)))])
            return [data]
        if path == "/healthz" and environ["REQUEST_METHOD"] == "GET":
            status, body = health_check()
            data = json.dumps(body).encode()
            start_response(
                f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
            )
            return [data]
        if path == "/slack/events" and bolt_handler is not None:
            refusal = guard.check(environ) if guard is not None and environ["REQUEST_METHOD"] == "POST" else None
            if refusal is not None:
                log.warning("request refused", extra={"event": "request_refused", "why": refusal.reason})
                data = json.dumps({"error": refusal.reason}).encode()
                start_response(
                    refusal.status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
                )
                return [data]
            return bolt_handler(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    return application


def run(
    settings: Settings,
    config_path: Path,
    credentials: Credentials,
    port: int,
    pinned_as_of: date | None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    workers: int = 1,
    serve_in_terminal: bool = False,
) -> int:
    """The service until SIGTERM. `workers` > 1 (HTTP only): this process starts workers - 1 more on the same port
    (`bot.workers`). `serve_in_terminal`: terminal mode serves /healthz, /metrics and the dashboard on `port` too."""
    stopping = threading.Event()
    first = worker_of()
    if first is not None:
        leave_when_orphaned(first, stopping)
    clock = SystemClock(stopping)
    stores = ThreadLocalStore(store_target(settings, config_path))
    # Read when scraped: `leadership` is made below.
    metrics = ServiceMetrics(
        StoreCollector(stores.get, clock.now, lambda: leadership.current(), lambda: leadership.leading)
    )
    deps = BotDeps(stores, settings, clock, pinned_as_of, AnswerMemo(), metrics.observe)
    engine = EngineSettings(settings.metrics, settings.model, settings.anomalies, settings.alerts.realtime.risk_rule)
    watch = settings.alerts.schedule.watch_folder
    env = AlertEnvironment(stores.get(), settings.alerts, ZoneInfo(settings.timezone))
    refresh_job = RefreshJob(
        env,
        engine,
        settings.ingest,
        pinned_as_of,
        (config_path.parent / watch) if watch else None,
        warehouse_source(settings, config_path),
    )
    schedule = settings.alerts.schedule
    leadership = Leadership(stores.get, process_name(), timedelta(seconds=schedule.lease_seconds), clock)
    worker = Worker(
        deps,
        credentials,
        refresh_job,
        clock.now(),
        stopping,
        stdout if credentials.mode == "terminal" else None,
        leadership,
        observe_slack=metrics.observe_slack,
    )
    log.info(
        "starting",
        extra={
            "event": "starting",
            "mode": credentials.mode,
            "port": port,
            "as_of": pinned_as_of.isoformat() if pinned_as_of else None,
            "store": str(stores.target),
        },
    )
    # One worker thread: the worker's scheduler and its jobs keep that thread's store (see Worker.scheduler).
    background = BackgroundScheduler(
        timezone=ZoneInfo(settings.timezone),
        executors={"default": ThreadPoolExecutor(max_workers=1), "heartbeat": ThreadPoolExecutor(max_workers=1)},
    )
    background.add_job(
        worker.tick,
        "interval",
        seconds=settings.alerts.schedule.tick_seconds,
        id="tick",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(ZoneInfo(settings.timezone)),
        misfire_grace_time=None,
    )
    background.add_job(
        leadership.renew,
        "interval",
        seconds=max(1, schedule.lease_seconds // 3),
        id="heartbeat",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        executor="heartbeat",
    )

    def stop(signum, frame) -> None:
        log.info("stopping", extra={"event": "stopping", "signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    token = credentials.bot_token or "xoxb-terminal"
    # The token comes from `authorize`, per request; Bolt makes each request its own client from this one, and the
    # app's `ObservedClients` middleware makes those report to the metrics.
    client = slack_client(None, credentials.api_url)
    # Bolt does not check signatures again: over HTTP the RequestGuard in front of it has (and refused replays);
    # Socket Mode and terminal requests carry none.
    within = AnswerWithinBudget(settings.bot.answer_budget_seconds)
    app = create_app(
        deps,
        token,
        credentials.signing_secret or "terminal",
        client,
        verify_requests=False,
        observe_slack=metrics.observe_slack,
        within=within,
    )
    server = None
    others = None
    if credentials.mode in ("http", "socket") or serve_in_terminal:
        handler = SlackRequestHandler(app) if credentials.mode == "http" else None
        shared_port = first is not None or workers > 1
        # One memory of what was accepted, shared by every replica: replayed Slack requests, spent dashboard links.
        memory = replay_memory_for(stores.target, WINDOW_SECONDS)
        dashboard_settings = settings.bot.dashboard
        access = DashboardAccess(
            dashboard_secret(credentials.dashboard_secret, credentials.signing_secret or credentials.app_token),
            dashboard_settings.link_minutes * 60,
            dashboard_settings.session_hours * 3600,
            memory.remember,
            memory.seen,
        )
        public_url = dashboard_settings.public_url
        dashboard = Dashboard(
            deps.context,
            deps.viewer,
            access,
            clock.now,
            secure_cookies=bool(public_url and public_url.startswith("https")),
            public_url=None if credentials.mode == "terminal" else public_url,  # terminal links: localhost
        )
        server = HttpServer(
            wsgi_app(
                handler,
                lambda: health(deps, worker, background),
                RequestGuard(credentials.signing_secret, memory=memory) if handler is not None else None,
                metrics,
                dashboard,
            ),
            port,
            shared_port=shared_port,
            host="127.0.0.1" if credentials.mode == "terminal" else "0.0.0.0",
        )
        server.start()
        # Terminal mode: this machine only, whatever public_url says (its links are signed by this process alone)
        local = credentials.mode == "terminal" or not public_url
        base = (f"http://localhost:{server.port}" if local else public_url).rstrip("/")
        deps.dashboard_link = lambda slack_id: (
            f"{base}/dashboard/login?{urlencode({'token': access.sign(slack_id, LINK, clock.now())})}"
        )
        log.info("listening", extra={"event": "listening", "port": server.port, "pid": os.getpid()})
        if workers > 1 and first is None:
            others = WorkerProcesses(workers - 1, config_path, server.port, pinned_as_of, stopping)
            others.start()
    socket_handler = None
    if credentials.mode == "socket":
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        socket_handler = SocketModeHandler(app, credentials.app_token)
        socket_handler.connect()

    # Serving already: requests are answered from the newest complete refresh while the leader computes a new one.
    leading, _ = leadership.renew()
    if leading:  # a follower answers from the newest complete refresh the leader wrote
        worker.start_up = "refreshing"
        note = refresh_job(clock.now(), clock.now())
        log.info("first refresh", extra={"event": "first_refresh", "note": note})
    else:
        log.info("following", extra={"event": "following", "leader": leadership.current()})
    worker.start_up = "done"
    settle_long_lived_objects()  # see engine.collection
    background.start()

    if credentials.mode == "terminal":
        threading.Thread(
            target=_terminal_loop, args=(app, settings, stdin, stdout, stopping), name="stdin", daemon=True
        ).start()
    stopping.wait()

    if others is not None:
        others.stop()
    if server is not None:
        server.stop()
    if socket_handler is not None:
        socket_handler.close()
    background.shutdown(wait=True)
    within.shutdown()  # answers still being built, and their follow-ups, finish before the stores close
    if leadership.leading:
        leadership.release()
    stores.close()
    log.info("stopped", extra={"event": "stopped"})
    return 0


def _terminal_loop(app, settings: Settings, stdin: TextIO, stdout: TextIO, stopping: threading.Event) -> None:
    """Slash commands typed on stdin, dispatched through the Bolt app exactly as Slack's would be."""
    stdout.write(
        f"salesintel (terminal mode). Type {', '.join(TERMINAL_COMMANDS)} (e.g. /deal-risk D00042); "
        "end input (Ctrl-D) to stop.\n"
    )
    stdout.flush()
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        command, _, text = line.partition(" ")
        if command not in TERMINAL_COMMANDS:
            stdout.write(f"unknown command {command}: try {', '.join(TERMINAL_COMMANDS)} (each takes `help`)\n")
            stdout.flush()
            continue
        body = urlencode(
            {
                "command": command,
                "text": text,
                "user_id": settings.bot.terminal_user,
                "user_name": "terminal",
                "team_id": "TTERMINAL",
                "channel_id": "CTERMINAL",
                "trigger_id": "terminal",  # no response_url: the terminal waits for every answer
            }
        )
        response = app.dispatch(BoltRequest(body=body, headers={"content-type": ["application/x-www-form-urlencoded"]}))
        stdout.write(_answer_as_text(response.body) + "\n")
        stdout.flush()
    stopping.set()


def _answer_as_text(body: str) -> str:
    try:
        payload = json.loads(body)
    except json.JSONDecodeError:
        return body
    return blocks_as_text(payload.get("blocks") or [], payload.get("text", ""))
