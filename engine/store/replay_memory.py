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
from pathlib import Path

from salesintel.engine.store.connections import PostgresConnection, StoreTarget

PRUNE_EVERY = 1000
"""Inserts between two deletions of expired signatures."""


class SharedReplayMemory:
    def __init__(self, path: Path, window_seconds: float):
        self.path = Path(path)
        self._window = window_seconds
        self._local = threading.local()
        self._inserts = 0
        with self._connection() as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS accepted (signature TEXT PRIMARY KEY, at REAL NOT NULL)")
            connection.execute("CREATE INDEX IF NOT EXISTS accepted_at ON accepted (at)")

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # autocommit; WAL so readers never block; NORMAL sync: a signature lost with the machine's power is one
            # a replay could only use within the same five minutes the machine was down.
            connection = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def remember(self, signature: str, now: float) -> bool:
        """True when `signature` is new (and is now remembered), False when it was accepted within the window."""
        connection = self._connection()
        inserted = connection.execute(
            "INSERT INTO accepted (signature, at) VALUES (?, ?) ON CONFLICT (signature) DO UPDATE SET at = excluded.at"
            " WHERE accepted.at < ?",
            [signature, now, now - self._window],
        ).rowcount
        self._inserts += 1
        if self._inserts % PRUNE_EVERY == 0:
            connection.execute("DELETE FROM accepted WHERE at < ?", [now - self._window])
        return inserted == 1

    def remembered(self, now: float) -> int:
        """How many signatures were accepted within the window."""
        query = "SELECT count(*) FROM accepted WHERE at >= ?"
        return self._connection().execute(query, [now - self._window]).fetchone()[0]


class PostgresReplayMemory:
    """The same memory in the store's PostgreSQL database (one connection per thread, autocommit)."""

    def __init__(self, url: str, window_seconds: float):
        self.url = url
        self._window = window_seconds
        self._local = threading.local()
        self._inserts = 0

    def _connection(self) -> PostgresConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = PostgresConnection.open(self.url)
        return connection

    def remember(self, signature: str, now: float) -> bool:
        connection = self._connection()
        inserted = connection.execute(
            "INSERT INTO accepted_signatures (signature, at) VALUES (?, ?) ON CONFLICT (signature) DO UPDATE"
            " SET at = excluded.at WHERE accepted_signatures.at < ?",
            [signature, now, now - self._window],
        ).rowcount
        self._inserts += 1
        if self._inserts % PRUNE_EVERY == 0:
            connection.execute("DELETE FROM accepted_signatures WHERE at < ?", [now - self._window])
        return inserted == 1

    def remembered(self, now: float) -> int:
        query = "SELECT count(*) FROM accepted_signatures WHERE at >= ?"
        return self._connection().execute(query, [now - self._window]).fetchone()[0]


def replay_memory_for(target: StoreTarget, window_seconds: float) -> SharedReplayMemory | PostgresReplayMemory:
    """The memory every process serving this store shares."""
    if target.is_postgres:
        return PostgresReplayMemory(target.url, window_seconds)
    return SharedReplayMemory(replay_memory_path(target.path), window_seconds)


def replay_memory_path(store_path: Path) -> Path:
    """`store.db` → `store.db.replay`: beside the store, so every replica of it finds the same file."""
    return store_path.with_name(store_path.name + ".replay")
