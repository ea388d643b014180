"""The signatures of accepted Slack requests, shared by every process serving one store.

A request replayed within Slack's five-minute window verifies as well as the original; `bot.request_guard` refuses
a signature it has accepted before. Kept in each process's memory, a copy sent to another replica (or another
worker behind the same port) would pass, so the memory is a small SQLite file beside the store instead of a table
in it: its writes are one-row inserts that never wait behind a refresh's long write, and a store on SQLite lives on
one machine anyway (SQLite is not for network file systems), so every replica of it can reach the file. On
PostgreSQL, where replicas may run on several machines, the memory is the database's `accepted_signatures` table.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from salesintel.engine.store.connections import PostgresConnection, StoreTarget

PRUNE_EVERY = 1000
"""Inserts between two deletions of expired signatures."""


class SharedReplayMemory:
    """Accepted signatures in `table`, over one autocommit connection per thread (`connect` makes one)."""

    def __init__(self, connect: Callable[[], object], table: str, window_seconds: float):
        self._connect, self._table, self._window = connect, table, window_seconds
        self._local = threading.local()
        self._inserts = 0

    @classmethod
    def beside(cls, path: Path, window_seconds: float) -> SharedReplayMemory:
        """In a small SQLite file (`replay_memory_path` of a SQLite store)."""

        def connect() -> sqlite3.Connection:
            # autocommit; WAL so readers never block; NORMAL sync: a signature lost with the machine's power is one
            # a replay could only use within the same five minutes the machine was down.
            connection = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            return connection

        memory = cls(connect, "accepted", window_seconds)
        connection = memory._connection()
        connection.execute("CREATE TABLE IF NOT EXISTS accepted (signature TEXT PRIMARY KEY, at REAL NOT NULL)")
        connection.execute("CREATE INDEX IF NOT EXISTS accepted_at ON accepted (at)")
        return memory

    @classmethod
    def in_database(cls, url: str, window_seconds: float) -> SharedReplayMemory:
        """In a PostgreSQL store's `accepted_signatures` table (made by its migrations)."""
        return cls(lambda: PostgresConnection.open(url), "accepted_signatures", window_seconds)

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is not None and getattr(connection, "lost", False):  # the server cut it: a new one
            connection.close()
            connection = None
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    def remember(self, signature: str, now: float, keep_until: float | None = None) -> bool:
        """True when `signature` is new (and is now remembered), False when it was accepted within the window.
        `keep_until`: remember it at least until then (a dashboard link's expiry), not just for the window; `now` is
        always the real time, so forgetting expired entries never reaches into the window.
        A request that finds the connection cut is tried once more on a new one."""
        try:
            return self._remember(signature, now, keep_until)
        except Exception:
            connection = getattr(self._local, "connection", None)
            if connection is None or not getattr(connection, "lost", False):
                raise
            return self._remember(signature, now, keep_until)

    def _remember(self, signature: str, now: float, keep_until: float | None) -> bool:
        connection, table = self._connection(), self._table
        # An entry counts as seen until `at` + window: `at` is when it arrived, or the moment it must be kept until
        inserted = connection.execute(
            f"INSERT INTO {table} (signature, at) VALUES (?, ?) ON CONFLICT (signature) DO UPDATE SET at = excluded.at"
            f" WHERE {table}.at < ?",
            [signature, max(now, keep_until or now), now - self._window],
        ).rowcount
        self._inserts += 1
        if self._inserts % PRUNE_EVERY == 0:
            connection.execute(f"DELETE FROM {table} WHERE at < ?", [now - self._window])
        return inserted == 1

    def seen(self, signature: str, now: float) -> bool:
        """Whether `signature` is remembered now (within the window, or kept until later), without adding it."""
        query = f"SELECT 1 FROM {self._table} WHERE signature = ? AND at >= ?"
        try:
            return self._connection().execute(query, [signature, now - self._window]).fetchone() is not None
        except Exception:
            connection = getattr(self._local, "connection", None)
            if connection is None or not getattr(connection, "lost", False):
                raise
            return self._connection().execute(query, [signature, now - self._window]).fetchone() is not None

    def remembered(self, now: float) -> int:
        """How many signatures were accepted within the window (entries kept for later are not counted)."""
        query = f"SELECT count(*) FROM {self._table} WHERE at >= ? AND at <= ?"
        return self._connection().execute(query, [now - self._window, now]).fetchone()[0]


def replay_memory_for(target: StoreTarget, window_seconds: float) -> SharedReplayMemory:
    """The memory every process serving this store shares."""
    if target.is_postgres:
        return SharedReplayMemory.in_database(target.url, window_seconds)
    return SharedReplayMemory.beside(replay_memory_path(target.path), window_seconds)


def replay_memory_path(store_path: Path) -> Path:
    """`store.db` → `store.db.replay`: beside the store, so every replica of it finds the same file."""
    return store_path.with_name(store_path.name + ".replay")
