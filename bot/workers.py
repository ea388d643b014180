"""`salesintel run --workers N`: N processes serving one HTTP port on one machine.

One Python process answers with one core at a time (one interpreter lock): about 350 `/deal-risk` answers a second
on the machine `bench/deal_risk_ramp.py` runs on. More processes each bind the same port with `SO_REUSEPORT`, and
the kernel spreads new connections across them. Each is a full replica of the service on the same store: the
scheduler lease picks one leader for jobs and delivery, outbox rows are claimed, and the replay memory beside the
store is shared (see `engine.store.replay_memory`), so N processes behave as one.

The first process (the one started by hand or by a supervisor) starts the others after its own start-up, restarts
any that dies, and on SIGTERM stops them before it stops itself. A worker whose first process is gone (killed with
SIGKILL) stops on its own within a second.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

log = logging.getLogger("salesintel.workers")
WORKER_OF = "SALESINTEL_WORKER_OF"
"""Set in a worker's environment to the first process's pid."""
RESTART_PAUSE_SECONDS = 1.0
STOP_SECONDS = 15.0


def worker_of() -> int | None:
    """The first process's pid when this process is one of its workers, else None."""
    value = os.environ.get(WORKER_OF)
    return int(value) if value else None


def leave_when_orphaned(first: int, stopping: threading.Event) -> None:
    """Set `stopping` once the first process is gone (this worker was re-parented)."""

    def watch() -> None:
        while not stopping.wait(1.0):
            if os.getppid() != first:
                log.warning("first process gone: stopping", extra={"event": "worker_orphaned", "first": first})
                stopping.set()

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


class WorkerProcesses:
    """The other N-1 processes of `run --workers N`, started, watched and stopped by the first."""

    def __init__(self, count: int, config_path: Path, port: int, pinned_as_of: date | None, stopping: threading.Event):
        self._count = count
        self._argv = [sys.executable, "-m", "salesintel.bot", "--config", str(config_path), "run", "--port", str(port)]
        if pinned_as_of:
            self._argv += ["--as-of", pinned_as_of.isoformat()]
        self._stopping = stopping
        self._processes: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._processes = [self._spawn() for _ in range(self._count)]
        threading.Thread(target=self._supervise, name="workers", daemon=True).start()

    def _spawn(self) -> subprocess.Popen:
        process = subprocess.Popen(self._argv, env={**os.environ, WORKER_OF: str(os.getpid())})
        log.info("worker started", extra={"event": "worker_started", "pid": process.pid})
        return process

    def _supervise(self) -> None:
        while not self._stopping.wait(RESTART_PAUSE_SECONDS):
            with self._lock:
                for i, process in enumerate(self._processes):
                    if process.poll() is not None and not self._stopping.is_set():
                        log.error(
                            "worker exited: restarting",
                            extra={"event": "worker_restarted", "pid": process.pid, "code": process.returncode},
                        )
                        self._processes[i] = self._spawn()

    def stop(self) -> None:
        """SIGTERM to every worker (each drains its requests), then wait; SIGKILL for any still running."""
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
