"""Transactions: one way to group writes so they land whole or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def transaction(connection, migration: bool = False) -> Iterator[None]:
    """One atomic unit of writes on a store connection (`engine.store.connections`): all of them land, or (on any
    error) none. Inside an open transaction it simply joins it.

    The transaction is opened explicitly, never implied by a first write: sqlite-utils (from 4.0) commits a write
    made through `Database.execute` at once unless a transaction is already open, so the first write of a
    `with connection:` block was committed on its own (a refresh whose scores failed kept its refresh row). On SQLite
    it takes the write lock up front, so two processes never deadlock upgrading a read; on PostgreSQL a migration
    also takes an advisory lock, so processes starting together migrate one at a time."""
    if connection.in_transaction:
        yield
        return
    connection.begin(migration)
    try:
        yield
    except BaseException:
        connection.rollback()
        raise
    connection.commit()
