"""The SQLite index's schema, connection settings and error wrapping.

The index is derived from the record files, so it is tuned for speed over durability
(`synchronous=NORMAL` in WAL mode: a power cut may lose the last transactions, which `reindex`
restores from the files). Per-unit and per-test aggregates are materialised so the planner reads
one row per test file instead of grouping millions of subtest rows; per-(test, subtest) duration
sums likewise, so the scheduler can pack batches from history without grouping across builds.
The per-unit rows also count each verdict (pass, fail, skip, timeout), so the query commands
(`log` over hundreds of commits) sum a commit's counts from ~170 rows instead of ~13,000.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.adapters.sqlite import transaction as transaction
from reconciler.model.errors import StoreError
from reconciler.model.results import BuildRecord, ResultRecord, Status

ResultRow = tuple[str, str, str, str, str, str, float | None]
"""(id, unit, build, test, subtest, status, duration): one row of the `results` table."""
BuildRow = tuple[str, str, str | None, str | None]
"""(id, status, source_tree, image_hash): one row of the `builds` table."""

# 2: the `durations` table (per-subtest history for batch packing). 3: per-verdict counts in
# `units` (for the query commands). 4: builds' image hashes (results reused for an identical
# boot image). An index of another version is rebuilt from the files when opened.
SCHEMA_VERSION = 4
REINDEX_HINT = "run `reconciler store reindex` to rebuild the index from the record files"

# Tables only; secondary indexes are separate so a full rebuild can create them after the bulk
# load (one sort instead of millions of random B-tree inserts).
TABLES = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE results (
    id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    build TEXT NOT NULL,
    test TEXT NOT NULL,
    subtest TEXT NOT NULL,
    status TEXT NOT NULL,
    duration REAL
) WITHOUT ROWID;
CREATE TABLE units (
    unit TEXT PRIMARY KEY,
    build TEXT NOT NULL,
    test TEXT NOT NULL,
    verdicts INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    duration_sum REAL NOT NULL,
    timed INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    timed_out INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE tests (
    test TEXT PRIMARY KEY,
    duration_sum REAL NOT NULL,
    timed INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE durations (
    test TEXT NOT NULL,
    subtest TEXT NOT NULL,
    duration_sum REAL NOT NULL,
    timed INTEGER NOT NULL,
    PRIMARY KEY (test, subtest)
) WITHOUT ROWID;
CREATE TABLE builds (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    source_tree TEXT,
    image_hash TEXT
) WITHOUT ROWID;
"""

# results_by_unit covers the partial-unit read and the per-unit aggregation (no table lookups).
# Builds' results are reached through units_by_build, which saves a 6M-row index on results.
INDEXES = """
CREATE INDEX results_by_unit ON results (unit, subtest, status, duration);
CREATE INDEX units_by_build ON units (build);
CREATE INDEX units_by_test ON units (test);
CREATE INDEX builds_by_tree ON builds (source_tree);
CREATE INDEX builds_by_image ON builds (image_hash);
"""

# Error results never count towards durations: an ssh timeout says nothing about the test.
# Bind `ERROR_PARAM` (which names every status) when running it.
UNIT_AGGREGATE = """
SELECT a.unit, a.build, a.test,
       sum(r.status <> :error),
       sum(r.status = :error),
       total(CASE WHEN r.status <> :error THEN r.duration END),
       count(CASE WHEN r.status <> :error THEN r.duration END),
       sum(r.status = :pass), sum(r.status = :fail), sum(r.status = :skip),
       sum(r.status = :timeout)
FROM temp.affected_units AS a JOIN results AS r ON r.unit = a.unit
GROUP BY a.unit
"""
# Per-subtest durations of the tests in `temp.affected_units`, reached through units_by_test and
# the covering results_by_unit index (no table lookups, no 6M-row index on results.test).
DURATION_AGGREGATE = """
SELECT u.test, r.subtest, total(r.duration), count(r.duration)
FROM units AS u JOIN results AS r ON r.unit = u.unit
WHERE u.test IN (SELECT DISTINCT test FROM temp.affected_units)
  AND r.status <> :error AND r.duration IS NOT NULL
GROUP BY u.test, r.subtest
"""
ERROR_PARAM = {status.value: status.value for status in Status}

INSERT_RESULT = "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)"

# SQLite primary result codes that mean "these bytes are not a sound database".
_CORRUPTION_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the index's pragmas; autocommit, transactions are explicit."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        tune(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def tune(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA temp_store = MEMORY")
    connection.execute("PRAGMA cache_size = -65536")  # 64 MiB
    connection.execute("PRAGMA mmap_size = 268435456")  # 256 MiB


def is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _CORRUPTION_CODES


@contextmanager
def wrapped_errors(path: Path, *, doing: str) -> Iterator[None]:
    """Turn sqlite3 errors into StoreError naming the index and the way out."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(
            f"index error while {doing}: {exc}", where=str(path), hint=REINDEX_HINT
        ) from exc


def bump_generation(connection: sqlite3.Connection) -> None:
    connection.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")


def result_row(record: ResultRecord) -> ResultRow:
    return (
        record.id,
        record.unit,
        record.build,
        record.test,
        record.subtest,
        record.status.value,
        record.duration,
    )


def build_row(record: BuildRecord) -> BuildRow:
    source_tree = record.preimage.get("source_tree")
    return (
        record.id,
        record.status.value,
        source_tree if isinstance(source_tree, str) else None,
        record.image_hash,
    )
