"""Transactions: one way to group writes so they land whole or not at all."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """One atomic unit of writes: all of them land, or (on any error) none.

    `with connection:` alone does not give that here: sqlite-utils (from 4.0) commits a write made through
    `Database.execute` at once unless a transaction is already open, so the first write of such a block was
    committed on its own (a refresh whose scores failed kept its refresh row). This opens the transaction
    explicitly (IMMEDIATE: the write lock is taken up front, so two processes never deadlock upgrading a read).
    Inside an open transaction it simply joins it."""
    if connection.in_transaction:
        yield
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.rollback()
        raise
    connection.commit()


@contextmanager
def bulk_load(connection: sqlite3.Connection) -> Iterator[None]:
    """Settings for writing a snapshot, put back afterwards. Foreign keys are not checked row by row (the rows'
    snapshot is inserted first in the same transaction, so each reference holds by construction) and the page cache
    is large enough that the table and its index are built in memory before they reach the WAL."""
    foreign_keys = connection.execute("PRAGMA foreign_keys").fetchone()[0]
    cache_size = connection.execute("PRAGMA cache_size").fetchone()[0]
    connection.execute("PRAGMA foreign_keys=OFF")
    connection.execute(f"PRAGMA cache_size={BULK_CACHE_KIB}")
    try:
        yield
    finally:
        connection.execute(f"PRAGMA cache_size={int(cache_size)}")
        connection.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")


BULK_CACHE_KIB = -256 * 1024
"""Page cache while a snapshot is written (negative: KiB), about the size of a million deals with their index."""
