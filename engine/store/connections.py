"""The two databases a store can live in, behind one small connection interface.

SQLite (one file, the default: nothing else to install) and PostgreSQL (a server several replicas share). The store's
SQL is written once, in the subset both speak (`?` placeholders, `INSERT … RETURNING id`, `ON CONFLICT`, `CASE`);
what genuinely differs — how a transaction takes its lock, where the schema version lives, column types in DDL, how a
bulk load is written, skipping rows another replica has locked — is a method or attribute here, so no query elsewhere
asks which database it runs on.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from salesintel.engine.store.records import StoreError
from salesintel.engine.url_redaction import redact_url, scrub

POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class StoreTarget:
    """Where a store lives: a SQLite file (`path`) or a PostgreSQL URL (`url`). Exactly one is set."""

    path: Path | None = None
    url: str | None = None

    @classmethod
    def parse(cls, text: str | Path) -> StoreTarget:
        """A path, `sqlite:///path`, or `postgresql://…` (libpq's URL form; `postgres://` too)."""
        if isinstance(text, Path):
            return cls(path=text)
        scheme = urlsplit(text).scheme.split("+")[0].lower()
        if scheme in POSTGRES_SCHEMES:
            return cls(url=text)
        if scheme == "sqlite":
            return cls(path=Path(text.split("sqlite://", 1)[1].removeprefix("/") if "://" in text else text))
        if "://" in text:
            raise StoreError(f"{redact_url(text)}: not a store URL (use a file path, sqlite:///path or postgresql://…)")
        return cls(path=Path(text))

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else redact_url(self.url)


def connect(target: StoreTarget) -> SqlConnection:
    return PostgresConnection.open(target.url) if target.is_postgres else SqliteConnection.open(target.path)


class SqliteConnection:
    """A SQLite file in WAL mode: readers never wait for the writer; a transaction takes the write lock up front."""

    dialect = "sqlite"
    integrity_errors = (sqlite3.IntegrityError,)
    skip_locked = ""
    """SQLite has one writer at a time: a row another process is changing cannot be seen half-changed anyway."""

    def __init__(self, connection: sqlite3.Connection):
        self.raw = connection
        # The hot paths call these: bound straight to sqlite3's own methods, no Python layer in between.
        self.execute = connection.execute
        self.executemany = connection.executemany

    @classmethod
    def open(cls, path: Path) -> SqliteConnection:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(path, check_same_thread=False, timeout=30)
            _write_ahead_log(connection)
        except sqlite3.Error as error:
            raise StoreError(f"{path}: cannot open the store ({error})") from error
        connection.execute("PRAGMA foreign_keys=ON")
        return cls(connection)

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    lost = False
    """A file is never lost the way a server connection is."""

    def begin(self, migration: bool = False) -> None:
        # IMMEDIATE: the write lock is taken up front, so two processes never deadlock upgrading a read; a migration
        # needs nothing more (one writer at a time already serialises processes starting together).
        self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def schema_version(self) -> int:
        return self.raw.execute("PRAGMA user_version").fetchone()[0]

    def set_schema_version(self, version: int) -> None:
        self.raw.execute(f"PRAGMA user_version = {int(version)}")

    def columns(self, table: str) -> list[str]:
        return [row[1] for row in self.raw.execute(f"PRAGMA table_info({table})").fetchall()]

    def tables(self) -> list[str]:
        return [r[0] for r in self.raw.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    def ddl(self, statement: str) -> str:
        """DDL written for SQLite is SQLite's."""
        return statement

    def bulk_insert(self, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
        marks = ", ".join("?" for _ in columns)
        self.raw.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def stream(self, sql: str, batch: int) -> Iterator[list[tuple]]:
        """A query's rows, `batch` at a time (sqlite3 steps through them as they are fetched)."""
        cursor = self.raw.execute(sql)
        while rows := cursor.fetchmany(batch):
            yield rows

    def after_copy(self, table: str, columns: list[str]) -> None:
        """Nothing to do: a rowid continues from the largest id in the table."""

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Settings for writing a snapshot, put back afterwards. Foreign keys are not checked row by row (the rows'
        snapshot is inserted first in the same transaction, so each reference holds by construction) and the page
        cache is large enough that the table and its index are built in memory before they reach the WAL."""
        foreign_keys = self.raw.execute("PRAGMA foreign_keys").fetchone()[0]
        cache_size = self.raw.execute("PRAGMA cache_size").fetchone()[0]
        self.raw.execute("PRAGMA foreign_keys=OFF")
        self.raw.execute(f"PRAGMA cache_size={BULK_CACHE_KIB}")
        try:
            yield
        finally:
            self.raw.execute(f"PRAGMA cache_size={int(cache_size)}")
            self.raw.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")

    def vacuum(self) -> None:
        self.raw.execute("VACUUM")

    def close(self) -> None:
        self.raw.close()


def _write_ahead_log(connection: sqlite3.Connection, patience: float = 30.0) -> None:
    """Put the file in WAL mode. Switching a new file's journal mode does not wait for the busy timeout: processes
    (or threads) creating one store together got "database is locked" here, so the switch is tried again for up to
    `patience` seconds. A file already in WAL mode needs nothing."""
    deadline = time.monotonic() + patience
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


BULK_CACHE_KIB = -256 * 1024
"""Page cache while a snapshot is written (negative: KiB), about the size of a million deals with their index."""


MIGRATION_LOCK = 0x5A1E5_1E7
"""The advisory lock key PostgreSQL processes take while migrating one database (any constant, the same in all)."""


class PostgresConnection:
    """A PostgreSQL connection in autocommit mode: a lone statement commits by itself, and `begin`/`commit` bracket
    the store's transactions, so no read leaves a transaction open on the server between requests.

    `?` placeholders become psycopg's `%s` (the store's SQL has no literal `?` or `%`); the translation is kept per
    statement text. Times are TEXT in ISO form, compared as text: every TEXT column is declared with the "C"
    collation, so they order byte by byte as in SQLite, whatever the database's locale.
    """

    dialect = "postgresql"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, connection):
        import psycopg

        self.raw = connection
        self.integrity_errors = (psycopg.errors.IntegrityError,)
        self._texts: dict[str, str] = {}
        self._migrating = False

    @classmethod
    def open(cls, url: str) -> PostgresConnection:
        import psycopg

        try:
            connection = psycopg.connect(_libpq_url(url), autocommit=True, connect_timeout=10)
        except psycopg.Error as error:
            raise StoreError(f"{redact_url(url)}: cannot open the store ({scrub(str(error).strip(), url)})") from None
        return cls(connection)

    def _text(self, sql: str) -> str:
        text = self._texts.get(sql)
        if text is None:
            text = self._texts[sql] = sql.replace("%", "%%").replace("?", "%s")
        return text

    def execute(self, sql: str, params: Iterable = ()):
        params = list(params)
        if not params:  # psycopg reads no placeholders then: the statement goes as written (a % stays one %)
            return self.raw.execute(sql)
        return self.raw.execute(self._text(sql), params)

    def executemany(self, sql: str, rows: Iterable):
        cursor = self.raw.cursor()
        cursor.executemany(self._text(sql), list(rows))
        return cursor

    @property
    def lost(self) -> bool:
        """The connection to the server is gone (psycopg marks it broken after a failure, or it was closed)."""
        return self.raw.broken or self.raw.closed

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def begin(self, migration: bool = False) -> None:
        if migration:
            # Processes starting together on one database take turns, and the second finds the step done. The lock
            # is taken before the transaction begins, not inside it: a transaction that waited for it would still
            # see the catalogue as it was when it began (the tables the first process made "do not exist" yet).
            self.raw.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
            self._migrating = True
        self.raw.execute("BEGIN")

    def commit(self) -> None:
        try:
            self.raw.execute("COMMIT")
        finally:
            self._unlock()

    def rollback(self) -> None:
        try:
            self.raw.execute("ROLLBACK")
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._migrating:
            self._migrating = False
            self.raw.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])

    def schema_version(self) -> int:
        """Kept in a one-row table (SQLite keeps it in the file's header). No table yet: version 0."""
        exists = self.raw.execute("SELECT to_regclass('salesintel_schema') IS NOT NULL").fetchone()[0]
        if not exists:
            return 0
        row = self.raw.execute("SELECT version FROM salesintel_schema").fetchone()
        return int(row[0]) if row else 0

    def set_schema_version(self, version: int) -> None:
        self.raw.execute("CREATE TABLE IF NOT EXISTS salesintel_schema (version INTEGER NOT NULL)")
        self.raw.execute("DELETE FROM salesintel_schema")
        self.raw.execute("INSERT INTO salesintel_schema (version) VALUES (%s)", [int(version)])

    def columns(self, table: str) -> list[str]:
        rows = self.raw.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return [r[0] for r in rows]

    def tables(self) -> list[str]:
        rows = self.raw.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows if r[0] != "salesintel_schema"]

    def ddl(self, statement: str) -> str:
        """SQLite's DDL in PostgreSQL's words: an `id INTEGER PRIMARY KEY` counts up by itself (as SQLite's rowid
        does), BLOB is BYTEA, FLOAT a double, text orders byte by byte, and WITHOUT ROWID (a SQLite storage choice)
        means nothing."""
        statement = re.sub(
            r"\bid INTEGER PRIMARY KEY\b", "id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", statement
        )
        statement = re.sub(r"\bBLOB\b", "BYTEA", statement)
        statement = re.sub(r"\bFLOAT\b", "DOUBLE PRECISION", statement)
        statement = re.sub(r"\bREAL\b", "DOUBLE PRECISION", statement)
        statement = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', statement)
        return re.sub(r"\)\s*WITHOUT ROWID\s*$", ")", statement)

    def bulk_insert(self, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
        """COPY: a snapshot's deals or a refresh's scores stream in one command, not one statement per row."""
        with self.raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def stream(self, sql: str, batch: int) -> Iterator[list[tuple]]:
        """A query's rows, `batch` at a time, through a server-side cursor (a plain cursor would first pull the
        whole result into memory), in a read-only transaction of its own: one consistent snapshot of the tables."""
        self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            with self.raw.cursor(name="salesintel_stream") as cursor:
                cursor.itersize = batch
                cursor.execute(sql)
                while rows := cursor.fetchmany(batch):
                    yield rows
        finally:
            self.raw.execute("ROLLBACK")

    def after_copy(self, table: str, columns: list[str]) -> None:
        """Rows copied with their ids: the table's identity must continue after the largest, not from 1."""
        if "id" in columns:
            self.raw.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
            )

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        yield

    def vacuum(self) -> None:
        self.raw.execute("VACUUM")

    def close(self) -> None:
        self.raw.close()


def _libpq_url(url: str) -> str:
    """SQLAlchemy's spelling (`postgresql+psycopg://`) is accepted too; libpq wants the plain scheme."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+')[0]}://{rest}"


SqlConnection = SqliteConnection | PostgresConnection
