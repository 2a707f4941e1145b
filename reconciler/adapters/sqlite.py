"""What every SQLite file of ours (store index, journal, enumeration cache) does the same way."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction, committed on success and rolled back on any exception."""
    # IMMEDIATE takes the write lock up front, so a concurrent reader never forces a retry
    # half-way through a batch.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        # SQLite may already have rolled back (e.g. after SQLITE_FULL); don't mask the cause.
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
