"""The subtests a harness listed for a test file, remembered by the content that decided them.

Listing subtests means running the harness's list command, once per test file, on a checkout:
too slow to repeat every reconcile over thousands of files and dozens of commits. ktest cached
the lists by test name and never invalidated them, so renamed or rewritten tests became phantom
jobs. Here the key is a hash of everything that decides a list: the harness revision (its tree,
or the hash of its definition for in-tree tests), the list command, the test path and the test
file's blob hash. A changed file gets a new key; an unchanged one is never listed again; there is
nothing to invalidate.

The cache is an optimisation only: a corrupt or unreadable file is thrown away and rebuilt, never
an error. `MemoryEnumerationCache` is its in-memory twin for tests.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from reconciler.adapters.closing import Closing
from reconciler.core.identity import canonical_json, sha256_hex

_log = logging.getLogger(__name__)

ENUMERATION_KEY_VERSION = 1
_TABLE = "enumeration_v1"


def enumeration_key(*, harness_revision: str, list_command: str, test: str, blob: str) -> str:
    """The cache key of one test file's subtest list."""
    return sha256_hex(
        canonical_json(
            {
                "v": ENUMERATION_KEY_VERSION,
                "harness": harness_revision,
                "list": list_command,
                "test": test,
                "blob": blob,
            }
        )
    )


class EnumerationCache(Protocol):
    hits: int
    misses: int

    def get(self, key: str) -> tuple[str, ...] | None: ...

    def put(self, key: str, subtests: Sequence[str]) -> None: ...


class MemoryEnumerationCache:
    """An enumeration cache that lives as long as the process."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, ...]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[str, ...] | None:
        subtests = self._entries.get(key)
        if subtests is None:
            self.misses += 1
        else:
            self.hits += 1
        return subtests

    def put(self, key: str, subtests: Sequence[str]) -> None:
        self._entries[key] = tuple(subtests)


class SqliteEnumerationCache(Closing):
    """An enumeration cache in one SQLite file, created on the first write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.hits = 0
        self.misses = 0
        self._connection: sqlite3.Connection | None = None
        self._disabled = False
        # Enumeration may run in worker threads (asyncio.to_thread); one connection, one lock.
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._close()

    def get(self, key: str) -> tuple[str, ...] | None:
        with self._lock:
            subtests = self._read(key)
            if subtests is None:
                self.misses += 1
            else:
                self.hits += 1
            return subtests

    def put(self, key: str, subtests: Sequence[str]) -> None:
        value = json.dumps(list(subtests))
        with self._lock:
            for _ in range(2):  # a second try on a freshly rebuilt file
                connection = self._connect(create=True)
                if connection is None:
                    return
                try:
                    with connection:
                        connection.execute(
                            f"INSERT OR REPLACE INTO {_TABLE} (key, subtests) VALUES (?, ?)",  # noqa: S608 - constant table name
                            (key, value),
                        )
                    return
                except sqlite3.DatabaseError as exc:
                    self._discard(exc)

    def _read(self, key: str) -> tuple[str, ...] | None:
        connection = self._connect(create=False)
        if connection is None:
            return None
        try:
            row = connection.execute(
                f"SELECT subtests FROM {_TABLE} WHERE key = ?",  # noqa: S608 - constant table name
                (key,),
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            self._discard(exc)
            return None
        if row is None:
            return None
        try:
            subtests = json.loads(row[0])
        except (TypeError, ValueError):
            return None  # a damaged row is a miss; the next put replaces it
        if not isinstance(subtests, list) or not all(isinstance(s, str) for s in subtests):
            return None
        return tuple(subtests)

    def _connect(self, *, create: bool) -> sqlite3.Connection | None:
        if self._disabled:
            return None
        if self._connection is not None:
            return self._connection
        if not create and not self.path.exists():
            return None  # nothing cached yet, and reading creates nothing on disk
        for _ in range(2):  # a second try on a freshly rebuilt file
            try:
                if create:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(self.path, check_same_thread=False)
            except (OSError, sqlite3.DatabaseError) as exc:
                self._discard(exc)
                continue
            try:
                with connection:
                    connection.execute(
                        f"CREATE TABLE IF NOT EXISTS {_TABLE}"
                        " (key TEXT PRIMARY KEY, subtests TEXT NOT NULL)"
                    )
            except sqlite3.DatabaseError as exc:
                connection.close()
                self._discard(exc)
                if not create:
                    return None
                continue
            self._connection = connection
            return connection
        return None

    def _discard(self, reason: Exception) -> None:
        """Throw the cache file away: it is rebuilt on the next write."""
        self._close()
        _log.warning("enumeration cache %s is unusable (%s); rebuilding it", self.path, reason)
        try:
            for path in (self.path, self.path.with_name(self.path.name + "-journal")):
                path.unlink(missing_ok=True)
        except OSError as exc:
            # We cannot even remove it: run without a cache rather than fail the reconcile.
            _log.warning("cannot remove %s (%s); enumerating without a cache", self.path, exc)
            self._disabled = True

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
