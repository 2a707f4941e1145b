"""The journal of dispatched work: what is leased to which worker, and what keeps failing.

In-flight state lives here, not in the store: the store holds verdicts, which are shared and
permanent; a lease is local and lasts minutes. A lease is written before a batch is dispatched
and released after its results are in the store, so after any crash the journal names exactly
the work that may be half done. Opening the journal takes the owner lock (`owner_lock`); holding
it proves that every lease not taken by this process belongs to a dead one, so `orphaned()`
lists those for the app to repair and re-queue, then `forget`.

Each write is its own committed transaction in WAL mode with `synchronous=FULL`: the journal is
small and written a few times per batch, and a lease must survive SIGKILL and power loss alike.
Time is passed in, never read, so expiry and cool-downs are tested with an injected clock.
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.closing import Closing
from reconciler.adapters.owner_lock import JournalLocked, LockHolder, OwnerLock
from reconciler.adapters.sqlite import transaction
from reconciler.model.errors import InfrastructureError

__all__ = [
    "Journal",
    "JournalError",
    "JournalLocked",
    "LeaseRecord",
    "LockHolder",
    "read_leases",
]

JOURNAL_SCHEMA_VERSION = 1
DEFAULT_LEASE_SECONDS = 900.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    batch_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    worker TEXT NOT NULL,
    leased_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    owner TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_by_owner ON leases (owner, expires_at);
CREATE TABLE IF NOT EXISTS attempts (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    first_at REAL NOT NULL,
    last_at REAL NOT NULL,
    message TEXT NOT NULL
) WITHOUT ROWID;
"""

_LEASE_COLUMNS = "batch_id, payload, worker, leased_at, expires_at, owner"

# A dead owner's lease is taken over; our own is never silently overwritten (the WHERE clause
# makes the upsert change nothing, which `lease` reports).
_LEASE = f"""
INSERT INTO leases ({_LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (batch_id) DO UPDATE SET
    payload = excluded.payload,
    worker = excluded.worker,
    leased_at = excluded.leased_at,
    expires_at = excluded.expires_at,
    owner = excluded.owner
WHERE leases.owner <> excluded.owner
"""  # noqa: S608

_RECORD_FAILURE = """
INSERT INTO attempts (key, count, first_at, last_at, message) VALUES (?, 1, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    count = count + 1,
    last_at = excluded.last_at,
    message = excluded.message
"""


@dataclass(frozen=True)
class LeaseRecord:
    """One batch handed to a worker and not yet released."""

    batch_id: str
    payload: str
    """The batch as JSON text, so an orphan can be re-queued without re-planning."""
    worker: str
    leased_at: float
    expires_at: float
    """After this moment, without a renewal, the worker is presumed gone."""
    owner: str
    """The reconciler process that took the lease (`Journal.owner` of that process)."""


class JournalError(InfrastructureError):
    """The journal cannot be read or written."""


class Journal(Closing):
    """An open journal and the owner lock that goes with it. Use `Journal.open`; close it."""

    def __init__(
        self,
        *,
        path: Path,
        connection: sqlite3.Connection,
        lock: OwnerLock,
        lease_seconds: float,
    ) -> None:
        self.path = path
        self.lease_seconds = lease_seconds
        self._connection = connection
        self._lock = lock
        self._closed = False

    @classmethod
    def open(
        cls, path: Path, *, now: float, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> Journal:
        """Lock and open the journal at `path` (created if missing); the lock is `<path>.lock`.

        `JournalLocked` if another live process holds it.
        """
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds}")
        # The random part keeps owners apart when a pid is reused, or one process reopens.
        owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
        lock = OwnerLock.acquire(path.with_name(path.name + ".lock"), now=now, owner=owner)
        try:
            connection = _connect(path)
        except BaseException:
            lock.close()
            raise
        return cls(path=path, connection=connection, lock=lock, lease_seconds=lease_seconds)

    @property
    def owner(self) -> str:
        """This process's owner id, recorded on every lease it takes."""
        return self._lock.holder.owner

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # The connection first: the lock must outlive every write we might make.
            try:
                self._connection.close()
            finally:
                self._lock.close()

    # Leases.

    def lease(self, batch_id: str, *, payload: str, worker: str, now: float) -> None:
        """Record that `batch_id` is dispatched to `worker`, before dispatching it.

        An orphaned lease of the same batch is taken over; one this process already holds is
        a bug in the caller (the batch would run twice) and raises ValueError.
        """
        row = (batch_id, payload, worker, now, now + self.lease_seconds, self.owner)
        with self._errors(doing="leasing a batch"):
            changed = self._connection.execute(_LEASE, row).rowcount
        if changed == 0:
            raise ValueError(f"batch {batch_id} is already leased by this reconciler")

    def renew(self, batch_id: str, *, now: float) -> bool:
        """Heartbeat: extend our lease of `batch_id` to `now + lease_seconds`. False if we hold
        no such lease (released already, or forgotten), so a late heartbeat is harmless."""
        with self._errors(doing="renewing a lease"):
            return (
                self._connection.execute(
                    "UPDATE leases SET expires_at = ? WHERE batch_id = ? AND owner = ?",
                    (now + self.lease_seconds, batch_id, self.owner),
                ).rowcount
                > 0
            )

    def release(self, batch_id: str) -> bool:
        """Drop our lease of `batch_id`, after its results are in the store. False if we held
        none."""
        with self._errors(doing="releasing a lease"):
            return (
                self._connection.execute(
                    "DELETE FROM leases WHERE batch_id = ? AND owner = ?", (batch_id, self.owner)
                ).rowcount
                > 0
            )

    def active(self) -> list[LeaseRecord]:
        """Every lease this process holds, expired or not, oldest first."""
        return self._leases("owner = ? ORDER BY leased_at, batch_id", (self.owner,))

    def expired(self, now: float) -> list[LeaseRecord]:
        """Our leases whose worker missed its heartbeats (`expires_at <= now`), soonest first."""
        return self._leases(
            "owner = ? AND expires_at <= ? ORDER BY expires_at, batch_id", (self.owner, now)
        )

    def orphaned(self) -> list[LeaseRecord]:
        """Leases of earlier owners, all dead (we hold the lock): work a crash left behind."""
        return self._leases("owner <> ? ORDER BY leased_at, batch_id", (self.owner,))

    def forget(self, batch_ids: Iterable[str]) -> int:
        """Drop orphaned leases once they are repaired and re-queued; returns how many were
        dropped. Our own leases are never dropped here (use `release`)."""
        with self._errors(doing="forgetting orphaned leases"), self._transaction():
            return self._connection.executemany(
                "DELETE FROM leases WHERE batch_id = ? AND owner <> ?",
                ((batch_id, self.owner) for batch_id in batch_ids),
            ).rowcount

    # Failures of builds and units, for retries with a cool-down.

    def record_failure(self, key: str, *, now: float, message: str) -> int:
        """Count one more infrastructure failure of `key` (a unit or build id); returns the
        count so far."""
        with self._errors(doing="recording a failure"), self._transaction() as connection:
            connection.execute(_RECORD_FAILURE, (key, now, now, message))
            (count,) = connection.execute(
                "SELECT count FROM attempts WHERE key = ?", (key,)
            ).fetchone()
        return int(count)

    def failures(self, key: str) -> tuple[int, float | None]:
        """(count, time of the last failure) of `key`; (0, None) if it has not failed."""
        row = self._failure_row(key)
        return (0, None) if row is None else (int(row[0]), float(row[1]))

    def failure_message(self, key: str) -> str | None:
        """The last failure's message, to show why `key` is cooling down."""
        row = self._failure_row(key)
        return None if row is None else str(row[2])

    def cooling_down(self, key: str, *, now: float, cooldown_seconds: float) -> bool:
        """True while `key` failed less than `cooldown_seconds` ago: not to be retried yet."""
        count, last_at = self.failures(key)
        return count > 0 and last_at is not None and now < last_at + cooldown_seconds

    def clear_failures(self, key: str) -> None:
        """Forget `key`'s failures, once it has run or its inputs changed."""
        with self._errors(doing="clearing failures"):
            self._connection.execute("DELETE FROM attempts WHERE key = ?", (key,))

    # Internals.

    def _failure_row(self, key: str) -> tuple[int, float, str] | None:
        with self._errors(doing="reading failures"):
            row: tuple[int, float, str] | None = self._connection.execute(
                "SELECT count, last_at, message FROM attempts WHERE key = ?", (key,)
            ).fetchone()
        return row

    def _leases(self, where: str, parameters: tuple[object, ...]) -> list[LeaseRecord]:
        with self._errors(doing="reading leases"):
            rows = self._connection.execute(
                f"SELECT {_LEASE_COLUMNS} FROM leases WHERE {where}",  # noqa: S608
                parameters,
            ).fetchall()
        return [LeaseRecord(*row) for row in rows]

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._connection)

    @contextmanager
    def _errors(self, *, doing: str) -> Iterator[None]:
        with _wrapped_errors(self.path, doing=doing):
            yield


def read_leases(path: Path) -> list[LeaseRecord]:
    """Every lease in the journal at `path`, oldest first, without taking the owner lock.

    For read-only views (`reconciler workers`) while an apply holds the journal: SQLite's own
    locking makes the read consistent, and nothing is written, not even a missing journal
    (which has no leases).
    """
    if not path.exists():
        return []
    with _wrapped_errors(path, doing="reading leases"), closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA busy_timeout = 5000")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version != JOURNAL_SCHEMA_VERSION:
            return []  # never written by us, or by another version: no leases we can read
        rows = db.execute(
            f"SELECT {_LEASE_COLUMNS} FROM leases ORDER BY leased_at, batch_id"  # noqa: S608
        ).fetchall()
    return [LeaseRecord(*row) for row in rows]


@contextmanager
def _wrapped_errors(path: Path, *, doing: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise JournalError(
            f"journal error while {doing}: {exc}",
            where=str(path),
            hint=(
                "check the disk and the file's permissions; a corrupt journal can be moved "
                "aside (it holds only in-flight leases and retry counts), then run "
                "`reconciler store reindex` so work a crash interrupted is not repeated"
            ),
        ) from exc


def _connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the journal database with durable settings and its schema."""
    with _wrapped_errors(path, doing="opening"):
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("PRAGMA busy_timeout = 5000")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            _ensure_schema(connection, path)
        except BaseException:
            connection.close()
            raise
    return connection


def _ensure_schema(connection: sqlite3.Connection, path: Path) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version == 0:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {JOURNAL_SCHEMA_VERSION}")
        elif version != JOURNAL_SCHEMA_VERSION:
            # Unlike the store index, the journal cannot be rebuilt from anything: never
            # reinterpret or replace one written by another version.
            raise JournalError(
                f"journal schema version {version}, expected {JOURNAL_SCHEMA_VERSION}",
                where=str(path),
                hint="run the reconciler version that wrote it until no work is in flight, "
                "then move the journal aside",
            )
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
