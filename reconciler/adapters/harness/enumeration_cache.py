"""The subtests a harness listed for a test file, remembered by the content that decided them.

Listing subtests means running the harness's list command, once per test file, on a checkout:
too slow to repeat every reconcile over thousands of files and dozens of commits. ktest cached
the lists by test name and never invalidated them, so renamed or rewritten tests became phantom
jobs. Here the key is a hash of everything that decides a list: the harness revision (its tree,
or the hash of its definition for in-tree tests), the list command, the test path, the test
file's blob hash, and the environment the listing ran in (the revisions of the dependencies
provisioned for it, the variables it was given). A changed input gets a new key; an unchanged
one is never listed again; there is nothing to invalidate. A listing that failed, or that used a
dependency that did not resolve, is never stored.

The cache lives in the store directory (`<store>/cache/enumeration.sqlite`), beside what it
serves, and `reconciler store clear-cache` removes it.

The cache is an optimisation only: a corrupt or unreadable file is thrown away and rebuilt, never
an error. `MemoryEnumerationCache` is its in-memory twin for tests.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from reconciler.adapters.closing import Closing
from reconciler.core.identity import canonical_json, sha256_hex

_log = logging.getLogger(__name__)

ENUMERATION_KEY_VERSION = 2
_TABLE = "enumeration_v2"


def enumeration_key(
    *,
    harness_revision: str,
    list_command: str,
    test: str,
    blob: str,
    environment: Mapping[str, Any] | None = None,
) -> str:
    """The cache key of one test file's subtest list."""
    return sha256_hex(
        canonical_json(
            {
                "v": ENUMERATION_KEY_VERSION,
                "harness": harness_revision,
                "list": list_command,
                "test": test,
                "blob": blob,
                "environment": dict(environment or {}),
            }
        )
    )


@dataclass(frozen=True)
class CachedListing:
    """What one listing said: the subtests, and the harness dependencies the file used."""

    subtests: tuple[str, ...]
    uses: tuple[str, ...] = ()


class EnumerationCache(Protocol):
    hits: int
    misses: int

    def get(self, key: str) -> CachedListing | None: ...

    def put(self, key: str, listing: CachedListing) -> None: ...


class MemoryEnumerationCache:
    """An enumeration cache that lives as long as the process."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedListing] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedListing | None:
        listing = self._entries.get(key)
        if listing is None:
            self.misses += 1
        else:
            self.hits += 1
        return listing

    def put(self, key: str, listing: CachedListing) -> None:
        self._entries[key] = listing


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

    def clear(self) -> bool:
        """Remove the cache file; True when there was one."""
        with self._lock:
            self._close()
            existed = self.path.exists()
            for path in (self.path, self.path.with_name(self.path.name + "-journal")):
                path.unlink(missing_ok=True)
            return existed

    def get(self, key: str) -> CachedListing | None:
        with self._lock:
            listing = self._read(key)
            if listing is None:
                self.misses += 1
            else:
                self.hits += 1
            return listing

    def put(self, key: str, listing: CachedListing) -> None:
        value = json.dumps({"subtests": list(listing.subtests), "uses": list(listing.uses)})
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

    def _read(self, key: str) -> CachedListing | None:
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
            value = json.loads(row[0])
        except (TypeError, ValueError):
            return None  # a damaged row is a miss; the next put replaces it
        if not isinstance(value, dict):
            return None
        subtests, uses = value.get("subtests"), value.get("uses", [])
        if not _strings(subtests) or not _strings(uses):
            return None
        return CachedListing(tuple(subtests), tuple(uses))

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


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
